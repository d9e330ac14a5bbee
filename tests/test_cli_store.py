"""The store commands from the outside: init, status, import and their exit codes."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from app.cli import cli
from tools.store.bulk import insert_frame
from tools.store.engine import open_store

DEV = "DEVICE-AAAA-BBBB-CCCC"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A SQLite store under the test's data dir with one device; the clock pinned."""
    monkeypatch.setenv("HOMEPOT_AI_NOW", "2025-03-02T00:00:00Z")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("HOMEPOT_AI_DATABASE_URL", url)
    store = open_store(url)
    insert_frame(store, "sites", pd.DataFrame({"site_id": ["SITE-AAAA-BBBB"], "name": ["Shop"]}))
    insert_frame(store, "devices", pd.DataFrame({"device_id": [DEV], "name": ["till"],
                                                 "device_type": ["pos_terminal"], "site_id": [1]}))
    store.dispose()
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_init_reports_store_and_migrations(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEPOT_AI_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    first = run("init", "--json")
    assert first.exit_code == 0
    info = json.loads(first.output)
    assert info["backend"] == "sqlite" and "new.db" in info["database"]
    assert info["applied_now"] == info["migrations"] and "m001_homepot_tables" in info["migrations"]
    again = run("init")
    assert again.exit_code == 0 and "Up to date" in again.output


def test_import_good_file_exits_zero_and_reimport_too(env):
    path = env / "ok.csv"
    path.write_text(f"device_id,timestamp,cpu_percent\n{DEV},2025-03-01T10:00:00,5\n{DEV},2025-03-01T10:05:00,6\n")
    first = run("import", str(path), "--json")
    assert first.exit_code == 0
    summary = json.loads(first.output)
    assert (summary["rows_stored"], summary["rejected"]) == (2, 0)
    second = run("import", str(path), "--no-progress")
    assert second.exit_code == 0
    assert "skipped 2 duplicates, rejected 0" in second.output


def test_import_with_bad_rows_exits_one_and_writes_errors(env):
    path = env / "bad.csv"
    path.write_text(f"device_id,timestamp,cpu_percent\n{DEV},2025-03-01T10:00:00,5\n{DEV},2025-03-01T10:05:00,oops\n")
    errors = env / "rejected.csv"
    result = run("import", str(path), "--errors", str(errors), "--no-progress")
    assert result.exit_code == 1
    assert "bad.csv:3: text 'oops' in numeric field cpu_percent" in result.output
    with errors.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["code"]) for r in rows] == [("3", "not_a_number")]
    assert "oops" in rows[0]["raw"]


def test_import_missing_column_exits_one_with_one_sentence(env):
    path = env / "cols.csv"
    path.write_text(f"device,timestamp,cpu_percent\n{DEV},2025-03-01T10:00:00,5\n")
    result = run("import", str(path), "--no-progress")
    assert result.exit_code == 1
    assert "lacks required column(s) device_id" in result.output
    assert "Traceback" not in result.output


def test_status_json_counts_the_imported_data(env):
    path = env / "ok.csv"
    path.write_text(f"device_id,timestamp,cpu_percent\n{DEV},2025-03-01T23:55:00,5\n")
    assert run("import", str(path), "--json").exit_code == 0
    result = run("status", "--json")
    assert result.exit_code == 0
    s = json.loads(result.output)
    assert (s["sites"], s["devices"], s["devices_with_data"], s["devices_stale"]) == (1, 1, 1, 0)
    assert s["data_end"] == "2025-03-01T23:55:00"
    text_out = run("status").output
    assert "Devices      1: pos_terminal 1" in text_out
