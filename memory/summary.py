"""Rolling conversation summaries: past a token budget, older turns become one summary message.

The working memory of a thread (the checkpointer's message list) would grow without bound, and
small local models silently lose the start of a long context. :func:`summarize_if_needed` keeps
the newest turns verbatim (about half the budget) and replaces everything older with a single
summary message, the way LangChain 1.x's ``SummarizationMiddleware`` does (same message shape,
same rule that an AI tool call and its tool results are never split). Our summarisers are plain
``Callable[[list[BaseMessage]], str]``, so they can also be handed to that middleware as its
``summarizer``.

Two summarisers:

* :class:`ExtractiveSummarizer` needs no model (offline mode). It keeps sentences that carry
  facts: what the user said about themselves or asked us to remember ("my name is ..",
  "remember that ..", "I prefer .."), numbers, device and site ids and names. Facts the user
  stated are pinned: they survive every later round of summarisation, which is what makes "a
  fact given in turn 1 is recalled in turn 30" work.
* :class:`LLMSummarizer` prompts a chat model with ``prompts/summarize_conversation.md`` and
  adds back any pinned fact the model dropped; on any model error it falls back to the
  extractive summary.

Token counting is deliberately cheap: LangChain's ``count_tokens_approximately`` (characters / 4
plus 3 per message, tool calls included). It overestimates slightly for English prose, which
errs on the side of summarising early; exact tokenizers differ per model anyway.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from langgraph.graph.message import REMOVE_ALL_MESSAGES

log = logging.getLogger(__name__)

Summarizer = Callable[[list[BaseMessage]], str]

SUMMARY_SOURCE = "summarization"  # additional_kwargs["lc_source"], as LangChain's middleware marks it
SUMMARY_PREFIX = "Here is a summary of the conversation to date:\n\n"
PINNED_HEADER = "Facts the user stated:"
DISCUSSED_HEADER = "Earlier in the conversation:"
ASKED_PREFIX = "User asked: "
KEEP_QUESTIONS = 3  # newest user questions a summary always keeps

#: What a user says about themselves or asks us to keep: pinned, never dropped.
_USER_FACT = re.compile(
    r"\b(my name is|my name's|i am|i'm|call me|remember|don't forget|do not forget|note that|keep in mind|"
    r"i prefer|i'd prefer|i like|i want|i need|please always|always|never|from now on|"
    r"my (?:site|store|shop|team|shift|email|phone|role|manager|region|area|favourite|favorite|timezone|time zone)|"
    r"i work|i manage|i look after|i'm responsible|i am responsible|we use|our )",
    re.IGNORECASE,
)
#: A sentence carrying a checkable fact: a number, a HOMEPOT id, or a capitalised name mid-sentence.
_FACTUAL = re.compile(r"\d|\b(?:DEVICE|SITE)-[A-Z0-9-]+|(?<=[a-z,;:] )[A-Z][a-zA-Z]+")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def count_tokens(messages: Sequence[BaseMessage]) -> int:
    """Approximate tokens of ``messages`` (characters / 4 + 3 per message; see module doc)."""
    return int(count_tokens_approximately(list(messages)))


def is_summary_message(message: BaseMessage) -> bool:
    return (message.additional_kwargs or {}).get("lc_source") == SUMMARY_SOURCE


def summary_message(summary: str) -> HumanMessage:
    """The message that stands in for the summarised turns (LangChain middleware's shape)."""
    return HumanMessage(content=SUMMARY_PREFIX + summary, additional_kwargs={"lc_source": SUMMARY_SOURCE})


def message_text(message: BaseMessage) -> str:
    """Plain text of a message: string content, or the text parts of a content list."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "\n".join(parts)


def _tool_text(message: ToolMessage) -> str:
    """A tool result's one-line gist: its ``summary`` field if it is a ToolResult JSON."""
    text = message_text(message)
    try:
        payload = json.loads(text)
    except (ValueError, TypeError):
        return text[:200]
    if isinstance(payload, dict):
        return str(payload.get("summary") or payload.get("error") or "")
    return ""


def _sentences(text: str) -> list[str]:
    return [s.strip(" -*\t") for s in _SENTENCE_SPLIT.split(text) if len(s.strip(" -*\t")) > 2]


def _parse_previous_summary(text: str) -> tuple[list[str], list[str]]:
    """Split an earlier extractive summary back into its pinned and discussed bullet lists."""
    body = text[len(SUMMARY_PREFIX):] if text.startswith(SUMMARY_PREFIX) else text
    pinned: list[str] = []
    discussed: list[str] = []
    target = discussed
    for line in body.splitlines():
        stripped = line.strip()
        if stripped == PINNED_HEADER:
            target = pinned
        elif stripped == DISCUSSED_HEADER:
            target = discussed
        elif stripped.startswith("- "):
            target.append(stripped[2:])
        elif stripped:
            target.append(stripped)
    return pinned, discussed


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = re.sub(r"\W+", " ", item.lower()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def extract_facts(messages: Sequence[BaseMessage]) -> tuple[list[str], list[str]]:
    """(pinned, discussed) fact sentences of ``messages``, oldest first.

    Pinned: sentences in which the user states something about themselves or asks us to
    remember it. Discussed: user questions and answer sentences that carry numbers or names.
    An earlier summary message contributes its own lists, so facts survive repeated rounds.
    """
    pinned: list[str] = []
    discussed: list[str] = []
    for message in messages:
        if is_summary_message(message):
            old_pinned, old_discussed = _parse_previous_summary(message_text(message))
            pinned += old_pinned
            discussed += old_discussed
            continue
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, HumanMessage):
            for sentence in _sentences(message_text(message)):
                if _USER_FACT.search(sentence):
                    pinned.append(f"User: {sentence}")
                else:
                    discussed.append(f"{ASKED_PREFIX}{sentence}")
        elif isinstance(message, ToolMessage):
            gist = _tool_text(message)
            if gist and _FACTUAL.search(gist):
                discussed.append(f"Tool {message.name or 'result'}: {gist}")
        elif isinstance(message, AIMessage):
            for sentence in _sentences(message_text(message)):
                if _FACTUAL.search(sentence):
                    discussed.append(f"Assistant: {sentence}")
    return _dedupe(pinned), _dedupe(discussed)


class ExtractiveSummarizer:
    """Summarise without a model: keep fact-bearing sentences, pinned user facts first.

    ``max_tokens`` bounds the summary (approximate tokens). Pinned facts are always kept; the
    discussed facts fill the rest, newest first, because recent context matters more.
    """

    def __init__(self, max_tokens: int = 500) -> None:
        self.max_tokens = int(max_tokens)

    def __call__(self, messages: list[BaseMessage]) -> str:
        pinned, discussed = extract_facts(messages)
        return render_summary(pinned, discussed, self.max_tokens)


def render_summary(pinned: list[str], discussed: list[str], max_tokens: int) -> str:
    """Lay out pinned and discussed facts as bullet lists within ``max_tokens`` (chars / 4)."""
    budget_chars = max_tokens * 4
    lines: list[str] = []
    if pinned:
        lines.append(PINNED_HEADER)
        lines += [f"- {p}" for p in pinned]
    used = sum(len(line) + 1 for line in lines)
    # The newest questions stay even on a tight budget: they are short, and follow-ups
    # ("and for Leeds?") need the question they follow.
    asked = [i for i, d in enumerate(discussed) if d.startswith(ASKED_PREFIX)][-KEEP_QUESTIONS:]
    keep = set(asked)
    used += sum(len(discussed[i]) + 3 for i in asked)
    for i in range(len(discussed) - 1, -1, -1):
        if i in keep:
            continue
        cost = len(discussed[i]) + 3
        if used + cost > budget_chars:
            break
        keep.add(i)
        used += cost
    if keep:
        lines.append(DISCUSSED_HEADER)
        lines += [f"- {discussed[i]}" for i in sorted(keep)]
    return "\n".join(lines) if lines else "Nothing of note was said yet."


class LLMSummarizer:
    """Summarise with a chat model and ``prompts/summarize_conversation.md``.

    The model's summary is checked for the pinned user facts; any it dropped are appended, so
    a weak local model cannot make the agent forget the user's name. Model failures fall back
    to the extractive summary (logged, never raised: summarising must not break a turn).
    """

    def __init__(self, chat_model: Any, max_tokens: int = 500) -> None:
        self.chat_model = chat_model
        self.max_tokens = int(max_tokens)
        self._fallback = ExtractiveSummarizer(max_tokens)

    def __call__(self, messages: list[BaseMessage]) -> str:
        from prompts import load_prompt

        pinned, _ = extract_facts(messages)
        prompt = load_prompt("summarize_conversation", transcript=transcript(messages),
                             max_words=str(int(self.max_tokens * 0.75)))
        try:
            reply = self.chat_model.invoke([HumanMessage(content=prompt)])
            text = message_text(reply).strip()
        except Exception as exc:  # the model is optional here; the extractive path always works
            log.warning("LLM summary failed (%s); using the extractive summary", exc)
            return self._fallback(messages)
        if not text:
            return self._fallback(messages)
        missing = [p for p in pinned if _fact_key(p) not in _fact_key(text)]
        if missing:
            text += "\n" + PINNED_HEADER + "\n" + "\n".join(f"- {p}" for p in missing)
        return text


def _fact_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower().removeprefix("user: ")).strip()


def transcript(messages: Sequence[BaseMessage]) -> str:
    """A plain transcript for the summary prompt (tool results reduced to their gist)."""
    lines = []
    for message in messages:
        if is_summary_message(message):
            lines.append(f"[earlier summary]\n{message_text(message)[len(SUMMARY_PREFIX):]}")
        elif isinstance(message, HumanMessage):
            lines.append(f"User: {message_text(message)}")
        elif isinstance(message, ToolMessage):
            gist = _tool_text(message)
            if gist:
                lines.append(f"Tool {message.name or ''}: {gist}")
        elif isinstance(message, AIMessage):
            text = message_text(message)
            calls = ", ".join(c.get("name", "?") for c in message.tool_calls or [])
            if text:
                lines.append(f"Assistant: {text}")
            if calls:
                lines.append(f"Assistant called: {calls}")
    return "\n".join(lines)


def _safe_cutoff(messages: Sequence[BaseMessage], index: int) -> int:
    """Move a cut so the kept part starts at a user turn, never between a tool call and result.

    Prefers the next ``HumanMessage`` at or after ``index`` (summarising a little more). When
    the cut falls inside the last turn, it moves back to that turn's question instead: the
    current turn is never summarised, even if it alone exceeds the budget.
    """
    def is_turn_start(m: BaseMessage) -> bool:
        return isinstance(m, HumanMessage) and not is_summary_message(m)

    for i in range(index, len(messages)):
        if is_turn_start(messages[i]):
            return i
    for i in range(min(index, len(messages) - 1), -1, -1):
        if is_turn_start(messages[i]):
            return i
    return 0


def summarize_if_needed(messages: Sequence[BaseMessage], budget: int,
                        summarizer: Summarizer | None = None, *,
                        keep_fraction: float = 0.4) -> tuple[list[BaseMessage], str | None]:
    """Return ``(messages, None)`` when within ``budget`` tokens, else the compacted list.

    Leading system messages stay. The newest turns that fit in ``keep_fraction * budget`` (40 %) are
    kept verbatim (always at least the last user turn); everything older, including an earlier
    summary, is replaced by one summary message. The summary text is returned too, so the
    caller can store it in long-term memory (``LongTermMemory.remember_conversation``).
    The default summary takes at most a quarter of the budget, so after a round about 35 % of
    the budget is free and the next round comes a few turns later, not on every turn.
    """
    messages = list(messages)
    if budget <= 0 or count_tokens(messages) <= budget:
        return messages, None
    summarizer = summarizer or ExtractiveSummarizer(max_tokens=max(100, budget // 4))
    lead = 0
    while lead < len(messages) and isinstance(messages[lead], SystemMessage):
        lead += 1
    body = messages[lead:]
    keep_budget = int(budget * keep_fraction)
    cut = len(body)
    used = 0
    while cut > 0:
        cost = count_tokens([body[cut - 1]])
        if used + cost > keep_budget and cut < len(body):
            break
        used += cost
        cut -= 1
    cut = _safe_cutoff(body, cut)
    if cut <= 0 or (cut == 1 and is_summary_message(body[0])):
        return messages, None  # nothing older than the kept turns: nothing to summarise
    older, recent = body[:cut], body[cut:]
    summary = summarizer(older)
    return messages[:lead] + [summary_message(summary)] + recent, summary


def as_state_update(new_messages: list[BaseMessage]) -> list[BaseMessage]:
    """Messages for a LangGraph ``add_messages`` state update that replaces the whole history."""
    return [RemoveMessage(id=REMOVE_ALL_MESSAGES), *new_messages]
