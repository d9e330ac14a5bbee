"""The memory_search tool through the one registry path (validation, envelope, audit)."""

from __future__ import annotations

from memory.embeddings import HashingEmbedding
from memory.long_term import LongTermMemory
from memory_helpers import settings_for
from tools.registry import ToolContext, call_tool, get_tool


def context(store, tmp_path, memory=None) -> ToolContext:
    ctx = ToolContext(store=store, settings=settings_for(tmp_path / "home"), audit=False)
    if memory is not None:
        ctx.extras["memory"] = memory
    return ctx


def test_memory_search_is_registered_in_the_memory_group():
    spec = get_tool("memory_search")
    assert spec.group == "memory" and not spec.writes
    assert "runbooks" in spec.description


def test_memory_search_returns_snippets_with_sources(sqlite_store, tmp_path):
    memory = LongTermMemory.from_settings(settings_for(tmp_path / "home"), embedding_function=HashingEmbedding())
    memory.index_runbooks()
    result = call_tool(context(sqlite_store, tmp_path, memory), "memory_search",
                       {"query": "card reader keeps failing", "collections": ["knowledge"], "k": 3})
    assert result.status == "ok" and result.rows == len(result.data) <= 3
    assert result.data[0]["source"].startswith("card_reader_errors.md > ")
    assert {"text", "collection", "source", "score"} <= set(result.data[0])
    assert "card_reader_errors.md" in result.summary


def test_memory_search_with_nothing_relevant_is_no_data_and_says_what_was_searched(sqlite_store, tmp_path):
    memory = LongTermMemory.from_settings(settings_for(tmp_path / "home"), embedding_function=HashingEmbedding())
    result = call_tool(context(sqlite_store, tmp_path, memory), "memory_search",
                       {"query": "quarterly tax filing", "collections": ["incidents"]})
    assert result.status == "no_data"
    assert "incidents" in result.summary and "quarterly tax filing" in result.summary


def test_memory_search_builds_its_memory_from_settings_when_the_agent_has_none(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setattr("memory.long_term.embedding_from_settings", lambda settings: HashingEmbedding())
    result = call_tool(context(sqlite_store, tmp_path), "memory_search", {"query": "receipts print blank"})
    assert result.status == "ok"
    assert result.data[0]["source"].startswith("receipt_printer_faults.md")
    assert (tmp_path / "home" / "chroma").is_dir()


def test_invalid_arguments_are_an_error_result_not_an_exception(sqlite_store, tmp_path):
    result = call_tool(context(sqlite_store, tmp_path), "memory_search",
                       {"query": "x", "collections": ["emails"], "k": 50})
    assert result.status == "error" and "Invalid arguments" in result.error
