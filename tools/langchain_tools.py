"""LangChain ``StructuredTool`` wrappers, generated from the one registry (in one place).

Each wrapper has the registered tool's name, its docstring as the description and its pydantic
args model as the schema, and runs through ``tools.registry.call_tool`` (validation,
confirmation of writes, timing, audit). The model sees ``ToolResult.to_model_text`` capped at
HOMEPOT_AI_TOOL_OUTPUT_CHARS (summary first, so the cap never cuts it); the full ``ToolResult`` travels beside it as the message's
artifact (``response_format="content_and_artifact"``), for grounding and for the UI.

Write tools (``update_alert``) run only when ``ctx.confirmed`` is set, or when the optional
``confirm(name, args)`` callback (e.g. one that calls LangGraph's ``interrupt``) returns True.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import ValidationError

from tools.registry import ToolContext, ToolSpec, call_tool, get_tools
from tools.results import ToolResult

Confirm = Callable[[str, dict[str, Any]], bool]


def _validation_handler(tool: str) -> Callable[[ValidationError], str]:
    """Turn LangChain's schema validation error into our error envelope, naming each bad field."""

    def handle(exc: ValidationError) -> str:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return ToolResult.fail(tool, f"Invalid arguments: {problems}. Fix them and call again.").to_model_text()

    return handle


def model_text(result: ToolResult, max_chars: int = 4000) -> str:
    """What the model sees: the summary first, then the data, cut to ``max_chars``.

    Under the cap this is ``result.to_model_text``. Over it, the parts that matter most survive:
    status, summary and error come first, the SQL shown is shortened, and rows are halved until
    they fit, with a note saying how many were kept and how to narrow the call.
    """
    full = result.to_model_text(max_chars=max_chars)
    if len(full) < max_chars:
        return full
    payload: dict[str, Any] = {"status": result.status, "tool": result.tool, "summary": result.summary,
                               "error": result.error, "rows": result.rows, "truncated": result.truncated}
    payload = {k: v for k, v in payload.items() if v is not None}
    if result.query:
        payload["query"] = result.query if len(result.query) <= 300 else result.query[:300] + " ..."

    def dump(p: Any) -> str:
        return json.dumps(p, default=str, separators=(",", ":"))

    data = result.model_dump(mode="json").get("data")
    if isinstance(data, list):
        keep = data
        while keep and len(dump({**payload, "data": keep})) > max_chars - 120:
            keep = keep[: len(keep) // 2]
        payload["data"] = keep
        if len(keep) < len(data):
            payload["truncated"] = True
            payload["note"] = f"showing {len(keep)} of {len(data)} rows; narrow the scope or ask for fewer rows"
    elif data is not None:
        room = max_chars - len(dump(payload)) - 40
        text = dump(data)
        payload["data"] = data if len(text) <= room else text[: max(room, 0)] + "...(cut)"
    text = dump(payload)
    if len(text) > max_chars:
        payload.pop("query", None)
        text = dump(payload)
    if len(text) > max_chars and payload.get("summary"):  # last resort: shorten the sentence itself
        over = len(text) - max_chars + 20
        payload["summary"] = payload["summary"][: max(0, len(payload["summary"]) - over)] + "..."
        text = dump(payload)
    return text


def make_langchain_tool(ctx: ToolContext, spec: ToolSpec, *, confirm: Confirm | None = None,
                        max_chars: int | None = None) -> StructuredTool:
    """One ``StructuredTool`` for ``spec`` bound to ``ctx``."""
    limit = int(max_chars or ctx.settings.get("HOMEPOT_AI_TOOL_OUTPUT_CHARS"))

    def run(**kwargs: Any) -> tuple[str, ToolResult]:
        call_ctx = ctx
        if spec.writes and not ctx.confirmed and confirm is not None and confirm(spec.name, dict(kwargs)):
            call_ctx = dataclasses.replace(ctx, confirmed=True)
        result = call_tool(call_ctx, spec.name, kwargs)
        return model_text(result, limit), result

    return StructuredTool.from_function(
        func=run,
        name=spec.name,
        description=spec.description,
        args_schema=spec.args_model,
        infer_schema=False,
        response_format="content_and_artifact",
        handle_validation_error=_validation_handler(spec.name),
        metadata={"group": spec.group, "writes": spec.writes},
    )


def as_langchain_tools(ctx: ToolContext, names: Iterable[str] | None = None, *, confirm: Confirm | None = None,
                       max_chars: int | None = None) -> list[StructuredTool]:
    """LangChain tools for every registered tool (or only ``names``, in that order)."""
    specs = {s.name: s for s in get_tools()}
    if names is None:
        chosen = list(specs.values())
    else:
        wanted = list(names)
        unknown = [n for n in wanted if n not in specs]
        if unknown:
            raise KeyError(f"Unknown tool(s) {', '.join(unknown)}; available: {', '.join(sorted(specs))}")
        chosen = [specs[n] for n in wanted]
    return [make_langchain_tool(ctx, s, confirm=confirm, max_chars=max_chars) for s in chosen]
