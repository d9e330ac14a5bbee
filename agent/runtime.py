"""The one agent entry point every surface uses: ``Agent.ask``, ``Agent.stream``, ``Agent.resume``.

The CLI, Chainlit, Slack and the evals all need the same thing: a question in, a grounded
answer out, with the tool calls made, the provider that answered, the time taken and, when a
write tool waits for a human, the pending action. ``Agent.stream`` is the single loop (it
yields tokens, tool steps and the final ``AgentReply``); ``ask`` simply drains it, so streaming
and non-streaming can never diverge.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from agent.providers import ProviderChoice, choose_provider
from tools.config import Settings
from tools.registry import ToolContext


@dataclass
class AgentReply:
    """One answered (or paused) turn, in the shape ``ask --json`` prints."""

    answer: str
    model: str
    thread_id: str
    seconds: float
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # write actions awaiting confirmation
    notice: str | None = None
    grounding: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tool_calls"] = [{"name": c["name"], "args": c["args"], "seconds": c["seconds"],
                              "status": c.get("status"), "rows": c.get("rows")} for c in self.tool_calls]
        return out


def new_thread_id() -> str:
    return uuid.uuid4().hex[:12]


class Agent:
    """A provider, a tool context and a checkpointed graph; one instance per process/session."""

    def __init__(self, ctx: ToolContext, provider: ProviderChoice, checkpointer: Any | None = None, *,
                 trust: bool = True, memory: bool = True) -> None:
        from agent.graph import build_graph
        from agent.trust import trust_line
        from agent.turn_context import prepare_turn

        self.ctx = ctx
        self.provider = provider
        self.checkpointer = checkpointer
        saver = getattr(checkpointer, "saver", checkpointer)
        ctx.extras.setdefault("chat_model", provider.model)
        ctx.extras["provider"] = provider.name
        self.graph = build_graph(
            ctx, provider, saver,
            prepare=(lambda state, groups: prepare_turn(ctx, state, groups)) if memory else None,
            trust=(lambda: trust_line(ctx.store, ctx.settings)) if trust else None,
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, model: str | None = None, surface: str = "cli",
                      store: Any | None = None, user: str | None = None) -> "Agent":
        """The usual construction: store, provider (auto rules) and checkpointer from settings."""
        from agent.checkpoint import open_checkpointer
        from app.context import tool_context

        ctx = tool_context(settings, surface=surface, store=store)
        if user:
            ctx.user = user
        provider = choose_provider(model, ctx.store, ctx.settings)
        return cls(ctx, provider, open_checkpointer(ctx.settings, ctx.store))

    def close(self) -> None:
        if self.checkpointer is not None and hasattr(self.checkpointer, "close"):
            self.checkpointer.close()

    # -- the loop --------------------------------------------------------------------------
    def _config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 4 * int(
            self.ctx.settings.get("HOMEPOT_AI_MAX_TOOL_CALLS")) + 12}

    def stream(self, question: str | None, thread_id: str | None = None, *,
               resume: Any = None) -> Iterator[tuple[str, Any]]:
        """Yield ``("token", text)``, ``("tool", log_entry)`` and finally ``("reply", AgentReply)``.

        Pass ``question`` for a new turn, or ``resume`` (True/False) to answer a pending
        confirmation on ``thread_id``.
        """
        from langgraph.types import Command

        thread_id = thread_id or new_thread_id()
        self.ctx.thread_id = thread_id
        config = self._config(thread_id)
        started = time.perf_counter()
        if resume is not None:
            payload: Any = Command(resume=resume)
        else:
            payload = {"messages": [HumanMessage(question or "")], "turn": {}}
        emitted = len(((self.graph.get_state(config).values or {}).get("turn") or {}).get("log", [])) \
            if resume is not None else 0
        for mode, chunk in self.graph.stream(payload, config, stream_mode=["messages", "updates"]):
            if mode == "messages":
                message, meta = chunk
                if meta.get("langgraph_node") == "model" and isinstance(message, (AIMessageChunk, AIMessage)):
                    text = message.content if isinstance(message.content, str) else ""
                    if text and not getattr(message, "tool_call_chunks", None):
                        yield "token", text
            elif mode == "updates" and isinstance(chunk, dict):
                tools_update = chunk.get("tools")
                if isinstance(tools_update, dict):
                    log = tools_update.get("turn", {}).get("log", [])
                    for entry in log[emitted:]:
                        yield "tool", entry
                    emitted = len(log)
        yield "reply", self._reply(thread_id, time.perf_counter() - started)

    def _reply(self, thread_id: str, seconds: float) -> AgentReply:
        snapshot = self.graph.get_state(self._config(thread_id))
        values = snapshot.values or {}
        turn = values.get("turn") or {}
        pending = [i.value for i in getattr(snapshot, "interrupts", ()) or ()]
        messages = values.get("messages", [])
        if pending:
            answer = "\n".join(p.get("question", str(p)) if isinstance(p, dict) else str(p) for p in pending)
        else:
            last = messages[-1] if messages else None
            answer = str(last.content) if isinstance(last, AIMessage) else ""
        notice = self.provider.notice
        return AgentReply(answer=answer, model=turn.get("provider", self.provider.name), thread_id=thread_id,
                          seconds=round(seconds, 3), tool_calls=list(turn.get("log", [])), pending=pending,
                          notice=notice, grounding=turn.get("grounding", {}))

    def ask(self, question: str, thread_id: str | None = None) -> AgentReply:
        """Answer one question (continuing ``thread_id`` when given)."""
        reply: AgentReply | None = None
        for kind, item in self.stream(question, thread_id):
            if kind == "reply":
                reply = item
        assert reply is not None
        return reply

    def resume(self, thread_id: str, approve: bool) -> AgentReply:
        """Answer the pending confirmation of ``thread_id`` (approve or decline) and finish the turn."""
        if not self.pending(thread_id):
            raise LookupError(f"Thread {thread_id} has no action waiting for confirmation.")
        reply: AgentReply | None = None
        for kind, item in self.stream(None, thread_id, resume=bool(approve)):
            if kind == "reply":
                reply = item
        assert reply is not None
        return reply

    def pending(self, thread_id: str) -> list[dict[str, Any]]:
        """Write actions of ``thread_id`` waiting for a yes/no."""
        snapshot = self.graph.get_state(self._config(thread_id))
        return [i.value for i in getattr(snapshot, "interrupts", ()) or ()]

    def history(self, thread_id: str) -> list[Any]:
        return list((self.graph.get_state(self._config(thread_id)).values or {}).get("messages", []))


__all__ = ["Agent", "AgentReply", "new_thread_id"]
