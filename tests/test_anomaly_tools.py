"""Agent tools find_anomalies / explain_anomaly through the registry."""

from __future__ import annotations

from datetime import timedelta

from test_anomaly_service import SPIKE_AT, _seed
from tools.config import load_settings
from tools.registry import ToolContext, call_tool


def test_find_then_explain_an_anomaly(sqlite_store, tmp_path) -> None:
    _seed(sqlite_store)
    settings = load_settings({"HOMEPOT_AI_NOW": (SPIKE_AT + timedelta(hours=5)).isoformat(),
                              "HOMEPOT_AI_DATA_DIR": str(tmp_path)})
    ctx = ToolContext(store=sqlite_store, settings=settings, audit=False)
    found = call_tool(ctx, "find_anomalies", {"window": "last_24h"})
    assert found.status == "ok" and found.rows == 1
    row = found.data[0]
    assert (row["public_id"], row["kind"], row["metric"]) == ("DEVICE-0000-0000-0001", "spike", "cpu_percent")
    why = call_tool(ctx, "explain_anomaly", {"anomaly_id": row["id"]})
    assert why.status == "ok" and why.summary.startswith("cpu_percent at ") and "expected" in why.summary
    none = call_tool(ctx, "find_anomalies", {"scope": "device", "target": "till 2", "window": "last_24h"})
    assert none.status == "no_data"
