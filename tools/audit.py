"""The audit trail: every tool call is one ``ai_tool_calls`` row (who, surface, tool, args, time, rows)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import insert

from tools.results import ToolResult
from tools.store.schema import AiToolCall

if TYPE_CHECKING:
    from tools.registry import ToolContext

log = logging.getLogger(__name__)


def record_tool_call(ctx: "ToolContext", tool: str, args: Any, result: ToolResult, seconds: float) -> None:
    """Write one audit row; an audit failure is logged, never raised into the conversation."""
    if isinstance(args, BaseModel):
        args = args.model_dump(mode="json")
    try:
        arguments = json.loads(json.dumps(args or {}, default=str))
    except (TypeError, ValueError):
        arguments = {"repr": repr(args)}
    try:
        with ctx.store.engine.begin() as conn:
            conn.execute(
                insert(AiToolCall).values(
                    timestamp=ctx.now(),
                    user_id=ctx.user,
                    surface=ctx.surface,
                    thread_id=ctx.thread_id,
                    tool=tool,
                    arguments=arguments if isinstance(arguments, dict) else {"value": arguments},
                    status=result.status,
                    seconds=round(seconds, 6),
                    rows=result.rows,
                    error=result.error,
                )
            )
    except Exception as exc:  # pragma: no cover - depends on a failing database
        log.warning("could not write the audit row for %s: %s", tool, exc)
