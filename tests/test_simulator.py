"""The fleet simulator: deterministic, realistic where it matters, and honest ground truth."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from tools.simulator import parse_interval, populate_fixture_db, simulate_fleet
from tools.store.bulk import read_frame
from tools.store.engine import open_store
from tools.store.schema import ANOMALY_KINDS, NAMED_METRICS

END = datetime(2025, 3, 14, 12, 0)


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory):
    """One populated fixture fleet shared by the read-only tests of this module."""
    path = tmp_path_factory.mktemp("sim") / "fixture.db"
    store = open_store(f"sqlite:///{path}")
    summary = populate_fixture_db(store, seed=42, end=END)
    yield store, summary
    store.dispose()


def _metrics(store, device_id: int | None = None) -> pd.DataFrame:
    sql = "SELECT * FROM device_metrics" + (" WHERE device_id = :d" if device_id else "") + " ORDER BY device_id, timestamp"
    return read_frame(store, sql, {"d": device_id} if device_id else None, parse_dates=["timestamp"])


def _fingerprint(store) -> dict:
    """Aggregates and ground truth that must be identical for the same seed."""
    agg = read_frame(store, "SELECT COUNT(*) AS n, SUM(cpu_percent) AS cpu, SUM(transaction_count) AS tx, "
                            "SUM(LENGTH(extra_metrics)) AS extra_len, MIN(timestamp) AS t0, MAX(timestamp) AS t1 "
                            "FROM device_metrics").iloc[0].to_dict()
    gt = read_frame(store, "SELECT device_id, kind, metrics, start, \"end\", magnitude FROM ai_gt_anomalies "
                           "ORDER BY device_id, start").astype(str).values.tolist()
    fails = read_frame(store, "SELECT device_id, failed_at, cause, resolution FROM ai_gt_failures "
                              "ORDER BY device_id, failed_at").astype(str).values.tolist()
    devices = read_frame(store, "SELECT device_id, name, device_type, firmware_version, health_state "
                                "FROM devices ORDER BY id").values.tolist()
    counts = {t: int(read_frame(store, f"SELECT COUNT(*) AS n FROM {t}").n[0])
              for t in ("health_checks", "error_logs", "alerts", "jobs", "ai_device_events")}
    return {"agg": {k: str(v) for k, v in agg.items()}, "gt": gt, "fails": fails, "devices": devices, "counts": counts}


def test_same_seed_gives_identical_data(tmp_path):
    stores = [open_store(f"sqlite:///{tmp_path / f'{i}.db'}") for i in range(3)]
    for store, seed in zip(stores, (5, 5, 6)):
        simulate_fleet(store, devices=6, days=2, seed=seed, end=END)
    a, b, c = (_fingerprint(s) for s in stores)
    assert a == b
    assert a["agg"] != c["agg"]


def test_fixture_has_every_anomaly_kind_and_a_failure(fixture_db):
    store, summary = fixture_db
    kinds = set(read_frame(store, "SELECT DISTINCT kind FROM ai_gt_anomalies").kind)
    assert kinds == set(ANOMALY_KINDS)
    fails = read_frame(store, "SELECT * FROM ai_gt_failures", parse_dates=["failed_at"])
    in_window = fails[(fails.failed_at >= pd.Timestamp(summary.start)) & (fails.failed_at <= pd.Timestamp(summary.end))]
    assert len(in_window) >= 1 and summary.failures == len(in_window)
    events = read_frame(store, "SELECT event_type FROM ai_device_events")
    assert "failure" in set(events.event_type)


def test_ids_names_and_device_types_look_like_homepot(fixture_db):
    store, _ = fixture_db
    devices = read_frame(store, "SELECT * FROM devices")
    assert devices.device_id.str.fullmatch(r"DEVICE-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}").all()
    sites = read_frame(store, "SELECT * FROM sites")
    assert sites.site_id.str.fullmatch(r"SITE-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}").all()
    assert devices.device_type.value_counts().idxmax() == "pos_terminal"
    assert devices.name.str.match(r"POS-\d\d ").any()
    assert all(json.loads(c)["device_source"] == "simulation" for c in devices.config)
    sched = read_frame(store, "SELECT * FROM site_operating_schedules")
    assert len(sched) == 7 * len(sites) and set(sched.day_of_week) == set(range(7))


def test_pos_terminal_reports_more_than_50_metrics(fixture_db):
    store, _ = fixture_db
    pos = int(read_frame(store, "SELECT MIN(id) AS id FROM devices WHERE device_type = 'pos_terminal'").id[0])
    df = _metrics(store, pos)
    extra_names = set().union(*(json.loads(e).keys() for e in df.extra_metrics))
    assert len(extra_names) + len(NAMED_METRICS) >= 50
    hourly = df.extra_metrics.str.contains('"uptime_hours"').mean()
    every = df.extra_metrics.str.contains('"temperature_celsius"').mean()
    assert every == 1.0 and 0.03 < hourly < 0.15  # slow metrics are sampled hourly, not every 5 minutes
    assert df.error_rate.between(0, 1).all()


def test_transactions_follow_trading_hours_and_drive_cpu(fixture_db):
    store, _ = fixture_db
    df = read_frame(store, "SELECT m.timestamp, m.transaction_count, m.cpu_percent, m.queue_depth, s.name AS site "
                           "FROM device_metrics m JOIN devices d ON d.id = m.device_id JOIN sites s ON s.id = d.site_id "
                           "WHERE d.device_type = 'pos_terminal'", parse_dates=["timestamp"])
    local_hour = df.timestamp.dt.tz_localize("UTC").dt.tz_convert("Europe/London").dt.hour
    night = df[local_hour.between(1, 5)].transaction_count.mean()
    day = df[local_hour.between(12, 14)].transaction_count.mean()
    assert day > 5 * max(night, 0.05)
    assert df.transaction_count.corr(df.cpu_percent) > 0.5
    assert df.transaction_count.corr(df.queue_depth) > 0.3


def test_injected_anomalies_are_visible_in_the_data(fixture_db):
    store, _ = fixture_db
    gt = read_frame(store, "SELECT * FROM ai_gt_anomalies", parse_dates=["start", "end"])
    checked = 0
    for row in gt[gt.kind.isin(["spike", "dip", "level_shift", "stuck"])].itertuples():
        metric = json.loads(row.metrics)[0] if isinstance(row.metrics, str) else row.metrics[0]
        df = _metrics(store, row.device_id)
        values = df[metric] if metric in df else df.extra_metrics.map(lambda e: json.loads(e).get(metric))
        inside = values[(df.timestamp >= row.start) & (df.timestamp <= row.end)].astype(float)
        if inside.empty:
            continue
        details = json.loads(row.details) if isinstance(row.details, str) else row.details
        sigma = details["sigma"]
        if row.kind == "stuck":
            assert inside.nunique() == 1
        else:
            # the value moved by the recorded delta, many noise-sigmas away from its neighbours
            assert abs(details["delta"]) >= 3 * sigma
            near = (df.timestamp >= row.start - pd.Timedelta(hours=1)) & (df.timestamp <= row.end + pd.Timedelta(hours=1))
            around = values[near & ~((df.timestamp >= row.start) & (df.timestamp <= row.end))].astype(float)
            if row.kind in ("spike", "dip") and len(around) >= 6:
                assert abs(inside.mean() - around.median()) > 3 * sigma
        checked += 1
    assert checked >= 4
    outages = gt[gt.kind == "outage"]
    row = outages.iloc[0]
    df = _metrics(store, int(row.device_id))
    assert not ((df.timestamp >= row.start) & (df.timestamp <= row.end)).any()
    hc = read_frame(store, "SELECT timestamp, is_healthy FROM health_checks WHERE device_id = :d",
                    {"d": int(row.device_id)}, parse_dates=["timestamp"])
    during = hc[(hc.timestamp >= row.start) & (hc.timestamp <= row.end)]
    assert not during.is_healthy.astype(bool).any()


def test_failures_have_degradation_repair_and_records(fixture_db):
    store, summary = fixture_db
    fails = read_frame(store, "SELECT * FROM ai_gt_failures", parse_dates=["failed_at", "degradation_start"])
    f = fails[(fails.failed_at >= pd.Timestamp(summary.start)) & (fails.failed_at <= pd.Timestamp(summary.end))].iloc[0]
    assert f.degradation_start < f.failed_at
    df = _metrics(store, int(f.device_id))
    after = df[(df.timestamp > f.failed_at) & (df.timestamp < f.failed_at + pd.Timedelta(minutes=30))]
    assert after.empty  # the device is down after it fails
    states = read_frame(store, "SELECT new_state FROM device_state_history WHERE device_id = :d", {"d": int(f.device_id)})
    assert "error" in set(states.new_state)
    alerts = read_frame(store, "SELECT title, severity FROM alerts WHERE title LIKE 'Device offline%'")
    assert (alerts.severity == "critical").any()
    logs = read_frame(store, "SELECT context FROM error_logs")
    devices = set(read_frame(store, "SELECT device_id FROM devices").device_id)
    assert {json.loads(c)["device_id"] for c in logs.context} <= devices


def test_some_devices_are_offline_or_stale_at_the_end(fixture_db):
    store, summary = fixture_db
    dev = read_frame(store, "SELECT id, last_heartbeat_at FROM devices", parse_dates=["last_heartbeat_at"])
    age = (pd.Timestamp(summary.end) - dev.last_heartbeat_at).dt.total_seconds()
    assert (age > 120).any() and (age <= 120).mean() > 0.8


def test_bad_arguments_are_one_sentence():
    with pytest.raises(ValueError, match="interval"):
        parse_interval("5 parsecs")
    assert parse_interval("5m") == 300 and parse_interval("1h") == 3600


def test_runs_on_postgres(pg_store):
    summary = simulate_fleet(pg_store, devices=4, days=1, seed=1, end=END, anomalies_per_device_week=7)
    n = int(read_frame(pg_store, "SELECT COUNT(*) AS n FROM device_metrics").n[0])
    assert n == summary.metric_rows > 0
    extra = read_frame(pg_store, "SELECT extra_metrics FROM device_metrics LIMIT 1").extra_metrics[0]
    assert "temperature_celsius" in (extra if isinstance(extra, dict) else json.loads(extra))
    hc = read_frame(pg_store, "SELECT MIN(timestamp) AS t FROM health_checks", parse_dates=["t"]).t[0]
    assert abs(hc - pd.Timestamp(summary.start)) < pd.Timedelta(hours=1)  # stored as UTC, not shifted
