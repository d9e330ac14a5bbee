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
        """What the model sees: status, summary and error first, then the data, cut to ``max_chars``.

        Over the cap the parts that matter most survive: the SQL shown is shortened and rows are
        halved until they fit, with a note saying how many were kept and how to narrow the call.
        The result is always valid JSON.
        """

        def dump(p: Any) -> str:
            return json.dumps(p, default=str, separators=(",", ":"))

        head: dict[str, Any] = {"status": self.status, "tool": self.tool, "summary": self.summary,
                                "error": self.error, "rows": self.rows, "truncated": self.truncated}
        payload = {k: v for k, v in head.items() if v is not None}
        payload["params"] = self.params
        data = self.model_dump(mode="json").get("data")
        full = {**payload, **({"query": self.query} if self.query else {}), **({"data": data} if data is not None else {})}
        text = dump(full)
        if len(text) <= max_chars:
            return text
        if self.query:
            payload["query"] = self.query if len(self.query) <= 300 else self.query[:300] + " ..."
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
            data_text = dump(data)
            payload["data"] = data if len(data_text) <= room else data_text[: max(room, 0)] + "...(cut)"
        text = dump(payload)
        for drop in ("query", "params"):
            if len(text) > max_chars:
                payload.pop(drop, None)
                text = dump(payload)
        if len(text) > max_chars and payload.get("summary"):  # last resort: shorten the sentence itself
            over = len(text) - max_chars + 20
            payload["summary"] = payload["summary"][: max(0, len(payload["summary"]) - over)] + "..."
            text = dump(payload)
        return text

    @classmethod
    def fail(cls, tool: str, error: str, **params: Any) -> "ToolResult":
        return cls(status="error", tool=tool, error=error, params=params)

    @classmethod
    def empty(cls, tool: str, summary: str, **params: Any) -> "ToolResult":
        return cls(status="no_data", tool=tool, summary=summary, params=params)
