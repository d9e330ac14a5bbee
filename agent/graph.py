"""The agent graph: prepare -> model <-> (confirm) -> tools -> ... -> ground.

An explicit LangGraph ``StateGraph`` rather than ``create_agent``: each safety rule of DESIGN.md
section 5 is one readable node or one branch, not a middleware ordering puzzle.

- ``prepare``: once per turn; the system prompt (fleet snapshot, long-term memory snippets,
  rolling summary; older turns are summarised past the token budget).
- ``model``: the chat model with the routed tools bound. It repairs small-model replies (tool
  calls written as text, string-encoded arguments), retries an empty or unreadable reply once,
  turns a failing server into one clear sentence or, in auto mode, answers the turn offline.
  On the last allowed step no tools are offered, which forces an answer.
- ``confirm``: a human-in-the-loop ``interrupt`` before any write tool; it has no side effect
  before the interrupt, so resuming re-runs nothing.
- ``tools``: every call goes through ``tools.registry.call_tool`` (validation, confirmation,
  timing, audit); output capped with ``ToolResult.to_model_text``. A repeated identical call,
  an unknown tool or invalid arguments come back as an error ``ToolMessage`` saying what to do;
  a tool that fails twice is not offered again this turn.
- ``ground``: every figure checked against the turn's tool results, then the trust line.

Per-turn bookkeeping lives in ``state["turn"]`` (reset by each new question), so a checkpoint
holds everything needed to resume after an interrupt or a process restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypedDict

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from agent.grounding import check_answer, flag_line, numbers_in
from agent.providers import ProviderChoice, classify_error
from agent.textcalls import decode_arguments, extract_tool_calls
from agent.toolset import route_tools, tool_schemas
from tools.registry import ToolContext, ToolSpec, call_tool, get_tools


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    summary: str  # rolling summary of turns no longer kept verbatim
    system: str  # this turn's system prompt
    fleet: str  # this turn's fleet snapshot (its figures count as grounded)
    turn: dict[str, Any]  # per-turn bookkeeping; each new question resets it


EMPTY_REPLY = ("The model returned an empty reply twice. Try rephrasing the question, "
               "or use --model offline.")
LIMIT_NOTE = ("You have used every tool call allowed for this question. Do not call tools: "
              "answer now from the tool results above, and say what is missing.")


def last_human_index(messages: list[BaseMessage]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, HumanMessage) and (m.additional_kwargs or {}).get("lc_source") != "summarization":
            return i
    return -1


def _call_key(name: str, args: dict[str, Any]) -> str:
    return name + ":" + json.dumps(args, sort_keys=True, default=str)


class GraphBuilder:
    """Builds the compiled graph for one tool context and one provider choice."""

    def __init__(self, ctx: ToolContext, provider: ProviderChoice, *,
                 prepare: Callable[[AgentState, list[str]], dict[str, Any]] | None = None,
                 trust: Callable[[], str] | None = None) -> None:
        self.ctx = ctx
        self.provider = provider
        self.prepare_fn = prepare
        self.trust_fn = trust
        self.max_calls = int(ctx.settings.get("HOMEPOT_AI_MAX_TOOL_CALLS"))
        self.max_chars = int(ctx.settings.get("HOMEPOT_AI_TOOL_OUTPUT_CHARS"))
        self.specs: dict[str, ToolSpec] = {s.name: s for s in get_tools()}

    # -- nodes -----------------------------------------------------------------------------
    def prepare(self, state: AgentState) -> dict[str, Any]:
        turn = {"tool_calls": 0, "steps": 0, "log": [], "errors": {}, "seen": [], "approvals": {},
                "provider": self.provider.name, "fallback": False, "notices": []}
        update: dict[str, Any] = {"turn": turn}
        if self.prepare_fn is not None:
            groups = sorted({s.group for s in self.specs.values()})
            update.update(self.prepare_fn(state, groups))
            update["turn"] = {**turn, **update.get("turn", {})}
        return update

    def _offered(self, state: AgentState, turn: dict[str, Any]) -> list[ToolSpec]:
        if turn["tool_calls"] >= self.max_calls:
            return []
        specs = [s for s in self.specs.values() if turn["errors"].get(s.name, 0) < 2]
        if self.provider.name == "ollama" and not turn.get("fallback"):
            messages = state.get("messages", [])
            i = last_human_index(messages)
            question = str(messages[i].content) if i >= 0 else ""
            specs = route_tools(question, specs)
        return specs

    def _prompt(self, state: AgentState, last_step: bool) -> list[BaseMessage]:
        system = state.get("system") or ""
        messages = list(state.get("messages", []))
        while messages and isinstance(messages[0], ToolMessage):  # orphaned by summarisation
            messages.pop(0)
        out: list[BaseMessage] = [SystemMessage(system)] if system else []
        out += messages
        if last_step:
            out.append(SystemMessage(LIMIT_NOTE))
        return out

    def model(self, state: AgentState) -> dict[str, Any]:
        turn = dict(state["turn"])
        turn["steps"] = turn.get("steps", 0) + 1
        offered = self._offered(state, turn)
        last_step = not offered
        prompt = self._prompt(state, last_step)
        malformed_retry = empty_retry = False
        while True:
            use_fallback = bool(turn.get("fallback"))
            chat = self.provider.fallback if use_fallback else self.provider.model
            runnable = chat.bind_tools(tool_schemas(offered)) if offered else chat
            try:
                reply = runnable.invoke(prompt)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence
                err = classify_error(exc, host=None if use_fallback else self.provider.host)
                if err.kind == "malformed" and not malformed_retry:
                    malformed_retry = True
                    continue
                if self.provider.fallback is not None and not use_fallback:
                    turn["fallback"] = True
                    turn["provider"] = "offline"
                    turn["notices"] = [*turn.get("notices", []), f"{err} Answered with the offline model."]
                    offered = [s for s in self.specs.values() if turn["errors"].get(s.name, 0) < 2] if offered else []
                    continue
                return {"messages": [AIMessage(str(err), response_metadata={"error": err.kind})], "turn": turn}
            reply = self._repair(reply, offered)
            if not reply.tool_calls and not str(reply.content).strip():
                if not empty_retry:
                    empty_retry = True
                    prompt = [*prompt, SystemMessage("Your last reply was empty. Answer the question "
                                                     "or call one of the tools.")]
                    continue
                reply = AIMessage(EMPTY_REPLY, response_metadata={"error": "empty"})
            return {"messages": [reply], "turn": turn}

    def _repair(self, reply: BaseMessage, offered: list[ToolSpec]) -> AIMessage:
        """Tool calls out of text, decoded arguments; no calls when none were offered."""
        if not isinstance(reply, AIMessage):
            reply = AIMessage(str(reply.content))
        calls = list(reply.tool_calls)
        content = reply.content if isinstance(reply.content, str) else _text_of(reply.content)
        if not calls and offered:
            calls = extract_tool_calls(content)
            if calls:
                content = ""
        calls = [{**c, "args": decode_arguments(c.get("args"))} for c in calls]
        if not offered and calls:  # last step: the model must answer, not call
            calls = []
            content = content or ""
        return AIMessage(content=content, tool_calls=calls, id=reply.id,
                         response_metadata=getattr(reply, "response_metadata", {}) or {})

    def confirm(self, state: AgentState) -> dict[str, Any]:
        turn = dict(state["turn"])
        approvals = dict(turn.get("approvals", {}))
        last = state["messages"][-1]
        for call in getattr(last, "tool_calls", []):
            spec = self.specs.get(call["name"])
            if spec is None or not spec.writes or call["id"] in approvals:
                continue
            answer = interrupt({
                "type": "confirm_tool",
                "tool": call["name"],
                "args": call["args"],
                "tool_call_id": call["id"],
                "question": f"Run {call['name']}({_args_text(call['args'])})? It changes data.",
            })
            approvals[call["id"]] = _truthy(answer)
        turn["approvals"] = approvals
        return {"turn": turn}

    def tools(self, state: AgentState) -> dict[str, Any]:
        turn = dict(state["turn"])
        seen = list(turn.get("seen", []))
        errors = dict(turn.get("errors", {}))
        log = list(turn.get("log", []))
        out: list[ToolMessage] = []
        for call in state["messages"][-1].tool_calls:
            name, args, call_id = call["name"], call.get("args") or {}, call["id"]
            key = _call_key(name, args)
            if turn["tool_calls"] >= self.max_calls:
                out.append(ToolMessage(f"Error: the limit of {self.max_calls} tool calls for this question is "
                                       "reached. Answer with the results you have.", tool_call_id=call_id,
                                       name=name, status="error"))
                continue
            if key in seen:
                out.append(ToolMessage(f"Error: you already called {name} with these arguments in this turn; "
                                       "its result is above. Do not repeat it: answer the user, or call a "
                                       "different tool.", tool_call_id=call_id, name=name, status="error"))
                continue
            seen.append(key)
            turn["tool_calls"] += 1
            spec = self.specs.get(name)
            ctx = self.ctx
            if spec is not None and spec.writes:
                approved = turn.get("approvals", {}).get(call_id, False)
                if not approved:
                    log.append({"name": name, "args": args, "seconds": 0.0, "status": "declined",
                                "rows": 0, "one_liner": f"{name}({_args_text(args)}) -> not confirmed"})
                    out.append(ToolMessage(f"The user did not confirm {name}; nothing was changed. Tell the user "
                                           "the action was not carried out.", tool_call_id=call_id, name=name,
                                           status="error"))
                    continue
                ctx = replace(self.ctx, confirmed=True)
            started = time.perf_counter()
            result = call_tool(ctx, name, args)
            seconds = time.perf_counter() - started
            text = result.to_model_text(max_chars=self.max_chars)
            if result.status == "error":
                errors[name] = errors.get(name, 0) + 1
                if errors[name] == 1:
                    text += ("\nFix the arguments and call the tool once more, or answer with what you have."
                             if spec is not None else "\nCall one of the available tools listed above.")
                else:
                    text += f"\nDo not call {name} again for this question; answer with what you have and say what failed."
            log.append({"name": name, "args": args, "seconds": round(seconds, 4), "status": result.status,
                        "rows": result.rows, "one_liner": result.one_liner()})
            out.append(ToolMessage(text, tool_call_id=call_id, name=name,
                                   status="error" if result.status == "error" else "success"))
        turn.update(seen=seen, errors=errors, log=log)
        return {"messages": out, "turn": turn}

    def ground(self, state: AgentState) -> dict[str, Any]:
        messages = state["messages"]
        last = messages[-1]
        turn = dict(state["turn"])
        if not isinstance(last, AIMessage):
            return {}
        start = last_human_index(messages)
        sources: set[float] = set()
        for m in messages[start + 1:]:
            if isinstance(m, ToolMessage):
                sources |= numbers_in(str(m.content))
        allowed = numbers_in(str(messages[start].content)) if start >= 0 else set()
        allowed |= numbers_in(state.get("fleet") or "")
        allowed |= {float(self.max_calls)}
        answer = last.content if isinstance(last.content, str) else _text_of(last.content)
        if (last.response_metadata or {}).get("error"):
            report = None
        else:
            report = check_answer(answer, sources, allowed=allowed)
            answer = report.answer
            if report.flagged:
                answer += "\n" + flag_line(report)
        if turn.get("notices"):
            answer = "\n".join(turn["notices"]) + "\n" + answer
        if self.trust_fn is not None:
            answer = answer.rstrip() + "\n\n" + self.trust_fn()
        turn["grounding"] = ({"checked": report.checked, "repaired": report.repaired, "flagged": report.flagged}
                             if report else {})
        return {"messages": [AIMessage(answer, id=last.id, response_metadata=last.response_metadata)],
                "turn": turn}

    # -- wiring ----------------------------------------------------------------------------
    def _after_model(self, state: AgentState) -> str:
        last = state["messages"][-1]
        calls = getattr(last, "tool_calls", None) or []
        if not calls:
            return "ground"
        if any(self.specs.get(c["name"]) is not None and self.specs[c["name"]].writes for c in calls):
            return "confirm"
        return "tools"

    def build(self, checkpointer: Any = None) -> Any:
        g = StateGraph(AgentState)
        g.add_node("prepare", self.prepare)
        g.add_node("model", self.model)
        g.add_node("confirm", self.confirm)
        g.add_node("tools", self.tools)
        g.add_node("ground", self.ground)
        g.add_edge(START, "prepare")
        g.add_edge("prepare", "model")
        g.add_conditional_edges("model", self._after_model, {"tools": "tools", "confirm": "confirm", "ground": "ground"})
        g.add_edge("confirm", "tools")
        g.add_edge("tools", "model")
        g.add_edge("ground", END)
        return g.compile(checkpointer=checkpointer)


def build_graph(ctx: ToolContext, provider: ProviderChoice, checkpointer: Any = None, **kwargs: Any) -> Any:
    """The compiled agent graph (see the module docstring for its nodes)."""
    return GraphBuilder(ctx, provider, **kwargs).build(checkpointer)


def _truthy(answer: Any) -> bool:
    if isinstance(answer, dict):
        answer = answer.get("approved", answer.get("confirm"))
    if isinstance(answer, str):
        return answer.strip().lower() in {"y", "yes", "true", "1", "confirm", "ok"}
    return bool(answer)


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in content)
    return str(content or "")


__all__ = ["AgentState", "GraphBuilder", "build_graph", "last_human_index"]
