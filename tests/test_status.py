"""Fleet status: every figure equals a direct SQL count on a small hand-made fleet."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy import text

from tools.status import fleet_status, render_status
from tools.store.bulk import insert_frame

NOW = datetime(2025, 3, 2, 12, 0, 0)


def _fleet(store) -> None:
    insert_frame(store, "sites", pd.DataFrame({
        "site_id": ["SITE-AAAA-AAAA", "SITE-BBBB-BBBB"], "name": ["A", "B"], "is_active": [True, False]}))
    utc = timezone.utc
    beats = [NOW - timedelta(seconds=30), NOW - timedelta(seconds=119), NOW - timedelta(minutes=10), None]
    insert_frame(store, "devices", pd.DataFrame({
        "device_id": [f"DEVICE-AAAA-AAAA-000{i}" for i in range(4)],
        "name": [f"d{i}" for i in range(4)],
        "device_type": ["pos_terminal", "pos_terminal", "iot_sensor", "gateway"],
        "health_state": ["healthy", "warning", "healthy", "error"],
        "site_id": [1, 1, 2, 2],
        "last_heartbeat_at": [b.replace(tzinfo=utc) if b else None for b in beats],
    }))
    rows = []
    for dev, newest in ((1, NOW - timedelta(minutes=5)), (2, NOW - timedelta(hours=3)), (3, NOW - timedelta(minutes=1))):
        for k in range(4):
            rows.append({"device_id": dev, "timestamp": newest - timedelta(minutes=5 * k), "cpu_percent": 1.0})
    insert_frame(store, "device_metrics", pd.DataFrame(rows), conflict=("device_id", "timestamp"))
    insert_frame(store, "alerts", pd.DataFrame({
        "timestamp": [NOW] * 5,
        "device_id": ["DEVICE-AAAA-AAAA-0000"] * 5,
        "title": ["t"] * 5,
        "severity": ["critical", "high", "high", "low", "critical"],
        "status": ["active", "acknowledged", "active", "resolved", "ignored"],
    }))


def _scalar(store, sql: str):
    with store.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_status_matches_direct_sql_counts(store):
    _fleet(store)
    s = fleet_status(store, NOW, stale_after_s=900)
    assert s.sites == _scalar(store, "SELECT COUNT(*) FROM sites") == 2
    assert s.sites_active == 1
    assert s.devices == _scalar(store, "SELECT COUNT(*) FROM devices") == 4
    assert s.devices_by_type == {"pos_terminal": 2, "iot_sensor": 1, "gateway": 1}
    assert s.health == {"healthy": 2, "warning": 1, "error": 1}
    assert (s.online, s.offline, s.never_seen) == (2, 1, 1)
    assert s.data_start == NOW - timedelta(hours=3, minutes=15)
    assert s.data_end == NOW - timedelta(minutes=1)
    assert s.data_age_seconds == 60
    assert s.devices_with_data == _scalar(store, "SELECT COUNT(DISTINCT device_id) FROM device_metrics") == 3
    assert (s.devices_stale, s.devices_without_data) == (1, 1)
    assert s.stale_devices == ["DEVICE-AAAA-AAAA-0001"]
    assert s.open_alerts == {"critical": 1, "high": 2}
    assert s.open_alerts_total == _scalar(
        store, "SELECT COUNT(*) FROM alerts WHERE status IN ('active', 'acknowledged')")


def test_status_of_an_empty_store_says_there_is_no_data(store):
    s = fleet_status(store, NOW)
    assert (s.devices, s.devices_with_data, s.open_alerts_total) == (0, 0, 0)
    assert s.data_end is None
    assert "none yet" in render_status(s)


def test_rendering_names_every_section(store):
    _fleet(store)
    out = render_status(fleet_status(store, NOW))
    for word in ("Sites", "Devices", "Health", "Connectivity", "Metrics", "Freshness", "Open alerts"):
        assert word in out
    assert "2 online, 1 offline, 1 never seen" in out
