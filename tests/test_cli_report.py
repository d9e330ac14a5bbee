"""``homepot-ai report`` renders the report tool's Markdown and saves it with its charts."""

import json
from datetime import datetime

from click.testing import CliRunner

from app.cli import cli
from tools.config import load_settings
from tools.simulator import populate_fixture_db
from tools.store.engine import open_store

END = datetime(2026, 3, 4, 12, 0)


def test_weekly_report_from_the_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("HOMEPOT_AI_NOW", END.isoformat())
    store = open_store(load_settings().database_url)
    populate_fixture_db(store, seed=3, devices=8, days=9, end=END)
    store.dispose()
    out = tmp_path / "weekly.md"
    result = CliRunner().invoke(cli, ["report", "weekly", "--out", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    text = out.read_text()
    assert text.startswith("#") and "alert" in text.lower()
    assert all(p.endswith(".png") for p in payload["figures"]) and payload["figures"]


def test_report_on_an_unknown_site_is_one_sentence(monkeypatch):
    monkeypatch.setenv("HOMEPOT_AI_NOW", END.isoformat())
    store = open_store(load_settings().database_url)
    populate_fixture_db(store, seed=3, devices=8, days=3, end=END)
    store.dispose()
    result = CliRunner().invoke(cli, ["report", "daily", "--site", "Atlantis"])
    assert result.exit_code == 1
    assert "Atlantis" in result.output and "Traceback" not in result.output
