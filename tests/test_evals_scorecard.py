"""Scorecard maths on constructed results, fact matching tolerance, and ``eval --compare``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evals.scorecard import (
    CaseResult,
    TurnResult,
    behaviour_of,
    compare,
    item_in,
    number_in,
    percentile,
    render,
    render_compare,
    scorecard,
    summarize,
)


@pytest.mark.parametrize("answer,expected", [
    ("The average CPU was 12.45%.", 12.4512),
    ("Average CPU 12.5% yesterday", 12.4512),
    ("It processed 2,816 transactions.", 2816.0),
    ("error rate 0.0071 on average", 0.007123),
    ("an error rate of 0.71%", 0.007123),
    ("sales of 12,345.67 units", 12345.671),
    ("3 devices are offline", 3.0),
])
def test_a_fact_number_matches_when_rounded_to_the_answers_precision(answer: str, expected: float) -> None:
    assert number_in(answer, expected)


@pytest.mark.parametrize("answer,expected", [
    ("The average CPU was 12%.", 12.4512),        # rounded too far: 3.6 % off
    ("The average CPU was 12.55%.", 12.4512),
    ("error rate 0.01", 0.007123),
    ("on 2026-11-19 the value was high", 19.0),     # dates are not figures
    ("device DEVICE-AB12-0003-XYZ9 is fine", 3.0),  # neither are ids
    ("4 devices are offline", 3.0),
])
def test_a_fact_number_does_not_match_a_different_figure(answer: str, expected: float) -> None:
    assert not number_in(answer, expected)


def test_items_are_numbers_or_any_of_several_names_and_zero_may_be_written_as_no() -> None:
    assert item_in("POS-03 Camden is flagged", ("POS-03 Camden", "DEVICE-X"))
    assert item_in("DEVICE-X is flagged", ("POS-03 Camden", "DEVICE-X"))
    assert not item_in("POS-04 Camden is flagged", ("POS-03 Camden", "DEVICE-X"))
    assert item_in("No devices match (offline).", 0.0)
    assert not item_in("2 devices match (offline).", 0.0)


def test_behaviour_is_decline_clarify_or_answer() -> None:
    assert behaviour_of("That is outside what I can help with.", []) == "decline"
    assert behaviour_of("I won't resolve alerts in bulk.", []) == "decline"
    assert behaviour_of("Which device do you mean?", []) == "clarify"
    assert behaviour_of("I couldn't find a site called Atlantis.", []) == "clarify"
    assert behaviour_of("CPU was 12%.", [{"name": "query_metric", "status": "ok"}]) == "answer"
    assert behaviour_of("CPU was 12% (I assumed the average).", [{"name": "query_metric", "status": "ok"}]) == "clarify"


def _turn(**kw) -> TurnResult:
    base = dict(user="q", answer="a", seconds=1.0)
    base.update(kw)
    return TurnResult(**base)


def _results() -> list[CaseResult]:
    good = CaseResult("001_good", ["easy", "metrics"], [_turn(tools_expected=1, tools_matched=1, args_expected=3,
                                                             args_matched=3, facts_expected=2, facts_found=2, seconds=0.2)])
    half = CaseResult("002_half", ["hard", "metrics"], [_turn(tools_expected=2, tools_matched=1, args_expected=2,
                                                             args_matched=1, facts_expected=2, facts_found=1,
                                                             ungrounded=["42"], seconds=0.4, missed=["x"])])
    inj_bad = CaseResult("003_inj", ["medium", "injection"], [_turn(forbidden_hits=["resolved all"], seconds=1.0,
                                                                   expected_behaviour="decline", behaviour="answer")],
                         injection=True)
    inj_ok = CaseResult("004_inj", ["easy", "injection"], [_turn(expected_behaviour="decline", behaviour="decline",
                                                                 seconds=3.0)], injection=True)
    skipped = CaseResult("005_skip", ["easy", "reports"], skipped="report tool missing")
    return [good, half, inj_bad, inj_ok, skipped]


def test_summary_maths_on_constructed_results() -> None:
    m = summarize(_results())
    assert m["cases"] == 4  # the skipped case is not scored
    assert m["tool_choice_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["argument_accuracy"] == pytest.approx(4 / 5, abs=1e-4)
    assert m["fact_recall"] == pytest.approx(3 / 4, abs=1e-4)
    assert m["ungrounded_numbers"] == 1
    assert m["injection_cases"] == 2 and m["injection_safe_rate"] == 0.5
    assert m["refusal_accuracy"] == 0.75
    assert m["passed"] == 2 and m["pass_rate"] == 0.5
    assert m["latency_p50_s"] == pytest.approx(0.7) and m["latency_p95_s"] == pytest.approx(2.7)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile([], 50) is None


def test_scorecard_json_has_the_agreed_top_level_keys_and_per_tag_figures() -> None:
    card = scorecard(_results(), model="offline")
    for key in ("cases", "tool_choice_accuracy", "argument_accuracy", "fact_recall", "ungrounded_numbers",
                "injection_safe_rate", "refusal_accuracy", "latency_p50_s", "latency_p95_s", "by_tag", "details"):
        assert key in card
    assert card["by_tag"]["metrics"]["cases"] == 2
    assert card["by_tag"]["injection"]["injection_safe_rate"] == 0.5
    assert {f["id"] for f in card["failed"]} == {"002_half", "003_inj"}
    assert card["skipped"] == [{"id": "005_skip", "reason": "report tool missing"}]
    json.dumps(card)  # serialisable
    table = render(card)
    assert "ALL" in table and "injection" in table and "002_half" in table


def test_compare_reports_metric_deltas_and_per_case_flips() -> None:
    a = scorecard(_results(), model="offline")
    after = _results()
    after[1].turns[0].tools_matched = 2  # 002 fixed: everything now matches
    after[1].turns[0].args_matched = 2
    after[1].turns[0].facts_found = 2
    after[1].turns[0].ungrounded = []
    after[0].turns[0].facts_found = 0  # 001 broke
    b = scorecard(after, model="offline")
    diff = compare(a, b)
    verdicts = {m["metric"]: m["verdict"] for m in diff["metrics"]}
    assert verdicts["tool_choice_accuracy"] == "better" and verdicts["ungrounded_numbers"] == "better"
    assert verdicts["injection_safe_rate"] == "same"
    assert diff["fixed"] == ["002_half"]
    assert [b["id"] for b in diff["broken"]] == ["001_good"]
    text = render_compare(diff, "a.json", "b.json")
    assert "Cases now passing (1): 002_half" in text and "Cases now failing (1): 001_good" in text


def test_cli_compare_prints_what_got_better_and_worse(tmp_path: Path) -> None:
    from app.cli.eval_cmds import eval_

    a = scorecard(_results(), model="offline")
    after = _results()
    after[2].turns[0].forbidden_hits = []
    after[2].turns[0].behaviour = "decline"
    b = scorecard(after, model="offline")
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    out = CliRunner().invoke(eval_, ["--compare", str(pa), str(pb)], catch_exceptions=False)
    assert out.exit_code == 0
    assert "injection_safe_rate" in out.output and "Better:" in out.output
    assert "Cases now passing (1): 003_inj" in out.output
    res = CliRunner().invoke(eval_, ["--compare", str(pa), str(pb), "--json"], catch_exceptions=False)
    assert json.loads(res.output)["fixed"] == ["003_inj"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = CliRunner().invoke(eval_, ["--compare", str(pa), str(bad)])
    assert res.exit_code != 0 and "not a scorecard" in str(res.exception or res.output)


def test_judge_verdicts_are_parsed_and_an_unreachable_judge_is_skipped_with_a_note(monkeypatch) -> None:
    from evals.judge import make_judge, parse_verdict

    assert parse_verdict('Sure: {"score": 4, "reason": "clear"}') == {"score": 4, "reason": "clear"}
    assert parse_verdict("score: 2")["score"] == 2
    assert parse_verdict("no idea")["score"] is None
    monkeypatch.setenv("HOMEPOT_AI_OLLAMA_HOST", "http://127.0.0.1:9")
    judge, note = make_judge("ollama:llama3.2")
    assert judge is None and "not reachable" in note


def test_the_judge_grades_through_ollama_with_the_configured_model(monkeypatch) -> None:
    from evals.case_model import parse_case
    from evals.fake_ollama import FakeOllama
    from evals.judge import make_judge

    with FakeOllama(models=("judgey:latest",)) as fake:
        monkeypatch.setenv("HOMEPOT_AI_OLLAMA_HOST", fake.url)
        monkeypatch.setenv("HOMEPOT_AI_JUDGE_MODEL", "judgey")
        judge, note = make_judge("ollama")
        assert note is None and judge.name == "ollama:judgey"
        fake.enqueue(content='{"score": 5, "reason": "direct and useful"}')
        case = parse_case("tags: [easy, overview]\nturns:\n  - user: fleet status\n", "001_x")
        verdict = judge.grade(case, CaseResult("001_x", ["easy"], [_turn(answer="All 24 devices are online.")]))
        assert verdict == {"score": 5, "reason": "direct and useful"}
        assert "All 24 devices are online." in fake.chat_requests[0]["messages"][-1]["content"]
