"""render_report: a Markdown report with tables and charts, stored in ai_reports."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from test_tools_fleet_fixture import NOW, build_fleet, window_values
from tools.config import load_settings
from tools.metric_tools import fmt, rnd
from tools.registry import ToolContext, call_tool
from tools.store.bulk import insert_frame


@pytest.fixture
def env(store, tmp_path):
    fleet = build_fleet(store)
    ctx = ToolContext(store, load_settings().replace(now=NOW.isoformat(), data_dir=str(tmp_path / "home")), audit=False)
    return ctx, fleet


def test_daily_fleet_report_has_tables_charts_and_is_stored(env) -> None:
    ctx, fleet = env
    insert_frame(ctx.store, "ai_anomalies", pd.DataFrame([{
        "device_id": 2, "metric": "cpu_percent", "kind": "spike", "score": 0.93, "severity": "high",
        "start": pd.Timestamp(datetime(2024, 5, 14, 9)), "detected_at": pd.Timestamp(NOW),
        "explanation": "cpu 92% vs expected 20-35%"}]))
    r = call_tool(ctx, "render_report", {"period": "daily"})
    assert r.status == "ok", r.error
    md = Path(r.data["path"]).read_text()
    for heading in ("## Fleet health", "## Open alerts", "## Top anomalies", "## Metrics"):
        assert heading in md
    assert "## Maintenance risk" not in md  # no predictions stored
    cpu = window_values(fleet, datetime(2024, 5, 14), datetime(2024, 5, 15))["cpu_percent"]
    assert f"| cpu_percent | avg | {fmt(rnd(cpu.mean()), '%')} | {fmt(rnd(cpu.max()), '%')} | {len(cpu)} |" in md
    assert len(r.data["figures"]) == 5 and all(Path(f).stat().st_size > 1000 for f in r.data["figures"])
    assert all(f"]({Path(f).name})" in md for f in r.data["figures"])
    with ctx.store.engine.connect() as conn:
        stored = conn.execute(text("SELECT report_type, content FROM ai_reports")).all()
    assert stored == [("daily", md)]


def test_site_report_is_scoped(env) -> None:
    ctx, _ = env
    r = call_tool(ctx, "render_report", {"period": "daily", "site": "brixton", "charts": False})
    assert r.data["devices"] == 3 and r.data["offline"] == 1 and r.data["figures"] == []
    assert "Brixton Market" in r.data["title"] and "Camden Till" not in r.data["markdown"]


def test_report_on_empty_store_is_no_data(sqlite_store, tmp_path) -> None:
    ctx = ToolContext(sqlite_store, load_settings().replace(now=NOW.isoformat(), data_dir=str(tmp_path)), audit=False)
    r = call_tool(ctx, "render_report", {"period": "weekly"})
    assert r.status == "no_data" and "report" in r.summary
