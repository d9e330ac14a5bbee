"""One result envelope for every tool: ``ToolResult`` (holmesgpt's habit).

A tool never raises into the agent: an exception becomes an ``error`` result, "nothing found"
is ``no_data`` (not an error), and a write waiting for a human is ``needs_confirmation``.
``query`` says what actually ran, so the model (and the user) can see and correct it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "no_data", "error", "needs_confirmation"]


class ToolResult(BaseModel):
    status: Status = "ok"
    tool: str = ""
    data: Any = None
    rows: int = 0
    truncated: bool = False
    query: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    summary: str | None = None  # one or two sentences for the model and the user

    def one_liner(self) -> str:
        """A one-line human summary of the call, for steps in a chat UI and the audit log."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if v not in (None, "", [], {}))
        head = f"{self.tool}({args})"
        if self.status == "error":
            return f"{head} -> error: {self.error}"
        if self.status == "no_data":
            return f"{head} -> no data"
        if self.status == "needs_confirmation":
            return f"{head} -> waiting for confirmation"
        return f"{head} -> {self.rows} row{'s' if self.rows != 1 else ''}{' (truncated)' if self.truncated else ''}"

    def to_model_text(self, max_chars: int = 4000) -> str:
        """The JSON the model sees, capped: an oversized result is cut and says how to narrow it."""
        payload = self.model_dump(exclude_none=True, mode="json")
        text = json.dumps(payload, default=str, separators=(",", ":"))
        if len(text) <= max_chars:
            return text
        data = payload.get("data")
        if isinstance(data, list):
            keep = list(data)
            while keep and len(json.dumps({**payload, "data": keep}, default=str)) > max_chars - 200:
                keep = keep[: max(1, len(keep) // 2)] if len(keep) > 1 else []
            payload = {**payload, "data": keep, "truncated": True,
                       "note": f"showing {len(keep)} of {len(data)} rows; narrow the scope or lower 'limit'"}
            return json.dumps(payload, default=str, separators=(",", ":"))[:max_chars]
        return text[: max_chars - 80] + f'..." (cut at {max_chars} characters; narrow the query)'

    @classmethod
    def fail(cls, tool: str, error: str, **params: Any) -> "ToolResult":
        return cls(status="error", tool=tool, error=error, params=params)

    @classmethod
    def empty(cls, tool: str, summary: str, **params: Any) -> "ToolResult":
        return cls(status="no_data", tool=tool, summary=summary, params=params)
