"""The eval runner end to end: real agent, real tools, seeded fleet; offline and over the fake Ollama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evals.case_model import Case, load_cases
from evals.facts import compute
from evals.fake_ollama import FakeOllama
from evals.runner import alerts_digest, build_eval_fleet, run_suite

KEYS = ("cases", "tool_choice_accuracy", "argument_accuracy", "fact_recall", "ungrounded_numbers",
        "injection_safe_rate", "refusal_accuracy", "latency_p50_s", "latency_p95_s", "by_tag", "details")


def by_slug(*slugs: str) -> list[Case]:
    """Shipped cases by the slug after the number (numbers may be renumbered, slugs stay)."""
    cases = {c.id.split("_", 1)[1]: c for c in load_cases()}
    return [cases[s] for s in slugs]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    f = build_eval_fleet(tmp_path_factory.mktemp("evalrun"))
    yield f
    f.close()


def test_offline_run_scores_a_metric_an_injection_and_a_decline(fleet) -> None:
    cases = by_slug("avg_cpu_site_yesterday", "inj_question_resolve_all", "oos_joke", "inj_alert_description")
    before = alerts_digest(fleet.store)
    card = run_suite(cases, model="offline", fleet=fleet)
    for key in KEYS:
        assert key in card
    assert card["model"] == "offline" and card["cases"] == 4
    details = {d["id"].split("_", 1)[1]: d for d in card["details"]}
    metric = details["avg_cpu_site_yesterday"]
    assert metric["passed"], metric["reasons"]
    assert metric["turns"][0]["tool_calls"][0]["name"] == "query_metric"
    assert card["injection_safe_rate"] == 1.0 and card["ungrounded_numbers"] == 0
    assert details["oos_joke"]["turns"][0]["behaviour"] == "decline"
    assert alerts_digest(fleet.store) == before
    assert set(card["by_tag"]) >= {"injection", "metrics", "out_of_scope"}


def test_an_approved_write_is_scored_then_the_alerts_are_restored(fleet) -> None:
    before = alerts_digest(fleet.store)
    card = run_suite(by_slug("ack_alert_approved", "resolve_alert_rejected"), model="offline", fleet=fleet)
    details = {d["id"].split("_", 1)[1]: d for d in card["details"]}
    ack = details["ack_alert_approved"]["turns"][0]
    assert [c["status"] for c in ack["tool_calls"]] == ["ok"]
    assert details["ack_alert_approved"]["passed"], details["ack_alert_approved"]["reasons"]
    rejected = details["resolve_alert_rejected"]
    assert rejected["turns"][0]["tool_calls"][0]["status"] == "declined" and not rejected["alerts_changed"]
    assert alerts_digest(fleet.store) == before


def test_cli_eval_writes_the_json_scorecard(tmp_path: Path) -> None:
    from app.cli.eval_cmds import eval_

    case = by_slug("how_many_offline")[0]
    out = tmp_path / "card.json"
    res = CliRunner().invoke(eval_, ["--model", "offline", "--only", case.id, "--out", str(out), "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Scorecard (offline, 1 cases)" in res.output
    card = json.loads(out.read_text())
    assert card["cases"] == 1 and card["tool_choice_accuracy"] == 1.0
    bad = CliRunner().invoke(eval_, ["--only", "no_such_case_or_tag"])
    assert bad.exit_code != 0


def test_the_ollama_path_runs_cases_through_langchain_ollama_over_http(fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scripted model behind the fake Ollama server: the tool call and the answer travel over HTTP."""
    cases = by_slug("avg_cpu_site_yesterday", "oos_weather")
    site = fleet.bindings["site_a"]
    value = compute(fleet.env, "metric_value", {"metric": "cpu_percent", "scope": "site", "target": site,
                                                "window": "yesterday"})[0]
    with FakeOllama() as fake:
        monkeypatch.setenv("HOMEPOT_AI_OLLAMA_HOST", fake.url)
        ollama_fleet = build_eval_fleet(fleet.root.parent / "ollama-fleet")
        fake.enqueue(tool_calls=[("query_metric", {"metric": "cpu", "scope": "site", "target": site.split()[0],
                                                   "window": "yesterday", "agg": "avg"})])
        fake.enqueue(content=f"The average CPU at {site} yesterday was {value:.2f}%.")
        fake.enqueue(content="That is outside what I can help with: I only know about your device fleet.")
        try:
            card = run_suite(cases, model="ollama:llama3.2", fleet=ollama_fleet)
        finally:
            ollama_fleet.close()
        chats = fake.chat_requests
    assert card["model"] == "ollama:llama3.2"
    assert card["tool_choice_accuracy"] == 1.0 and card["argument_accuracy"] == 1.0  # "cpu" resolves to cpu_percent
    assert card["fact_recall"] == 1.0 and card["ungrounded_numbers"] == 0
    assert card["refusal_accuracy"] == 1.0
    assert len(chats) == 3 and chats[0]["tools"]
    tool_msgs = [m for m in chats[1]["messages"] if m["role"] == "tool"]
    assert json.loads(tool_msgs[0]["content"])["tool"] == "query_metric"


def test_cli_eval_with_ollama_fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """``homepot-ai eval --model ollama:fake`` against the fake server named by HOMEPOT_AI_OLLAMA_HOST."""
    from app.cli.eval_cmds import eval_

    cases = by_slug("fleet_status", "oos_joke")
    with FakeOllama(models=("fake:latest",)) as fake:
        monkeypatch.setenv("HOMEPOT_AI_OLLAMA_HOST", fake.url)
        fake.enqueue(tool_calls=[("fleet_overview", {})])
        fake.enqueue(content="Here is the fleet status; see the offline devices and the open alerts above.")
        fake.enqueue(content="That is outside what I can help with: I only know about your device fleet.")
        res = CliRunner().invoke(eval_, ["--model", "ollama:fake", "--only", ",".join(c.id for c in cases), "--json",
                                         "--quiet"], catch_exceptions=False)
        assert fake.pending == 0
    assert res.exit_code == 0, res.output
    card = json.loads(res.output)
    assert card["model"] == "ollama:fake" and card["cases"] == 2
    assert card["tool_choice_accuracy"] == 1.0
    # the scripted answer states no figure: the scorecard notices (only the offline count, which the
    # agent's own trust line adds to every answer, is found)
    assert card["fact_recall"] < 0.5
    assert card["refusal_accuracy"] == 1.0
