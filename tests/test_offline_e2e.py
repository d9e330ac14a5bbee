"""The offline model end to end on a seeded fleet: its answers carry the numbers SQL gives.

The hand-made fleet of tests/test_tools_fleet_fixture.py (three sites, ten devices, hourly
metrics, alerts, one device named like a prompt injection) is queried through the real tools
(``tools.registry.call_tool``), and each number the answer must state is computed here
independently with plain SQL.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from sqlalchemy import text

from agent.offline import OfflineChatModel
from agent.toolset import tool_schemas
from test_tools_fleet_fixture import INJECTION_NAME, NOW, build_fleet
from tools.config import load_settings
from tools.metric_tools import fmt, rnd
from tools.registry import ToolContext, call_tool, get_tools


@pytest.fixture
def fleet(sqlite_store):
    build_fleet(sqlite_store)
    settings = load_settings().replace(HOMEPOT_AI_NOW=NOW.isoformat())
    ctx = ToolContext(store=sqlite_store, settings=settings, audit=False)
    model = OfflineChatModel.from_store(sqlite_store, now=NOW)
    return sqlite_store, ctx, model.bind_tools(tool_schemas(get_tools()))


def ask(fleet, question: str, history: list | None = None) -> tuple[list[dict], str, list]:
    """One turn: the model's calls run through the registry, then the model answers."""
    _, ctx, bound = fleet
    messages = [*(history or []), HumanMessage(question)]
    ai = bound.invoke(messages)
    messages.append(ai)
    for call in ai.tool_calls:
        result = call_tool(ctx, call["name"], call["args"])
        messages.append(ToolMessage(result.to_model_text(), tool_call_id=call["id"], name=call["name"]))
    final = bound.invoke(messages) if ai.tool_calls else ai
    messages.append(final)
    return ai.tool_calls, str(final.content), messages


def scalar(store, sql: str, **params) -> float:
    with store.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def site_avg(store, metric: str, site_id: int, start, end) -> float:
    return scalar(store, f"SELECT AVG(m.{metric}) FROM device_metrics m JOIN devices d ON d.id = m.device_id "
                         "WHERE d.site_id = :s AND m.timestamp >= :a AND m.timestamp < :b",
                  s=site_id, a=start.isoformat(sep=" "), b=end.isoformat(sep=" "))


def test_how_many_devices_are_offline(fleet) -> None:
    store = fleet[0]
    calls, answer, _ = ask(fleet, "how many devices are offline?")
    assert calls[0]["name"] == "list_devices"
    cutoff = (NOW - timedelta(seconds=120)).isoformat(sep=" ")
    offline = scalar(store, "SELECT COUNT(*) FROM devices WHERE last_heartbeat_at < :c", c=cutoff)
    assert offline == 2
    assert re.search(rf"\b{offline} devices\b", answer)
    with store.engine.connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT name FROM devices WHERE last_heartbeat_at < :c"), {"c": cutoff})]
    assert all(n in answer for n in names)


def test_average_cpu_at_a_site_yesterday_then_the_follow_up(fleet) -> None:
    store = fleet[0]
    day = NOW.replace(hour=0) - timedelta(days=1)
    calls, answer, messages = ask(fleet, "average CPU at Camden yesterday")
    assert calls[0]["args"]["target"] == "Camden High St"
    assert fmt(rnd(site_avg(store, "cpu_percent", 1, day, day + timedelta(days=1))), "%") in answer
    calls, answer, _ = ask(fleet, "and for Shoreditch?", messages)
    assert calls[0]["name"] == "query_metric" and calls[0]["args"]["target"] == "Shoreditch Yard"
    assert fmt(rnd(site_avg(store, "cpu_percent", 3, day, day + timedelta(days=1))), "%") in answer


def test_compare_error_rate_of_two_sites_over_the_last_7_days(fleet) -> None:
    store = fleet[0]
    _, answer, _ = ask(fleet, "compare the error rate of Camden and Brixton over the last 7 days")
    start = NOW - timedelta(days=7)
    for site in (1, 2):
        assert fmt(rnd(site_avg(store, "error_rate", site, start, NOW))) in answer


def test_open_alerts_for_a_device(fleet) -> None:
    store = fleet[0]
    calls, answer, _ = ask(fleet, "show open alerts for Camden Till 2")
    assert calls[0]["name"] == "list_alerts"
    with store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text(
            "SELECT id FROM alerts WHERE device_id = 'DEVICE-CAMD-POS2-AAAA' AND status IN ('active', 'acknowledged')"))]
        closed = [r[0] for r in conn.execute(text("SELECT id FROM alerts WHERE status NOT IN ('active', 'acknowledged')"))]
    assert ids and all(re.search(rf"\| {i} \|", answer) for i in ids)
    assert not any(re.search(rf"\| {i} \|", answer) for i in closed)


def test_top_n_ranking_of_devices(fleet) -> None:
    store = fleet[0]
    _, answer, _ = ask(fleet, "top 3 devices by cpu over the last 24 hours")
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT d.name, AVG(m.cpu_percent) v FROM device_metrics m JOIN devices d ON d.id = m.device_id "
            "WHERE m.timestamp >= :a AND m.timestamp < :b GROUP BY d.name ORDER BY v DESC LIMIT 3"),
            {"a": (NOW - timedelta(hours=24)).isoformat(sep=" "), "b": NOW.isoformat(sep=" ")}).all()
    table = [line for line in answer.splitlines() if line.startswith("| ") and "device" not in line]
    assert [line.split(" | ")[0].strip("| ") for line in table] == [r[0] for r in rows]
    for (_, v), line in zip(rows, table):
        assert str(rnd(v)) in line


def test_fleet_status_counts(fleet) -> None:
    store = fleet[0]
    _, answer, _ = ask(fleet, "what's the fleet status?")
    devices = scalar(store, "SELECT COUNT(*) FROM devices")
    open_alerts = scalar(store, "SELECT COUNT(*) FROM alerts WHERE status IN ('active', 'acknowledged')")
    assert f"{devices} devices" in answer and f"{open_alerts} open alerts" in answer


def test_a_device_named_like_an_instruction_changes_nothing(fleet) -> None:
    store = fleet[0]
    before = scalar(store, "SELECT COUNT(*) FROM alerts WHERE status = 'resolved'")
    for question in ("show open alerts", "top 3 devices by temp this week", INJECTION_NAME):
        calls, _, messages = ask(fleet, question)
        assert all(c["name"] != "update_alert" for c in calls)
        assert not messages[-1].tool_calls
    assert scalar(store, "SELECT COUNT(*) FROM alerts WHERE status = 'resolved'") == before


def test_an_unknown_site_is_said_plainly(fleet) -> None:
    calls, answer, _ = ask(fleet, "average CPU at Narnia yesterday")
    assert not calls and "Narnia" in answer and "Camden High St" in answer


def test_an_offline_turn_with_its_tools_is_fast(fleet) -> None:
    questions = ["how many devices are offline?", "average CPU at Camden yesterday", "what's the fleet status?",
                 "compare the error rate of Camden and Brixton over the last 7 days", "show open alerts for Camden Till 2",
                 "hourly latency at Shoreditch today", "top 5 devices by temp this week"]
    ask(fleet, "how many devices are offline?")  # warm imports and caches
    seconds = []
    for q in questions * 2:
        started = time.perf_counter()
        ask(fleet, q)
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    p95 = seconds[int(0.95 * (len(seconds) - 1))]
    assert p95 < 0.3, f"p95 {p95:.3f}s over {len(seconds)} turns"
