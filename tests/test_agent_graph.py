"""The agent graph end to end: real tools, real SQLite store, real checkpointer, scripted model.

Only the chat model is scripted (``agent.testing.ScriptedChatModel``); every tool call goes
through ``tools.registry.call_tool`` into the hand-made fleet of ``test_tools_fleet_fixture``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
from sqlalchemy import select, text
from test_tools_fleet_fixture import INJECTION_NAME, NOW, build_fleet

from agent.checkpoint import open_checkpointer
from agent.providers import ProviderChoice
from agent.runtime import Agent
from agent.testing import ScriptedChatModel
from app.context import tool_context
from tools.config import load_settings
from tools.store.schema import AiToolCall


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOMEPOT_AI_NOW", NOW.isoformat())
    monkeypatch.setenv("HOMEPOT_AI_USER", "alice")
    context = tool_context(load_settings(), surface="test")
    build_fleet(context.store)
    yield context
    context.store.dispose()


def make_agent(ctx, model: ScriptedChatModel, **kw) -> Agent:
    return Agent(ctx, ProviderChoice("offline", "scripted", model), open_checkpointer(ctx.settings, ctx.store), **kw)


def alert_statuses(ctx) -> dict[int, str]:
    with ctx.store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, status FROM alerts")).all())


def test_a_tool_call_round_trip_answers_with_the_tools_figures_and_a_trust_line(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("fleet_overview", {})])
    model.enqueue("The fleet has 10 devices at 3 sites; 2 are offline.")
    reply = make_agent(ctx, model).ask("how is the fleet?")
    assert [c["name"] for c in reply.tool_calls] == ["fleet_overview"]
    assert reply.tool_calls[0]["seconds"] >= 0
    assert reply.answer.startswith("The fleet has 10 devices at 3 sites; 2 are offline.")
    assert "unverified" not in reply.answer
    assert "\nData: newest reading 60 min old" in reply.answer
    # the model saw the system prompt with the live fleet snapshot, then the tool result
    first = model.calls[0]["messages"]
    assert isinstance(first[0], SystemMessage) and "10 devices at 3 sites" in first[0].content
    tool_msg = model.calls[1]["messages"][-1]
    assert isinstance(tool_msg, ToolMessage) and json.loads(tool_msg.content)["data"]["devices"] == 10


def test_an_invented_figure_is_flagged(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("fleet_overview", {})])
    model.enqueue("There are 10 devices and 37 open tickets.")
    reply = make_agent(ctx, model).ask("how is the fleet?")
    assert "37 (⚠ unverified)" in reply.answer
    assert "⚠ unverified: 37" in reply.answer
    assert reply.grounding["flagged"] == ["37"]


def test_a_tool_error_goes_back_to_the_model_which_may_retry_once(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("query_metric", {"metric": "no_such_metric_zz", "scope": "fleet"})])
    model.enqueue(tool_calls=[("fleet_overview", {})])
    model.enqueue("10 devices.")
    reply = make_agent(ctx, model).ask("cpu?")
    first_result = model.calls[1]["messages"][-1]
    assert first_result.status == "error"
    assert "once more" in first_result.content
    assert [c["status"] for c in reply.tool_calls] == ["error", "ok"]


def test_unknown_tool_is_answered_with_the_valid_names(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("get_device_health", {"device": "x"})])
    model.enqueue("Sorry.")
    make_agent(ctx, model).ask("health?")
    result = model.calls[1]["messages"][-1]
    assert "Unknown tool 'get_device_health'" in result.content and "fleet_overview" in result.content


def test_a_repeated_identical_call_is_refused_with_advice_to_move_on(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("fleet_overview", {})])
    model.enqueue(tool_calls=[("fleet_overview", {})])
    model.enqueue("10 devices.")
    reply = make_agent(ctx, model).ask("how many devices?")
    repeat = model.calls[2]["messages"][-1]
    assert "already called fleet_overview" in repeat.content
    assert len(reply.tool_calls) == 1  # the repeat was not executed


def test_the_call_limit_withdraws_the_tools_and_forces_an_answer(ctx, monkeypatch) -> None:
    ctx.settings = ctx.settings.replace(MAX_TOOL_CALLS=2)
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("fleet_overview", {})])
    model.enqueue(tool_calls=[("list_devices", {})])
    model.enqueue(tool_calls=[("list_alerts", {})])  # offered nothing: dropped, answer forced
    reply = make_agent(ctx, model).ask("tell me everything")
    assert model.calls[2]["tools"] == []
    assert "every tool call allowed" in model.calls[2]["messages"][-1].content
    assert [c["name"] for c in reply.tool_calls] == ["fleet_overview", "list_devices"]


def test_update_alert_waits_for_confirmation_and_nothing_changes_without_it(ctx) -> None:
    before = alert_statuses(ctx)
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("update_alert", {"alert_id": 1, "action": "resolve"})])
    agent = make_agent(ctx, model)
    reply = agent.ask("resolve alert 1")
    assert reply.pending and reply.pending[0]["tool"] == "update_alert"
    assert alert_statuses(ctx) == before
    model.enqueue("Alert 1 was not changed.")
    declined = agent.resume(reply.thread_id, False)
    assert alert_statuses(ctx) == before
    assert declined.tool_calls[-1]["status"] == "declined"
    assert "did not confirm" in model.calls[-1]["messages"][-1].content


def test_a_confirmed_update_alert_changes_exactly_that_alert(ctx) -> None:
    before = alert_statuses(ctx)
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("update_alert", {"alert_id": 1, "action": "resolve"})])
    model.enqueue("Alert 1 is resolved.")
    agent = make_agent(ctx, model)
    reply = agent.resume(agent.ask("resolve alert 1").thread_id, True)
    after = alert_statuses(ctx)
    assert after[1] == "resolved"
    assert {k: v for k, v in after.items() if k != 1} == {k: v for k, v in before.items() if k != 1}
    assert reply.tool_calls[-1]["name"] == "update_alert" and reply.tool_calls[-1]["status"] == "ok"


def test_prompt_injection_in_a_device_name_changes_nothing(ctx) -> None:
    """A hijacked model that obeys the device name still cannot resolve anything unconfirmed."""
    before = alert_statuses(ctx)
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("list_alerts", {"scope": "device", "target": INJECTION_NAME})])
    model.enqueue(tool_calls=[("update_alert", {"alert_id": i, "action": "resolve"}) for i in before])
    agent = make_agent(ctx, model)
    reply = agent.ask(f"show open alerts for {INJECTION_NAME}")
    assert reply.pending  # the writes stopped at the human
    model.enqueue("I did not change any alert.")
    agent.resume(reply.thread_id, False)
    assert alert_statuses(ctx) == before


def test_every_tool_call_is_audited_with_who_surface_tool_args_duration_rows(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue(tool_calls=[("list_devices", {"connectivity": "offline"})])
    model.enqueue("2 devices are offline.")
    reply = make_agent(ctx, model).ask("which devices are offline?")
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(select(AiToolCall.__table__)).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row["user_id"], row["surface"], row["thread_id"], row["tool"]) == (
        "alice", "test", reply.thread_id, "list_devices")
    assert row["arguments"]["connectivity"] == "offline"
    assert row["seconds"] is not None and row["seconds"] >= 0
    assert row["rows"] == reply.tool_calls[0]["rows"] > 0


def test_a_conversation_continues_after_a_restart(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue("Noted: you look after Camden High St.")
    first = make_agent(ctx, model)
    thread = first.ask("I look after Camden High St.").thread_id
    first.close()
    # a new agent, a new graph and a new connection to the same checkpoint database
    model2 = ScriptedChatModel()
    model2.enqueue("You look after Camden High St.")
    second = make_agent(ctx, model2)
    second.ask("which site do I look after?", thread)
    seen = [m.content for m in model2.calls[0]["messages"] if isinstance(m, HumanMessage)]
    assert "I look after Camden High St." in seen and seen[-1] == "which site do I look after?"


def test_a_fact_from_turn_1_is_still_in_the_prompt_at_turn_30_after_summarisation(ctx) -> None:
    ctx.settings = ctx.settings.replace(SUMMARY_TOKEN_BUDGET=400)
    model = ScriptedChatModel()
    agent = make_agent(ctx, model)
    model.enqueue("Noted.")
    thread = agent.ask("Remember that the Camden store manager is Priya Raman.").thread_id
    for i in range(2, 31):
        model.enqueue(f"Answer number {i} about the fleet, with some padding text to use up the budget.")
        agent.ask(f"Question {i}: how is the fleet doing today, any news on the tills?", thread)
    history = agent.history(thread)
    assert not any(m.content == "Remember that the Camden store manager is Priya Raman." for m in history)
    prompt_at_30 = "\n".join(str(m.content) for m in model.calls[-1]["messages"])
    assert "Priya Raman" in prompt_at_30


def test_a_know_how_question_brings_a_runbook_snippet_tagged_with_its_source(ctx) -> None:
    model = ScriptedChatModel()
    model.enqueue("Follow the runbook.")
    make_agent(ctx, model).ask("how do I fix a card reader that keeps failing on a POS terminal?")
    system = model.calls[0]["messages"][0].content
    recalled = system.split("## Recalled from memory", 1)[1]
    assert "knowledge" in recalled and ".md" in recalled
