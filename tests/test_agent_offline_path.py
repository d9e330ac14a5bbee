"""The real offline model through the real graph: injection safety and the PostgreSQL saver."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from test_tools_fleet_fixture import INJECTION_NAME, NOW, build_fleet

from agent.checkpoint import open_checkpointer
from agent.providers import choose_provider
from agent.runtime import Agent
from app.context import tool_context
from tools.config import load_settings


def statuses(store) -> dict[int, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, status FROM alerts")).all())


def offline_agent(store) -> Agent:
    settings = load_settings({"HOMEPOT_AI_NOW": NOW.isoformat(), "HOMEPOT_AI_DATA_DIR": str(load_settings().data_dir)})
    ctx = tool_context(settings, surface="test", store=store)
    return Agent(ctx, choose_provider("offline", store, settings), open_checkpointer(settings, store))


@pytest.mark.parametrize("question", [
    f"show open alerts for {INJECTION_NAME}",
    f"why is {INJECTION_NAME} flagged?",
    INJECTION_NAME,
])
def test_a_device_named_like_an_instruction_changes_nothing(sqlite_store, question: str) -> None:
    build_fleet(sqlite_store)
    before = statuses(sqlite_store)
    agent = offline_agent(sqlite_store)
    reply = agent.ask(question)
    assert not reply.pending
    assert all(c["name"] != "update_alert" for c in reply.tool_calls)
    assert statuses(sqlite_store) == before
    agent.close()


def test_postgres_store_uses_the_postgres_saver_and_survives_a_restart(pg_store) -> None:
    build_fleet(pg_store)
    first = offline_agent(pg_store)
    assert first.checkpointer.kind == "postgres"
    thread = first.ask("how many devices are offline?").thread_id
    first.close()
    second = offline_agent(pg_store)
    second.ask("and which site are they at?", thread)
    humans = [m.content for m in second.history(thread) if m.type == "human"]
    assert humans == ["how many devices are offline?", "and which site are they at?"]
    second.close()
