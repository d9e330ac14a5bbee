"""The memory bars through the real Agent and the real offline model (no scripted model).

- a fact given in turn 1 is recalled in turn 30, after several rounds of summarisation;
- a conversation continues after a process restart (a new Agent on the same data dir);
- a know-how question retrieves the matching runbook, without touching the network.

The fleet is the small hand-made one of tests/test_tools_fleet_fixture.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.runtime import Agent
from memory.summary import is_summary_message
from memory_helpers import no_network, settings_for
from test_tools_fleet_fixture import NOW, build_fleet
from tools.store.engine import open_store

RUNBOOKS = Path(__file__).resolve().parents[1] / "memory" / "runbooks"
FILLER = ["how many devices are offline?", "average CPU at Camden yesterday", "and for Shoreditch?",
          "show open alerts", "compare the error rate of Camden and Brixton over the last 7 days",
          "top 3 devices by cpu over the last 24 hours", "what's the fleet status?", "hourly latency at Shoreditch today"]


def make_agent(data: Path, **overrides: str) -> Agent:
    settings = settings_for(data, HOMEPOT_AI_NOW=NOW.isoformat(), HOMEPOT_AI_MODEL="offline",
                            HOMEPOT_AI_EMBEDDINGS="auto", **overrides)
    return Agent.from_settings(settings, model="offline")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = open_store(f"sqlite:///{tmp_path}/homepot.db")
    build_fleet(store)
    store.engine.dispose()
    return tmp_path


def test_a_fact_from_turn_1_is_recalled_in_turn_30_after_summarisation(data_dir: Path) -> None:
    agent = make_agent(data_dir, HOMEPOT_AI_SUMMARY_TOKEN_BUDGET="600")
    thread = "long"
    agent.ask("my name is Priya", thread)
    agent.ask("remember that the Camden router was replaced on Monday", thread)
    summaries = set()
    for turn in range(3, 30):
        agent.ask(FILLER[turn % len(FILLER)], thread)
        history = agent.history(thread)
        if history and is_summary_message(history[0]):
            summaries.add(str(history[0].content))
    history = agent.history(thread)
    assert len(summaries) >= 3, "the small budget should force several rounds of summarisation"
    assert not any("my name is Priya" == str(m.content) for m in history)  # turn 1 is no longer verbatim
    name = agent.ask("what's my name?", thread)
    assert "Priya" in name.answer and not name.tool_calls
    fact = agent.ask("what did I tell you about the Camden router?", thread)
    assert "replaced on Monday" in fact.answer
    agent.close()


def test_a_conversation_continues_after_a_process_restart(data_dir: Path) -> None:
    first = make_agent(data_dir)
    first.ask("my name is Priya", "t-restart")
    before = first.ask("average CPU at Camden yesterday", "t-restart")
    first.close()

    second = make_agent(data_dir)  # a new process: new Agent, same data dir and thread id
    assert [str(m.content) for m in second.history("t-restart")][0] == "my name is Priya"
    follow = second.ask("and for Shoreditch?", "t-restart")
    assert follow.tool_calls[0]["name"] == "query_metric"
    assert follow.tool_calls[0]["args"]["target"] == "Shoreditch Yard"
    assert follow.tool_calls[0]["args"]["window"] == before.tool_calls[0]["args"]["window"] == "yesterday"
    assert "Priya" in second.ask("what's my name?", "t-restart").answer
    second.close()


def test_a_know_how_question_retrieves_the_matching_runbook(data_dir: Path, monkeypatch) -> None:
    agent = make_agent(data_dir)
    with no_network(monkeypatch):
        reply = agent.ask("how do I fix a card reader that keeps failing?", "t-runbook")
    assert [c["name"] for c in reply.tool_calls] == ["memory_search"]
    assert reply.tool_calls[0]["status"] == "ok"
    first = next(line for line in reply.answer.splitlines() if line.startswith("- ["))
    assert "card_reader_errors" in first, reply.answer
    snippet = first.split("] ", 1)[1].removesuffix(" ...")
    runbook = " ".join((RUNBOOKS / "card_reader_errors.md").read_text().split())
    assert len(snippet) > 100 and snippet[-80:] in runbook  # after its heading path, the runbook's own words
    agent.close()
