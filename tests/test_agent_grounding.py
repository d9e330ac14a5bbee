"""Grounding, text tool-call repair and the trust line: the pure parts of the agent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from test_tools_fleet_fixture import NOW, build_fleet

from agent.grounding import check_answer, numbers_in
from agent.textcalls import decode_arguments, extract_tool_calls
from agent.trust import freshness, trust_line
from tools.config import load_settings

TOOL_JSON = '{"data":[{"name":"pos-terminal-12","avg":42.347,"ratio":0.1234,"n":1234,"ts":"2024-05-01T10:00:00"}]}'


def test_tool_figures_rounded_or_as_percentages_are_grounded() -> None:
    sources = numbers_in(TOOL_JSON)
    assert sources == {42.347, 0.1234, 1234.0}  # the date and the id are not figures
    report = check_answer("CPU averaged 42.3 on pos-terminal-12 at 10:00 on 2024-05-01; "
                          "errors were 12.3% across 1,234 checks.", sources)
    assert report.grounded and report.answer.startswith("CPU averaged 42.3")


def test_an_invented_figure_is_flagged_and_a_near_one_repaired() -> None:
    sources = numbers_in(TOOL_JSON)
    flagged = check_answer("There are 77 devices offline.", sources)
    assert flagged.flagged == ["77"] and "77 (⚠ unverified)" in flagged.answer
    repaired = check_answer("Average is 43.", sources)
    assert repaired.repaired == [("43", "42.35")] and "Average is 42.35." == repaired.answer


def test_figures_from_the_question_and_quoted_suggestions_need_no_tool() -> None:
    report = check_answer('Here are the top 5. Try asking "which devices need maintenance in the next 30 days?"',
                          set(), allowed={5.0})
    assert report.grounded


@pytest.mark.parametrize("text,name,args", [
    ('{"name": "list_devices", "arguments": {"connectivity": "offline"}}', "list_devices", {"connectivity": "offline"}),
    ('```json\n{"function": {"name": "fleet_overview", "arguments": "{}"}}\n```', "fleet_overview", {}),
    ('I will call {"tool": "query_metric", "parameters": "{\\"metric\\": \\"cpu\\"}"} now', "query_metric", {"metric": "cpu"}),
    ('[{"name": "list_alerts", "args": {"arguments": "{\\"status\\": \\"open\\"}"}}]', "list_alerts", {"status": "open"}),
])
def test_tool_calls_written_as_text_are_recovered(text: str, name: str, args: dict) -> None:
    calls = extract_tool_calls(text)
    assert [(c["name"], c["args"]) for c in calls] == [(name, args)]


def test_plain_prose_and_data_json_are_not_tool_calls() -> None:
    assert extract_tool_calls("There are 10 devices {roughly}.") == []
    assert extract_tool_calls('{"devices": 10}') == []
    assert decode_arguments('{"a": 1}') == {"a": 1} and decode_arguments(None) == {}


def test_trust_line_names_stale_and_missing_devices(sqlite_store) -> None:
    build_fleet(sqlite_store)
    settings = load_settings({"HOMEPOT_AI_NOW": NOW.isoformat(), "HOMEPOT_AI_STALE_AFTER_S": "7200"})
    f = freshness(sqlite_store, settings)
    assert f.newest == NOW - timedelta(hours=1) and f.stale == ["Brixton Till 1"] and f.missing == []
    line = trust_line(sqlite_store, settings)
    with sqlite_store.engine.connect() as conn:  # offline = heartbeat older than 120 s, or none (SCHEMA.md)
        offline = sorted(r[0] for r in conn.execute(text(
            "SELECT name FROM devices WHERE last_heartbeat_at IS NULL OR last_heartbeat_at < :c"),
            {"c": (NOW - timedelta(seconds=120)).isoformat(sep=" ")}))
    assert f.offline and sorted(f.offline) == offline
    shown = ", ".join(offline[:3]) + (f" and {len(offline) - 3} more" if len(offline) > 3 else "")
    assert line == f"Data: newest reading 60 min old; {len(offline)} offline ({shown}); stale data: Brixton Till 1."


def test_trust_line_on_an_empty_store_says_what_to_run(sqlite_store) -> None:
    assert "homepot-ai simulate" in trust_line(sqlite_store, load_settings({}))
