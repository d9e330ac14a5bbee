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
    """What the model sees: ``ToolResult.to_model_text`` (summary first, capped, valid JSON)."""
    return result.to_model_text(max_chars=max_chars)


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
