"""The agent's bar, end to end: the real Agent (offline model, graph, SQLite checkpointer) on the
seeded fleet of ``populate_fixture_db(seed=42)`` with a full anomaly scan, answering the issue's
questions. Every number the answer must carry is computed here with independent SQL on the store,
never by calling the tool that produced it.

The sites and devices named in the questions are picked from the data (the device with the most
findings, the one with open alerts, ...), so the test follows the simulator rather than a copy
of its output.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from agent.runtime import Agent
from memory.context import build_fleet_context
from tools.anomaly.service import detect_anomalies
from tools.config import load_settings
from tools.metric_tools import fmt, rnd
from tools.registry import ToolContext, call_tool, get_tools
from tools.simulator import populate_fixture_db
from tools.store.engine import open_store

TS = "%Y-%m-%d %H:%M:%S.%f"  # how the bulk writer stores SQLite timestamps


class Bar:
    """The seeded store, the agent over it, and SQL helpers for the expected figures."""

    def __init__(self, store, agent: Agent, now: datetime) -> None:
        self.store, self.agent, self.now = store, agent, now
        self.thread = "bar"

    def rows(self, sql: str, **params) -> list:
        params = {k: v.strftime(TS) if isinstance(v, datetime) else v for k, v in params.items()}
        with self.store.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    def scalar(self, sql: str, **params):
        return self.rows(sql, **params)[0][0]

    def ask(self, question: str):
        return self.agent.ask(question, self.thread)

    def site(self, n: int) -> tuple[int, str]:
        return tuple(self.rows("SELECT id, name FROM sites ORDER BY id")[n])


@pytest.fixture(scope="module")
def bar(tmp_path_factory):
    data = tmp_path_factory.mktemp("bar")
    store = open_store(f"sqlite:///{data}/homepot.db")
    summary = populate_fixture_db(store, seed=42)
    detect_anomalies(store, scope="fleet")
    settings = load_settings({"HOMEPOT_AI_DATA_DIR": str(data), "HOMEPOT_AI_NOW": summary.end.isoformat(),
                              "HOMEPOT_AI_MODEL": "offline", "HOMEPOT_AI_USER": "bar-test"})
    agent = Agent.from_settings(settings, model="offline", store=store)
    yield Bar(store, agent, summary.end)
    agent.close()


def shown(value: float, unit: str = "") -> str:
    """A figure the way answers print it (display rounding only; the value comes from SQL)."""
    return fmt(rnd(value), unit)


def site_avg(bar: Bar, metric: str, site_id: int, start: datetime, end: datetime) -> tuple[float, int, int]:
    return tuple(bar.rows(
        f"SELECT AVG(m.{metric}), COUNT(m.{metric}), COUNT(DISTINCT CASE WHEN m.{metric} IS NOT NULL THEN m.device_id END) "
        "FROM device_metrics m JOIN devices d ON d.id = m.device_id "
        "WHERE d.site_id = :s AND m.timestamp >= :a AND m.timestamp < :b", s=site_id, a=start, b=end)[0])


def offline_names(bar: Bar) -> list[str]:
    """SCHEMA.md: online while the last heartbeat is under 120 s old; none at all is offline."""
    return [r[0] for r in bar.rows("SELECT name FROM devices WHERE last_heartbeat_at IS NULL "
                                   "OR last_heartbeat_at < :c ORDER BY name", c=bar.now - timedelta(seconds=120))]


def test_how_many_devices_are_offline(bar: Bar) -> None:
    names = offline_names(bar)
    reply = bar.ask("how many devices are offline?")
    assert [c["name"] for c in reply.tool_calls] == ["list_devices"]
    n = len(names)
    assert re.search(rf"\b{n} devices? match", reply.answer), reply.answer
    assert all(name in reply.answer for name in names)
    assert f"; {n} offline (" in reply.answer.splitlines()[-1]  # the trust line agrees


def test_the_fleet_context_trust_line_and_tool_agree_on_offline(bar: Bar) -> None:
    n = len(offline_names(bar))
    ctx = ToolContext(store=bar.store, settings=bar.agent.ctx.settings, audit=False)
    overview = call_tool(ctx, "fleet_overview", {})
    snapshot = build_fleet_context(bar.store, bar.agent.ctx.settings)
    from agent.trust import freshness

    assert overview.data["offline"] == snapshot.connectivity.get("offline", 0) == len(
        freshness(bar.store, bar.agent.ctx.settings).offline) == n


def test_average_cpu_at_a_site_yesterday(bar: Bar) -> None:
    site_id, site = bar.site(0)
    today = bar.now.replace(hour=0, minute=0, second=0, microsecond=0)
    avg, readings, devices = site_avg(bar, "cpu_percent", site_id, today - timedelta(days=1), today)
    reply = bar.ask(f"average CPU at {site.split()[0]} yesterday")
    call = reply.tool_calls[0]
    assert call["name"] == "query_metric" and call["args"]["target"] == site and call["args"]["window"] == "yesterday"
    assert shown(avg, "%") in reply.answer
    assert f"{readings} readings from {devices} devices" in reply.answer


def test_which_5_devices_had_the_most_anomalies_this_week(bar: Bar) -> None:
    today = bar.now.replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    counts = dict(bar.rows(
        "SELECT d.name, COUNT(*) FROM ai_anomalies a JOIN devices d ON d.id = a.device_id "
        "WHERE a.start >= :a AND a.start < :b GROUP BY d.name", a=monday, b=bar.now))
    top5 = sorted(counts.values(), reverse=True)[:5]
    assert top5, "the scan should find anomalies this week"
    reply = bar.ask("which 5 devices had the most anomalies this week?")
    assert reply.tool_calls[0]["name"] == "find_anomalies"
    table = [line.split(" | ") for line in reply.answer.splitlines() if line.startswith("| ") and "anomalies |" not in line]
    listed = [(cells[0].strip("| "), int(cells[-1].strip("| "))) for cells in table]
    # the five, then any device tied with the fifth (a cut inside a tie would pick one at random)
    assert [n for _, n in listed][:5] == top5
    assert all(n == top5[-1] for _, n in listed[5:])
    assert all(counts[name] == n for name, n in listed)


def test_which_devices_need_maintenance_in_the_next_30_days(bar: Bar) -> None:
    if "fleet_risk_ranking" not in {t.name for t in get_tools()}:
        pytest.skip("tools/maintenance_tools.py (fleet_risk_ranking) has not landed yet")
    reply = bar.ask("which devices need maintenance in the next 30 days?")
    call = reply.tool_calls[0]
    assert call["name"] == "fleet_risk_ranking" and call["args"].get("horizon_days") == 30
    assert call["status"] == "ok", reply.answer
    # The ranking is the newest stored prediction per device, riskiest first by P(fail in 30 d).
    expected = bar.rows(
        "SELECT d.name, p.p_fail_30d FROM ai_predictions p JOIN devices d ON d.id = p.device_id "
        "WHERE p.predicted_at = (SELECT MAX(predicted_at) FROM ai_predictions) "
        "ORDER BY p.p_fail_30d DESC, p.rul_median_days ASC")
    table = [[c.strip("| ") for c in line.split(" | ")] for line in reply.answer.splitlines()
             if line.startswith("| ") and not line.startswith("| name")]
    assert table
    risk = {name: p for name, p in expected}
    for cells in table:
        assert cells[0] in risk and cells[4] == str(round(risk[cells[0]], 3))
    assert [c[0] for c in table] == [n for n, _ in expected][:len(table)]


def test_why_is_a_device_flagged(bar: Bar) -> None:
    device = bar.scalar("SELECT d.name FROM ai_anomalies a JOIN devices d ON d.id = a.device_id "
                        "GROUP BY d.name ORDER BY COUNT(*) DESC, d.name LIMIT 1")
    latest = bar.rows(
        "SELECT a.metric, a.kind, a.severity, a.score FROM ai_anomalies a JOIN devices d ON d.id = a.device_id "
        "WHERE d.name = :n AND a.start = (SELECT MAX(b.start) FROM ai_anomalies b WHERE b.device_id = a.device_id)",
        n=device)
    reply = bar.ask(f"why is {device} flagged?")
    assert reply.tool_calls[0]["name"] == "explain_anomaly"
    assert any(f"Metric: {m}, kind: {k}, severity: {s}, score: {round(score, 4)}" in reply.answer
               for m, k, s, score in latest), reply.answer


def test_compare_the_error_rate_of_two_sites_over_the_last_7_days(bar: Bar) -> None:
    (a_id, a), (b_id, b) = bar.site(0), bar.site(1)
    start = bar.now - timedelta(days=7)
    reply = bar.ask(f"compare the error rate of {a.split()[0]} and {b.split()[0]} over the last 7 days")
    args = reply.tool_calls[0]["args"]
    assert (args["target_a"], args["target_b"], args["window"]) == (a, b, "last_7d")
    for site_id, name in ((a_id, a), (b_id, b)):
        assert f"{name} {shown(site_avg(bar, 'error_rate', site_id, start, bar.now)[0])}" in reply.answer


def open_alert_ids(bar: Bar, where: str, **params) -> list[int]:
    return [r[0] for r in bar.rows(
        "SELECT a.id FROM alerts a LEFT JOIN devices d ON d.device_id = a.device_id "
        f"WHERE a.status IN ('active', 'acknowledged') AND {where}", **params)]


def test_show_open_alerts_for_a_device_then_for_a_site(bar: Bar) -> None:
    device, public = bar.rows(
        "SELECT d.name, d.device_id FROM alerts a JOIN devices d ON d.device_id = a.device_id "
        "WHERE a.status IN ('active', 'acknowledged') GROUP BY d.name, d.device_id ORDER BY COUNT(*) DESC LIMIT 1")[0]
    ids = open_alert_ids(bar, "a.device_id = :p", p=public)
    reply = bar.ask(f"show open alerts for {device}")
    assert reply.tool_calls[0]["name"] == "list_alerts"
    assert reply.answer.startswith(f"{len(ids)} alert")
    assert all(re.search(rf"\| {i} \|", reply.answer) for i in ids)

    # The follow-up keeps the question (open alerts) and changes the scope to a site.
    site_id, site = bar.rows(
        "SELECT s.id, s.name FROM sites s ORDER BY (SELECT COUNT(*) FROM alerts a LEFT JOIN devices d "
        "ON d.device_id = a.device_id WHERE COALESCE(a.site_id, d.site_id) = s.id "
        "AND a.status IN ('active', 'acknowledged')) DESC, s.id LIMIT 1")[0]
    site_ids = open_alert_ids(bar, "COALESCE(a.site_id, d.site_id) = :s", s=site_id)
    reply = bar.ask(f"and for {site.split()[0]}?")
    call = reply.tool_calls[0]
    assert call["name"] == "list_alerts" and call["args"].get("site") == site and call["args"].get("status") == "open"
    if site_ids:
        assert reply.answer.startswith(f"{len(site_ids)} alert")
        assert all(re.search(rf"\| {i} \|", reply.answer) for i in site_ids)
    else:
        assert reply.answer.startswith("No alerts match")


def test_the_bar_turns_are_audited_with_user_surface_and_thread(bar: Bar) -> None:
    reply = bar.ask("how many devices are offline?")
    assert not reply.grounding.get("flagged")
    rows = bar.rows("SELECT tool, surface, rows FROM ai_tool_calls WHERE user_id = 'bar-test' AND thread_id = :t "
                    "ORDER BY id DESC LIMIT 1", t=bar.thread)
    assert rows and rows[0][0] == "list_devices" and rows[0][1] == "cli" and rows[0][2] == len(offline_names(bar))
