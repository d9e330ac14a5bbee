"""Rolling summaries: a long conversation stays under its token budget, and what the user said
in turn 1 is still there in turn 30."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from memory.summary import (
    PINNED_HEADER,
    ExtractiveSummarizer,
    LLMSummarizer,
    as_state_update,
    count_tokens,
    extract_facts,
    is_summary_message,
    summarize_if_needed,
)

SITES = ["Camden", "Brixton", "Leeds Central", "Hackney", "Soho"]
METRICS = ["cpu_percent", "memory_percent", "network_latency_ms", "error_rate", "disk_percent"]


def turn(i: int) -> list:
    """One realistic turn: a question, a tool call, its result, and an answer with numbers."""
    site, metric = SITES[i % len(SITES)], METRICS[i % len(METRICS)]
    call_id = f"call-{i}"
    value = round(10 + (i * 7.3) % 80, 1)
    result = {"status": "ok", "tool": "query_metric", "rows": 24,
              "summary": f"Average {metric} at {site} over the last 24 h was {value}.",
              "data": [{"hour": h, "value": value + h / 10} for h in range(24)]}
    return [
        HumanMessage(f"What was the average {metric} at {site} over the last day? Please break it down."),
        AIMessage("", tool_calls=[{"name": "query_metric", "args": {"metric": metric, "scope": "site",
                                                                    "target": site}, "id": call_id}]),
        ToolMessage(json.dumps(result), tool_call_id=call_id, name="query_metric"),
        AIMessage(f"The average {metric} at {site} over the last 24 h was {value}. "
                  "That is within the normal range for this site at this time of year, and no device "
                  "stands out. You could ask which devices at the site were the busiest."),
    ]


def run_conversation(turns: int, budget: int, first_message: str, summarizer=None):
    history = [SystemMessage("You are HOMEPOT AI.")]
    summaries = []
    for i in range(turns):
        new = turn(i)
        if i == 0:
            new[0] = HumanMessage(first_message)
        history += new
        history, summary = summarize_if_needed(history, budget, summarizer)
        if summary:
            summaries.append(summary)
    return history, summaries


def test_a_fact_from_turn_1_is_recalled_in_turn_30_after_summarisation():
    history, summaries = run_conversation(
        30, budget=1500,
        first_message="Hi, my name is Priya Natarajan and I look after the Camden site. "
                      "Remember that the spare terminal there is DEVICE-7F3A-0042-CAFE.")
    assert len(summaries) >= 5, "30 turns must not fit in 1500 tokens without summarising repeatedly"
    assert count_tokens(history) <= 1500 + 400  # the budget plus at most one fresh turn
    context = "\n".join(str(m.content) for m in history)
    assert "Priya Natarajan" in context
    assert "DEVICE-7F3A-0042-CAFE" in context
    # The fact travels in the summary message, right after the system prompt.
    assert isinstance(history[0], SystemMessage) and is_summary_message(history[1])
    assert "Priya Natarajan" in history[1].content and PINNED_HEADER in history[1].content


def test_recent_turns_are_kept_verbatim_and_the_current_turn_is_never_cut():
    history, _ = run_conversation(12, budget=800, first_message="hello")
    last_question = turn(11)[0].content
    assert history[-4].content == last_question
    assert isinstance(history[-3], AIMessage) and history[-3].tool_calls
    assert isinstance(history[-2], ToolMessage) and history[-2].tool_call_id == "call-11"


def test_a_tool_result_is_never_separated_from_its_tool_call():
    history, _ = run_conversation(15, budget=900, first_message="hi")
    call_ids = {c["id"] for m in history if isinstance(m, AIMessage) for c in m.tool_calls}
    for m in history:
        if isinstance(m, ToolMessage):
            assert m.tool_call_id in call_ids


def test_within_budget_nothing_changes():
    messages = [SystemMessage("sys")] + turn(0)
    same, summary = summarize_if_needed(messages, budget=10_000)
    assert summary is None and same == messages


def test_summary_keeps_numbers_and_names_but_drops_chatter():
    pinned, discussed = extract_facts([
        HumanMessage("I prefer answers in bullet points."),
        AIMessage("Sure! Happy to help. Average latency at Brixton was 212 ms yesterday."),
    ])
    assert pinned == ["User: I prefer answers in bullet points."]
    assert discussed == ["Assistant: Average latency at Brixton was 212 ms yesterday."]


def test_extractive_summary_respects_its_size_limit_but_keeps_pinned_facts():
    messages = [HumanMessage("My name is Ola.")] + [m for i in range(20) for m in turn(i)]
    summary = ExtractiveSummarizer(max_tokens=120)(messages)
    assert "My name is Ola." in summary
    assert len(summary) <= 120 * 4 + 200
    assert "Soho" in summary or "Hackney" in summary  # the newest facts win the remaining space


def test_token_count_is_the_documented_cheap_approximation():
    messages = [HumanMessage("x" * 400)]
    assert count_tokens(messages) == count_tokens_approximately(messages)
    assert 100 <= count_tokens(messages) <= 110


class ScriptedModel:
    """A chat model stand-in: returns a fixed summary, or raises, and records the prompt."""

    def __init__(self, reply: str | Exception):
        self.reply = reply
        self.prompts: list[str] = []

    def invoke(self, messages):
        self.prompts.append(messages[0].content)
        if isinstance(self.reply, Exception):
            raise self.reply
        return AIMessage(self.reply)


def test_llm_summarizer_uses_the_prompt_file_and_restores_dropped_user_facts():
    model = ScriptedModel("- The user asked about CPU at several sites.")
    messages = [HumanMessage("Remember that my manager is Tom Okafor.")] + turn(1)
    summary = LLMSummarizer(model)(messages)
    assert "Transcript:" in model.prompts[0] and "Tom Okafor" in model.prompts[0]
    assert "The user asked about CPU" in summary
    assert "Remember that my manager is Tom Okafor." in summary


def test_llm_summarizer_falls_back_to_extractive_when_the_model_fails():
    messages = [HumanMessage("My name is Ada.")] + turn(2)
    summary = LLMSummarizer(ScriptedModel(TimeoutError("ollama timed out")))(messages)
    assert "My name is Ada." in summary


def test_state_update_replaces_the_whole_history():
    update = as_state_update([HumanMessage("summary")])
    assert update[0].type == "remove" and update[1].content == "summary"


@pytest.mark.parametrize("budget", [0, -5])
def test_a_non_positive_budget_disables_summarisation(budget):
    messages = [m for i in range(10) for m in turn(i)]
    assert summarize_if_needed(messages, budget)[1] is None
