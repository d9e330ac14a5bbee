"""detect_anomalies / scan_new / raise_alerts against a real SQLite store."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tools.anomaly.service import detect_anomalies, raise_alerts, scan_new
from tools.store.bulk import insert_frame, read_frame

START = datetime(2024, 1, 1)
DAYS = 9
SPIKE_AT = START + timedelta(days=8, hours=10)


def _seed(store, days: int = DAYS, start: datetime = START) -> None:
    if read_frame(store, "SELECT COUNT(*) AS n FROM devices")["n"].iloc[0] == 0:
        insert_frame(store, "sites", pd.DataFrame([{"id": 1, "site_id": "SITE-1", "name": "Camden"}]))
        insert_frame(store, "devices", pd.DataFrame([
            {"id": i, "device_id": f"DEVICE-0000-0000-000{i}", "name": f"till {i}", "device_type": "pos_terminal",
             "site_id": 1} for i in (1, 2)]))
    ts = pd.date_range(start, periods=288 * days, freq="5min")
    rows = []
    for dev in (1, 2):
        rng = np.random.default_rng(dev)
        hour = ts.hour.to_numpy()
        cpu = 30 + 10 * ((hour >= 8) & (hour < 20)) + rng.normal(0, 1, len(ts))
        cpu[ts == pd.Timestamp(SPIKE_AT)] += 50 if dev == 1 else 0
        rows.append(pd.DataFrame({"device_id": dev, "timestamp": ts, "cpu_percent": cpu,
                                  "memory_percent": 50 + rng.normal(0, 1, len(ts))}))
    insert_frame(store, "device_metrics", pd.concat(rows), conflict=("device_id", "timestamp"))


def test_batch_detection_persists_one_explained_finding_and_raises_an_alert(sqlite_store) -> None:
    _seed(sqlite_store)
    found = detect_anomalies(sqlite_store, scope="fleet", metrics=["cpu_percent", "memory_percent"])
    assert [(f.device_id, f.metric, f.kind, f.start) for f in found] == [(1, "cpu_percent", "spike", SPIKE_AT)]
    f = found[0]
    assert f.id is not None and f.public_id == "DEVICE-0000-0000-0001"
    stored = read_frame(sqlite_store, "SELECT device_id, metric, kind, explanation FROM ai_anomalies")
    assert stored.to_dict("records")[0]["kind"] == "spike"
    # idempotent: a second run stores nothing new
    detect_anomalies(sqlite_store, scope="device", ids=[1], metrics=["cpu_percent", "memory_percent"])
    assert len(read_frame(sqlite_store, "SELECT id FROM ai_anomalies")) == 1
    assert raise_alerts(sqlite_store, found, min_severity="low") == 1
    alert = read_frame(sqlite_store, "SELECT device_id, title, severity, category FROM alerts").iloc[0]
    assert alert["device_id"] == "DEVICE-0000-0000-0001"
    assert alert["title"].startswith("Anomaly: cpu_percent ") and "(expected " in alert["title"]
    assert alert["category"] == "anomaly"


def test_incremental_scan_scores_only_new_points_and_keeps_state(sqlite_store) -> None:
    _seed(sqlite_store, days=8)
    first = scan_new(sqlite_store, now=START + timedelta(days=8) - timedelta(minutes=5))
    assert first == []
    state = read_frame(sqlite_store, "SELECT key, last_timestamp FROM ai_detector_state")
    assert len(state) == 2
    _seed(sqlite_store, days=1, start=START + timedelta(days=8))
    later = scan_new(sqlite_store, now=SPIKE_AT + timedelta(minutes=5))
    assert [(f.device_id, f.kind, f.start) for f in later] == [(1, "spike", SPIKE_AT)]
    again = scan_new(sqlite_store, now=SPIKE_AT + timedelta(minutes=5))
    assert again == [] or all(f.start == SPIKE_AT for f in again)


def test_postgres_batch_and_incremental_agree(pg_store) -> None:
    """The same spike is found by the batch API and by incremental scans on PostgreSQL."""
    _seed(pg_store, days=8)
    assert scan_new(pg_store, now=START + timedelta(days=8) - timedelta(minutes=5)) == []
    _seed(pg_store, days=1, start=START + timedelta(days=8))
    later = scan_new(pg_store, now=SPIKE_AT + timedelta(minutes=5))
    assert [(f.device_id, f.kind, f.start) for f in later] == [(1, "spike", SPIKE_AT)]
    batch = detect_anomalies(pg_store, metrics=["cpu_percent", "memory_percent"], persist=False)
    assert [(f.device_id, f.kind, f.start) for f in batch] == [(1, "spike", SPIKE_AT)]


def test_findings_during_planned_maintenance_are_not_reported(sqlite_store):
    """A device that goes quiet or restarts during a scheduled maintenance visit (recorded in
    device_state_history) is doing what was planned; the same finding outside the window stays."""
    from tools.anomaly.engine import Finding
    from tools.anomaly.service import drop_planned, maintenance_windows

    _seed(sqlite_store)
    at = SPIKE_AT - timedelta(hours=3)
    insert_frame(sqlite_store, "device_state_history", pd.DataFrame([
        {"id": 1, "timestamp": at, "device_id": 1, "previous_state": "healthy", "new_state": "maintenance"},
        {"id": 2, "timestamp": at + timedelta(minutes=30), "device_id": 1, "previous_state": "maintenance",
         "new_state": "healthy"}]))
    windows = maintenance_windows(sqlite_store)
    assert list(windows) == [1]

    def finding(device: int, start: datetime) -> Finding:
        return Finding(device_id=device, metric="all", metrics=["all"], kind="outage", score=0.75, severity="medium",
                       start=start, end=start + timedelta(minutes=20), observed=None, expected_low=None,
                       expected_high=None)

    during, later, other = finding(1, at + timedelta(minutes=10)), finding(1, at + timedelta(hours=2)), finding(2, at)
    assert drop_planned([during, later, other], windows) == [later, other]
    # the spike injected hours after the visit is still found end to end
    found = detect_anomalies(sqlite_store, persist=False)
    assert any(f.device_id == 1 and abs(f.start - SPIKE_AT) <= timedelta(minutes=5) for f in found)
