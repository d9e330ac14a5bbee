"""What the model knows at the start of a turn: system prompt, fleet snapshot, memories, summary.

The graph's ``prepare`` node calls :func:`prepare_turn`. It

- builds the system prompt from ``prompts/system.md`` (through the prompts loader) with the
  live fleet snapshot (memory.context) and long-term memory snippets, each tagged with its source;
- past the token budget (``HOMEPOT_AI_SUMMARY_TOKEN_BUDGET``), folds the older turns into the
  rolling summary (memory.summary) and removes them from the checkpointed history.

Long-term retrieval imports ChromaDB and an ONNX runtime, which costs seconds; it runs only when
the question asks for know-how or history (``wants_memory``) or the memory is already open, and
never for the offline model (which does not read the prompt), so that
``homepot-ai ask "how many devices are offline?"`` stays fast. The ``memory_search`` tool covers
explicit look-ups either way.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from tools.registry import ToolContext

log = logging.getLogger(__name__)

_MEMORY_WORDS = re.compile(
    r"\b(how (do|should|can|to)|runbook|procedure|playbook|fix|troubleshoot|remember|last time|"
    r"previous|before|again|incident|what should|recommend|why)\b", re.I)


def wants_memory(question: str) -> bool:
    """True when long-term memory is likely to help (know-how, history, recommendations)."""
    return bool(_MEMORY_WORDS.search(question or ""))


def estimate_tokens(messages: list[BaseMessage]) -> int:
    """About four characters per token: cheap, and close enough to decide when to summarise."""
    return sum(len(str(m.content)) + 16 for m in messages) // 4


def fleet_snapshot(ctx: ToolContext) -> str:
    """The compact live fleet context (memory.context), or empty when it cannot be built."""
    try:
        from memory.context import build_fleet_context
    except ImportError:
        return ""
    try:
        return build_fleet_context(ctx.store, ctx.settings).to_text()
    except Exception as exc:  # noqa: BLE001 - context is a help, never a failure
        log.warning("fleet context unavailable: %s", exc)
        return ""


def _memory(ctx: ToolContext, question: str) -> Any | None:
    """The long-term memory, opened only when the question wants it or it is already open.

    Never for the offline model: it does not read the system prompt, and asks ``memory_search``
    itself for know-how questions, so a per-turn recall would only cost time (opening ChromaDB
    and the ONNX runtime takes seconds).
    """
    from agent.offline.model import OfflineChatModel

    if isinstance(ctx.extras.get("chat_model"), OfflineChatModel):
        return None
    if "memory" not in ctx.extras and not wants_memory(question):
        return None
    try:
        from memory.memory_tools import memory_for
    except ImportError:
        return None
    try:
        memory = memory_for(ctx)
    except Exception as exc:  # noqa: BLE001 - memory is a help, never a failure
        log.warning("long-term memory unavailable: %s", exc)
        return None
    ctx.extras["memory"] = memory
    return memory


def memory_snippets(ctx: ToolContext, question: str, *, k: int = 3) -> tuple[str, str]:
    """``(memories, preferences)`` prompt text: snippets tagged with their source, the user's preferences."""
    memory = _memory(ctx, question)
    if memory is None:
        return "", ""
    try:
        return memory.recall(question, user=ctx.user, k=k)
    except Exception as exc:  # noqa: BLE001
        log.warning("long-term memory search failed: %s", exc)
        return "", ""


def system_prompt(ctx: ToolContext, *, fleet: str, memories: str = "", preferences: str = "",
                  tool_groups: list[str] = ()) -> str:
    """``prompts/system.md`` rendered with this turn's fleet context, memories and tool groups."""
    from prompts import system_prompt as render_system

    return render_system(now=ctx.now(), fleet_context=fleet, tool_groups=tool_groups,
                         memories=memories, preferences=preferences, user=ctx.user)


def summarizer_for(ctx: ToolContext) -> Any:
    """Extractive for the offline model (no LLM to ask), the chat model's own words for Ollama."""
    from memory.summary import ExtractiveSummarizer, LLMSummarizer

    budget = int(ctx.settings.get("HOMEPOT_AI_SUMMARY_TOKEN_BUDGET"))
    model = ctx.extras.get("chat_model")
    if model is None or ctx.extras.get("provider") != "ollama":
        return ExtractiveSummarizer(max_tokens=max(100, budget // 3))
    return LLMSummarizer(model, max_tokens=max(100, budget // 3))


def maybe_summarise(ctx: ToolContext, state: dict[str, Any]) -> dict[str, Any]:
    """Past the budget: the history replaced by one summary message plus the newest turns."""
    messages: list[BaseMessage] = list(state.get("messages", []))
    budget = int(ctx.settings.get("HOMEPOT_AI_SUMMARY_TOKEN_BUDGET"))
    try:
        from memory.summary import as_state_update, summarize_if_needed
    except ImportError:
        return {}
    try:
        compacted, summary = summarize_if_needed(messages, budget, summarizer_for(ctx))
    except Exception as exc:  # noqa: BLE001 - keep the history rather than lose the turn
        log.warning("summarisation failed, keeping the history: %s", exc)
        return {}
    if summary is None:
        return {}
    return {"messages": as_state_update(compacted), "summary": summary}


def prepare_turn(ctx: ToolContext, state: dict[str, Any], tool_groups: list[str] = ()) -> dict[str, Any]:
    """The ``prepare`` node's work: summary first, then the system prompt for this question."""
    update = maybe_summarise(ctx, state)
    messages = state.get("messages", [])
    question = next((str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    fleet = fleet_snapshot(ctx)
    memories, prefs = memory_snippets(ctx, question)
    update["fleet"] = fleet
    update["system"] = system_prompt(ctx, fleet=fleet, memories=memories, preferences=prefs,
                                     tool_groups=list(tool_groups))
    return update


__all__ = ["prepare_turn", "maybe_summarise", "system_prompt", "memory_snippets", "fleet_snapshot",
           "wants_memory", "estimate_tokens"]
