"""``homepot-ai ask`` through click: the JSON shape, confirmations, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from test_tools_fleet_fixture import NOW, build_fleet

from app.cli import cli
from app.context import settings_from_env, store_from_settings
from evals.fake_ollama import FakeOllama


@pytest.fixture
def fleet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOMEPOT_AI_NOW", NOW.isoformat())
    store = store_from_settings(settings_from_env())
    build_fleet(store)
    yield store
    store.dispose()


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_ask_json_has_answer_model_tool_calls_seconds_thread(fleet_home) -> None:
    result = run("ask", "how many devices are offline?", "--json", "--model", "offline")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"answer", "model", "tool_calls", "seconds", "thread_id"} <= set(payload)
    assert payload["model"] == "offline"
    assert payload["tool_calls"], "the offline model answers from a tool"
    assert {"name", "args", "seconds"} <= set(payload["tool_calls"][0])
    assert "Data: " in payload["answer"]


def test_ask_continues_a_thread(fleet_home) -> None:
    first = json.loads(run("ask", "how many devices are offline?", "--json", "--model", "offline").stdout)
    second = json.loads(run("ask", "and which sites are they at?", "--json", "--model", "offline",
                            "--thread", first["thread_id"]).stdout)
    assert second["thread_id"] == first["thread_id"]


def test_a_write_waits_and_is_applied_by_confirm(fleet_home, monkeypatch) -> None:
    with FakeOllama() as fake:
        monkeypatch.setenv("HOMEPOT_AI_OLLAMA_HOST", fake.url)
        fake.enqueue(tool_calls=[("update_alert", {"alert_id": 3, "action": "acknowledge"})])
        waiting = run("ask", "acknowledge alert 3", "--model", "ollama")
        assert "--confirm" in waiting.stdout and "update_alert" in waiting.stdout
        thread = waiting.stdout.split("--thread ")[1].split()[0]
        with fleet_home.engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM alerts WHERE id = 3")).scalar() == "active"
        fake.enqueue(content="Alert 3 is acknowledged.")
        done = run("ask", "--thread", thread, "--confirm", "--model", "ollama", "--json")
        payload = json.loads(done.stdout)
        assert payload["answer"].startswith("Alert 3 is acknowledged.")
        with fleet_home.engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM alerts WHERE id = 3")).scalar() == "acknowledged"


def test_yes_confirms_up_front(fleet_home, monkeypatch) -> None:
    with FakeOllama() as fake:
        monkeypatch.setenv("HOMEPOT_AI_OLLAMA_HOST", fake.url)
        fake.enqueue(tool_calls=[("update_alert", {"alert_id": 3, "action": "mute"})])
        fake.enqueue(content="Alert 3 is muted.")
        payload = json.loads(run("ask", "mute alert 3", "--model", "ollama", "--yes", "--json").stdout)
        assert payload["answer"].startswith("Alert 3 is muted.")
        assert [c["name"] for c in payload["tool_calls"]] == ["update_alert"]


def test_bad_model_and_missing_question_are_one_sentence(fleet_home, capsys) -> None:
    from app.cli import main

    for argv, sentence in ((["ask", "hi", "--model", "gpt9"], "Unknown model 'gpt9'"),
                           (["ask"], "Ask a question")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and sentence in err and "Traceback" not in err


def test_chat_streams_answers_shows_tool_calls_and_understands_commands(fleet_home) -> None:
    result = CliRunner().invoke(cli, ["chat", "--model", "offline"],
                                input="/help\nhow many devices are offline?\n/new\n/quit\n", catch_exceptions=False)
    assert result.exit_code == 0
    out = result.stdout
    assert "/new" in out and "/quit" in out  # the help text
    assert "ai> " in out and "Data: newest reading" in out
    assert "  · " in out and "->" in out  # a tool call shown as a one-liner
    assert "New conversation, thread" in out
