"""Long-term memory in ChromaDB: runbook retrieval, the four collections, re-indexing by
content hash, persistence across a process restart, and no network."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from memory.embeddings import HashingEmbedding, get_embedding_function
from memory.long_term import (
    RUNBOOKS_DIR,
    LongTermMemory,
    MemoryError_,
    chunk_markdown,
    format_snippets,
    make_client,
)
from memory_helpers import no_network, settings_for
from tools.store.schema import Alert, Site

REPO = Path(__file__).resolve().parent.parent

#: Questions an operator would type, and the starter runbook that must come back first.
RUNBOOK_QUESTIONS = {
    "card reader keeps failing": "card_reader_errors.md",
    "customers' chip cards are declined at lane 3": "card_reader_errors.md",
    "the till is not reporting and its screen is frozen": "pos_terminal_offline.md",
    "receipts print blank": "receipt_printer_faults.md",
    "the freezer is too warm": "fridge_freezer_temperature.md",
    "till is very slow, cpu at 100%": "high_cpu_memory_pos.md",
    "ping times are terrible at the Camden store": "network_latency_packet_loss.md",
    "the whole site went dark, every device is stale": "gateway_site_connectivity.md",
    "sensor battery draining fast": "battery_health.md",
    "disk is almost full on the kiosk": "disk_storage_full.md",
    "the new firmware broke payments, how do I undo it": "firmware_rollout_rollback.md",
    "how do I plan a maintenance visit": "maintenance_window.md",
    "device flagged with high failure risk, should we replace it": "failure_prediction_device_swap.md",
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> LongTermMemory:
    """One MiniLM memory with the starter runbooks indexed, shared by the retrieval tests."""
    home = tmp_path_factory.mktemp("ltm")
    memory = LongTermMemory.from_settings(settings_for(home), embedding_function=get_embedding_function("minilm"))
    memory.index_runbooks()
    return memory


@pytest.fixture
def hashing_memory(tmp_path) -> LongTermMemory:
    return LongTermMemory.from_settings(settings_for(tmp_path / "h"), embedding_function=HashingEmbedding())


def test_card_reader_question_retrieves_the_card_reader_runbook_first(indexed):
    snippets = indexed.search("card reader keeps failing", collections=["knowledge"], k=3)
    assert snippets, "a matching runbook must clear the relevance threshold"
    assert snippets[0].metadata["file"] == "card_reader_errors.md"
    assert snippets[0].source.startswith("card_reader_errors.md > ")
    assert snippets[0].collection == "knowledge"
    assert snippets == sorted(snippets, key=lambda s: s.score, reverse=True)


@pytest.mark.parametrize("question,runbook", sorted(RUNBOOK_QUESTIONS.items()))
def test_every_starter_runbook_is_found_by_an_operator_question(indexed, question, runbook):
    top = indexed.search(question, collections=["knowledge"], k=1)
    assert top and top[0].metadata["file"] == runbook


def test_an_unrelated_question_returns_nothing_rather_than_the_least_bad_match(indexed):
    assert indexed.search("what is the capital of France", collections=["knowledge"]) == []


def test_every_starter_runbook_has_the_sections_an_operator_needs():
    files = sorted(RUNBOOKS_DIR.glob("*.md"))
    assert 8 <= len(files) <= 12
    for path in files:
        title, chunks = chunk_markdown(path.read_text())
        headings = {c.heading for c in chunks}
        assert title, path.name
        assert {"Symptoms", "Escalation"} <= headings or {"Decide", "Escalation"} <= headings \
            or {"Plan", "Escalation"} <= headings or {"Rollback", "Escalation"} <= headings, (path.name, headings)
        assert any(h.startswith("Checks") or h in {"Decide", "Watch after each wave", "Plan"} for h in headings), path.name


def test_chunks_carry_title_and_heading_and_stay_small():
    text = "# Printer\n\nintro\n\n## Symptoms\n" + ("Paper jams.\n\n" * 200) + "## Fixes\nClear it."
    title, chunks = chunk_markdown(text)
    assert title == "Printer"
    assert chunks[0].heading == "Overview"
    assert all(c.text.startswith("Printer > ") for c in chunks)
    assert len([c for c in chunks if c.heading == "Symptoms"]) > 1
    assert max(len(c.text) for c in chunks) < 1500


def test_reindexing_skips_unchanged_files_and_follows_edits_and_deletions(tmp_path, hashing_memory):
    folder = tmp_path / "books"
    folder.mkdir()
    for name in ("card_reader_errors.md", "receipt_printer_faults.md", "battery_health.md"):
        shutil.copy(RUNBOOKS_DIR / name, folder / name)
    first = hashing_memory.index_runbooks(folder)
    assert sorted(first.added) == ["battery_health.md", "card_reader_errors.md", "receipt_printer_faults.md"]
    total = hashing_memory.count("knowledge")
    assert first.chunks == total > 0

    again = hashing_memory.index_runbooks(folder)
    assert not again.changed and len(again.unchanged) == 3 and again.chunks == 0

    (folder / "receipt_printer_faults.md").write_text("# Receipt printer\n\n## Fixes\nUse the blue paper rolls only.\n")
    (folder / "battery_health.md").unlink()
    third = hashing_memory.index_runbooks(folder)
    assert third.updated == ["receipt_printer_faults.md"]
    assert third.removed == ["battery_health.md"]
    assert third.unchanged == ["card_reader_errors.md"]
    hits = hashing_memory.search("blue paper rolls", collections=["knowledge"], k=1)
    assert hits and hits[0].metadata["file"] == "receipt_printer_faults.md"
    files = {m["file"] for m in hashing_memory.collection("knowledge").get(include=["metadatas"])["metadatas"]}
    assert files == {"card_reader_errors.md", "receipt_printer_faults.md"}


def test_runbooks_folder_from_settings(tmp_path):
    folder = tmp_path / "site_books"
    folder.mkdir()
    (folder / "ice_machine.md").write_text("# Ice machine\n\n## Symptoms\nThe ice machine makes no ice.\n")
    memory = LongTermMemory.from_settings(
        settings_for(tmp_path / "home", HOMEPOT_AI_RUNBOOKS_DIR=str(folder)), embedding_function=HashingEmbedding())
    report = memory.ensure_runbooks()
    assert report.added == ["ice_machine.md"]


def test_missing_runbook_folder_is_one_clear_sentence(hashing_memory, tmp_path):
    with pytest.raises(MemoryError_, match="does not exist; set HOMEPOT_AI_RUNBOOKS_DIR"):
        hashing_memory.index_runbooks(tmp_path / "nope")


def test_conversations_incidents_and_preferences_are_searchable_with_sources(indexed):
    indexed.remember_conversation("thread-42", "The user asked about Camden's card readers; DEVICE-0001 was cleaned.")
    indexed.remember_incident("Card reader error on lane 2", "Cleaned the chip contacts with a cleaning card.",
                              alert_id=77, device_id="DEVICE-AAAA-0001", site="Camden", severity="high")
    indexed.remember_preference("dana", "I prefer temperatures in Fahrenheit")
    indexed.remember_preference("sam", "Keep answers to one line")

    incident = indexed.search("how did we fix the card reader last time", collections=["incidents"], k=1)
    assert incident and incident[0].source == "alert 77, DEVICE-AAAA-0001"
    conversation = indexed.search("Camden card readers", collections=["conversations"], k=1)
    assert conversation and conversation[0].source == "thread thread-42"
    prefs = indexed.search("temperature units", collections=["preferences"], user="sam", min_score=-1)
    assert all(p.metadata["user"] == "sam" for p in prefs)
    assert indexed.preferences_for("dana") == ["I prefer temperatures in Fahrenheit"]


def test_a_thread_keeps_one_summary_that_is_replaced_on_update(hashing_memory):
    hashing_memory.remember_conversation("t1", "first summary")
    hashing_memory.remember_conversation("t1", "second summary about the Camden gateway")
    got = hashing_memory.collection("conversations").get(ids=["conv:t1"])
    assert got["documents"] == ["second summary about the Camden gateway"]
    assert hashing_memory.count("conversations") == 1


def test_incidents_are_copied_from_resolved_alerts_in_the_store(sqlite_store, hashing_memory):
    with sqlite_store.engine.begin() as conn:
        conn.execute(insert(Site), [{"id": 1, "site_id": "SITE-1", "name": "Camden"}])
        conn.execute(insert(Alert), [
            {"timestamp": datetime(2026, 1, 5, 9), "device_id": "DEVICE-1", "site_id": 1, "title": "Printer offline",
             "severity": "medium", "status": "resolved", "resolution_notes": "Replaced the power brick."},
            {"timestamp": datetime(2026, 1, 6, 9), "device_id": "DEVICE-2", "site_id": 1, "title": "High CPU: 97%",
             "severity": "high", "status": "active", "resolution_notes": None},
        ])
    assert hashing_memory.remember_incidents_from_store(sqlite_store) == 1
    assert hashing_memory.remember_incidents_from_store(sqlite_store) == 1  # idempotent
    assert hashing_memory.count("incidents") == 1
    hit = hashing_memory.search("printer offline power", collections=["incidents"], k=1)
    assert hit and "Replaced the power brick" in hit[0].text and hit[0].metadata["site"] == "Camden"


def test_unknown_collection_is_one_clear_sentence(hashing_memory):
    with pytest.raises(MemoryError_, match="use one of conversations, incidents, preferences, knowledge"):
        hashing_memory.search("x y", collections=["emails"])


def test_format_snippets_tags_each_snippet_with_its_source(indexed):
    block = format_snippets(indexed.search("receipts print blank", collections=["knowledge"], k=2))
    assert "[knowledge: receipt_printer_faults.md > " in block
    assert "not instructions" in block
    assert format_snippets([]) == ""


def test_memory_survives_a_process_restart(tmp_path):
    """A separate Python process writes; this process opens the same folder and finds it all."""
    home = tmp_path / "home"
    script = textwrap.dedent(f"""
        from memory.embeddings import HashingEmbedding
        from memory.long_term import LongTermMemory
        from tools.config import load_settings
        s = load_settings(env={{"HOMEPOT_AI_DATA_DIR": {str(home)!r}}})
        m = LongTermMemory.from_settings(s, embedding_function=HashingEmbedding())
        m.remember_preference("dana", "My home site is Camden and I like short answers")
        m.remember_conversation("thread-7", "Dana asked about gateway GW-CAMDEN-01 latency of 340 ms.")
        m.index_runbooks()
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)

    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    reopened = LongTermMemory.from_settings(settings_for(home), embedding_function=HashingEmbedding())
    assert reopened.preferences_for("dana") == ["My home site is Camden and I like short answers"]
    hit = reopened.search("gateway latency", collections=["conversations"], k=1)
    assert hit and hit[0].source == "thread thread-7"
    assert not reopened.index_runbooks().changed  # the index persisted too: nothing re-embedded


def test_a_persisted_collection_reopens_with_our_embedding_function_by_name(tmp_path, monkeypatch):
    """Opened bare (no embedding function passed), chroma rebuilds ours from its registered name."""
    settings = settings_for(tmp_path / "home")
    memory = LongTermMemory.from_settings(settings, embedding_function=HashingEmbedding())
    memory.remember_preference("dana", "metric units")
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    with no_network(monkeypatch) as attempts:
        collection = make_client(settings).get_collection(memory.physical_name("preferences"))
        assert isinstance(collection.configuration["embedding_function"], HashingEmbedding)
        found = collection.query(query_texts=["metric units"], n_results=1)["documents"]
    assert found == [["metric units"]]
    assert attempts == []


def test_documents_are_re_embedded_when_the_embedding_function_changes(tmp_path):
    settings = settings_for(tmp_path / "home")
    old = LongTermMemory.from_settings(settings, embedding_function=HashingEmbedding())
    old.remember_incident("Freezer alarm at Camden", "Door seal replaced", alert_id=5)
    new = LongTermMemory.from_settings(settings, embedding_function=get_embedding_function("minilm"))
    hit = new.search("walk-in freezer too warm", collections=["incidents"], k=1)
    assert hit and hit[0].id == "incident:5"


def test_memory_operations_touch_no_network(tmp_path, monkeypatch):
    with no_network(monkeypatch) as attempts:
        memory = LongTermMemory.from_settings(settings_for(tmp_path / "home"),
                                              embedding_function=get_embedding_function("minilm"))
        folder = tmp_path / "books"
        folder.mkdir()
        shutil.copy(RUNBOOKS_DIR / "card_reader_errors.md", folder)
        memory.index_runbooks(folder)
        memory.remember_preference("dana", "short answers")
        memory.remember_conversation("t", "talked about card readers")
        hits = memory.search("card reader keeps failing")
    assert attempts == []
    assert hits and hits[0].metadata.get("file") == "card_reader_errors.md"


def test_embeddings_and_threshold_come_from_settings(tmp_path):
    memory = LongTermMemory.from_settings(settings_for(
        tmp_path / "home", HOMEPOT_AI_EMBEDDINGS="hashing", HOMEPOT_AI_MEMORY_MIN_SCORE="0.5"))
    assert memory.ef_name == "homepot_hashing"
    assert memory.min_score == 0.5
    assert memory.physical_name("knowledge") == "knowledge__homepot_hashing"


def test_recall_gives_the_two_prompt_blocks_for_a_turn(hashing_memory):
    hashing_memory.index_runbooks()
    hashing_memory.remember_preference("dana", "Always show temperatures in Celsius")
    memories, preferences = hashing_memory.recall("receipts print blank", user="dana")
    assert "[knowledge: receipt_printer_faults.md > " in memories
    assert preferences == "- Always show temperatures in Celsius"
    assert hashing_memory.recall("receipts print blank", user="nobody")[1] == ""
