"""Eval cases are strict data: a misspelt tag, key, fact or placeholder fails at load time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from evals.case_model import AnyOf, CaseError, bind, load_cases, parse_case, select_cases
from evals.facts import FACTS, SELECTORS

GOOD = """
description: a minimal valid case
tags: [easy, metrics]
turns:
  - user: average CPU at {site_a} yesterday
    tools:
      - name: query_metric
        args: {metric: cpu_percent, target: "{site_a}", window: {any_of: [yesterday, last_24h]}}
    facts:
      - fact: metric_value
        args: {metric: cpu_percent, scope: site, target: "{site_a}", window: yesterday}
    forbidden: ["resolved all alerts", {regex: "all alerts (are|were) resolved"}]
"""


def test_a_valid_case_parses_with_its_folder_name_as_id() -> None:
    case = parse_case(GOOD, "042_avg_cpu")
    assert case.id == "042_avg_cpu"
    assert case.behaviour == "answer"
    call = case.turns[0].tools[0]
    assert call.names == ["query_metric"] and isinstance(call.args["window"], AnyOf)
    assert case.placeholders() == {"site_a"}


def test_an_unknown_tag_fails() -> None:
    with pytest.raises(CaseError, match="tags"):
        parse_case(GOOD.replace("[easy, metrics]", "[easy, metricz]"), "001_x")


def test_an_extra_key_fails() -> None:
    with pytest.raises(CaseError, match="expected_output"):
        parse_case(GOOD + "expected_output: [something]\n", "001_x")
    with pytest.raises(CaseError, match="Extra inputs"):
        parse_case(GOOD.replace("    tools:", "    toolz: []\n    tools:"), "001_x")


def test_exactly_one_difficulty_is_required() -> None:
    with pytest.raises(CaseError, match="difficulty"):
        parse_case(GOOD.replace("[easy, metrics]", "[metrics]"), "001_x")
    with pytest.raises(CaseError, match="difficulty"):
        parse_case(GOOD.replace("[easy, metrics]", "[easy, hard, metrics]"), "001_x")


def test_unknown_facts_and_placeholders_name_the_valid_choices() -> None:
    with pytest.raises(CaseError, match="unknown fact 'avg_metrik'.*metric_value"):
        parse_case(GOOD.replace("fact: metric_value", "fact: avg_metrik"), "001_x")
    with pytest.raises(CaseError, match=r"\{site_z\}.*site_a"):
        parse_case(GOOD.replace("{site_a} yesterday", "{site_z} yesterday"), "001_x")


def test_an_expected_call_needs_exactly_one_of_name_or_any_of() -> None:
    bad = GOOD.replace("- name: query_metric", "- name: query_metric\n        any_of: [list_devices]")
    with pytest.raises(CaseError, match="exactly one of"):
        parse_case(bad, "001_x")


def test_the_id_is_not_settable_in_the_file() -> None:
    with pytest.raises(CaseError, match="folder name"):
        parse_case("id: other\n" + GOOD, "001_x")


def test_bind_fills_placeholders_everywhere() -> None:
    case = bind(parse_case(GOOD, "001_x"), {"site_a": "Camden High St"})
    turn = case.turns[0]
    assert turn.user == "average CPU at Camden High St yesterday"
    assert turn.tools[0].args["target"] == "Camden High St"
    assert turn.facts[0].args["target"] == "Camden High St"


def test_load_cases_reads_folders_and_select_filters_by_id_number_and_tag(tmp_path: Path) -> None:
    for name, tags in (("001_a", "[easy, metrics]"), ("002_b", "[hard, injection]")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "case.yaml").write_text(GOOD.replace("[easy, metrics]", tags))
    cases = load_cases(tmp_path)
    assert [c.id for c in cases] == ["001_a", "002_b"]
    assert [c.id for c in select_cases(cases, ["injection"])] == ["002_b"]
    assert [c.id for c in select_cases(cases, ["001"])] == ["001_a"]
    assert [c.id for c in select_cases(cases, ["001_a,002_b"])] == ["001_a", "002_b"]
    with pytest.raises(CaseError, match="matches no case"):
        select_cases(cases, ["nope"])
    with pytest.raises(CaseError, match="No eval cases"):
        load_cases(tmp_path / "missing")


def test_the_shipped_suite_has_80_plus_valid_cases_covering_every_intent() -> None:
    cases = load_cases()
    assert len(cases) >= 80
    tags = Counter(t for c in cases for t in c.tags)
    for intent in ("overview", "metrics", "comparison", "ranking", "anomalies", "maintenance", "alerts", "alert_write",
                   "reports", "sql", "memory", "followup", "out_of_scope", "ambiguous", "unknown_entity", "injection"):
        assert tags[intent] >= 3, intent
    assert tags["regression"] >= 5
    # every case expects something checkable: a tool, a fact, a text, a behaviour or the alerts unchanged
    for c in cases:
        assert any(t.tools or t.facts or t.expect_text or t.no_tools or t.forbidden for t in c.turns) \
            or c.behaviour != "answer" or c.check_alerts, c.id


def test_the_shipped_suite_uses_only_registered_facts_and_selectors() -> None:
    cases = load_cases()
    used_facts = {f.fact for c in cases for t in c.turns for f in t.facts}
    assert used_facts <= set(FACTS)
    assert set().union(*(c.placeholders() for c in cases)) <= set(SELECTORS)


def test_no_case_types_in_an_expected_number() -> None:
    """Facts are computed at run time: no literal number may appear among expected fact args' values
    except parameters (n, days) — and expect_text never holds a bare number."""
    for c in load_cases():
        for t in c.turns:
            for rule in t.expect_text:
                text = rule if isinstance(rule, str) else rule.regex
                assert not text.strip().replace(".", "").isdigit(), c.id
