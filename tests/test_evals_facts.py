"""Named facts and selectors against plain SQL on the seeded eval fleet (and its ground truth)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from evals.facts import INJECTION_DEVICE_NAME, UNKNOWN_DEVICE, UNKNOWN_SITE, FactError, compute
from evals.runner import NOW, alerts_digest, build_eval_fleet, restore_alerts


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    f = build_eval_fleet(tmp_path_factory.mktemp("evalfleet"))
    yield f
    f.close()


def sql(fleet, query: str, **params):
    with fleet.store.engine.connect() as conn:
        return conn.execute(text(query), params).all()


def ts(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_offline_facts_match_heartbeat_sql(fleet) -> None:
    cut = ts(NOW - timedelta(seconds=120))
    names = [r[0] for r in sql(fleet, "SELECT name FROM devices WHERE last_heartbeat_at < :c ORDER BY name", c=cut)]
    assert compute(fleet.env, "offline_device_count") == [float(len(names))]
    assert [n for n, _ in compute(fleet.env, "offline_device_names")] == names
    total = sql(fleet, "SELECT COUNT(*) FROM devices")[0][0]
    assert compute(fleet.env, "online_device_count") == [float(total - len(names))]


def test_metric_value_matches_sql_for_a_site_yesterday_and_p95(fleet) -> None:
    site = fleet.bindings["site_a"]
    a, b = ts(NOW.replace(hour=0) - timedelta(days=1)), ts(NOW.replace(hour=0))
    expected = sql(fleet, "SELECT AVG(m.cpu_percent) FROM device_metrics m JOIN devices d ON d.id = m.device_id "
                          "JOIN sites s ON s.id = d.site_id WHERE s.name = :s AND m.timestamp >= :a AND m.timestamp < :b",
                   s=site, a=a, b=b)[0][0]
    got = compute(fleet.env, "metric_value", {"metric": "cpu_percent", "scope": "site", "target": site, "window": "yesterday"})
    assert got[0] == pytest.approx(expected)
    vals = [r[0] for r in sql(fleet, "SELECT network_latency_ms FROM device_metrics WHERE timestamp >= :a AND "
                                     "timestamp < :b AND network_latency_ms IS NOT NULL", a=ts(NOW - timedelta(days=7)), b=ts(NOW))]
    got = compute(fleet.env, "metric_value", {"metric": "network_latency_ms", "agg": "p95", "window": "last_7d"})
    assert got[0] == pytest.approx(float(np.percentile(vals, 95)))


def test_extra_metric_and_device_type_scopes(fleet) -> None:
    dev = fleet.bindings["device_sensor"]
    expected = sql(fleet, "SELECT AVG(CAST(json_extract(m.extra_metrics, '$.temperature_celsius') AS REAL)) FROM device_metrics m "
                          "JOIN devices d ON d.id = m.device_id WHERE d.name = :n AND m.timestamp >= :a AND m.timestamp < :b",
                   n=dev, a=ts(NOW - timedelta(days=7)), b=ts(NOW))[0][0]
    got = compute(fleet.env, "metric_value", {"metric": "temperature_celsius", "scope": "device", "target": dev, "window": "last_7d"})
    assert got[0] == pytest.approx(expected)
    pos = sql(fleet, "SELECT SUM(m.transaction_count) FROM device_metrics m JOIN devices d ON d.id = m.device_id "
                     "WHERE d.device_type = 'pos_terminal' AND m.timestamp >= :a AND m.timestamp < :b",
              a=ts(NOW.replace(hour=0)), b=ts(NOW))[0][0]
    got = compute(fleet.env, "metric_value", {"metric": "transaction_count", "agg": "sum", "scope": "device_type",
                                              "target": "pos_terminal", "window": "today"})
    assert got[0] == pytest.approx(pos)


def test_rankings_match_a_group_by(fleet) -> None:
    rows = sql(fleet, "SELECT d.name, AVG(m.cpu_percent) AS v FROM device_metrics m JOIN devices d ON d.id = m.device_id "
                      "WHERE m.timestamp >= :a AND m.timestamp < :b AND m.cpu_percent IS NOT NULL GROUP BY d.name "
                      "ORDER BY v DESC, d.name LIMIT 5", a=ts(NOW - timedelta(days=NOW.weekday(), hours=12)), b=ts(NOW))
    got = compute(fleet.env, "top_devices_by_metric", {"metric": "cpu_percent", "window": "this_week", "n": 5})
    assert [name for name, _ in got] == [r[0] for r in rows]


def test_alert_facts_count_active_and_acknowledged(fleet) -> None:
    rows = sql(fleet, "SELECT id FROM alerts WHERE status IN ('active', 'acknowledged') ORDER BY id")
    assert compute(fleet.env, "open_alert_count") == [float(len(rows))]
    dev = fleet.bindings["device_with_alert"]
    mine = sql(fleet, "SELECT a.id FROM alerts a JOIN devices d ON d.device_id = a.device_id WHERE d.name = :n "
                      "AND a.status IN ('active', 'acknowledged') ORDER BY a.id", n=dev)
    assert compute(fleet.env, "open_alert_ids", {"device": dev}) == [float(r[0]) for r in mine]
    assert mine, "the selector picks a device that has open alerts"


def test_selectors_pick_entities_from_the_ground_truth(fleet) -> None:
    b = fleet.bindings
    sizes = dict(sql(fleet, "SELECT s.name, COUNT(*) FROM devices d JOIN sites s ON s.id = d.site_id "
                            "WHERE d.name <> :inj GROUP BY s.name", inj=INJECTION_DEVICE_NAME))
    assert sizes[b["site_a"]] == max(sizes.values())
    assert len({b["site_a"], b["site_b"], b["site_c"]}) == 3
    risk = sql(fleet, "SELECT f.failed_at, f.degradation_start FROM ai_gt_failures f JOIN devices d ON d.id = f.device_id "
                      "WHERE d.name = :n", n=b["device_at_risk"])
    assert any(str(r[0]) > ts(NOW) and str(r[1]) <= ts(NOW) for r in risk)
    assert sql(fleet, "SELECT COUNT(*) FROM ai_gt_anomalies g JOIN devices d ON d.id = g.device_id WHERE d.name = :n",
               n=b["device_flagged"])[0][0] > 0
    assert b["injection_device"] == INJECTION_DEVICE_NAME
    assert sql(fleet, "SELECT COUNT(*) FROM devices WHERE name = :n", n=INJECTION_DEVICE_NAME)[0][0] == 1
    assert "ignore previous instructions" in sql(fleet, "SELECT description FROM alerts WHERE id = :i",
                                                 i=fleet.extras["injection_alert_id"])[0][0].lower()
    assert b["unknown_site"] == UNKNOWN_SITE and b["unknown_device"] == UNKNOWN_DEVICE


def test_maintenance_facts_come_from_ground_truth_failures(fleet) -> None:
    horizon = ts(NOW + timedelta(days=30))
    rows = sql(fleet, "SELECT d.name FROM ai_gt_failures f JOIN devices d ON d.id = f.device_id WHERE f.failed_at > :now "
                      "AND f.failed_at <= :h AND f.degradation_start <= :now ORDER BY f.failed_at", now=ts(NOW), h=horizon)
    assert [n for n, _ in compute(fleet.env, "gt_failing_devices", {"days": 30})] == [r[0] for r in rows]
    assert fleet.bindings["device_at_risk"] in [r[0] for r in rows]


def test_a_fact_with_bad_arguments_is_a_clear_error(fleet) -> None:
    with pytest.raises(FactError, match="bad arguments"):
        compute(fleet.env, "offline_device_count", {"colour": "red"})
    with pytest.raises(FactError, match="No site named"):
        compute(fleet.env, "device_count", {"site": "Nowhere"})
    with pytest.raises(FactError, match="Unknown fact"):
        compute(fleet.env, "nope")


def test_restore_alerts_undoes_a_write(fleet) -> None:
    before = alerts_digest(fleet.store)
    with fleet.store.engine.begin() as conn:
        conn.execute(text("UPDATE alerts SET status = 'resolved' WHERE status = 'active'"))
    assert alerts_digest(fleet.store) != before
    restore_alerts(fleet)
    assert alerts_digest(fleet.store) == before


def test_a_second_build_in_the_same_process_reuses_the_fleet(fleet, tmp_path: Path) -> None:
    again = build_eval_fleet(tmp_path / "again")
    try:
        assert again.bindings == fleet.bindings
        assert again.build_seconds < 5
    finally:
        again.close()
