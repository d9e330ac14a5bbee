"""Repairing small-model tool calls: calls written as text, string-encoded or wrapped arguments.

Small local models (llama3.2 3B and friends) often write a tool call into ``content`` instead
of ``tool_calls``: bare JSON, a ```json fence, ``{"name": .., "arguments": ..}``,
``{"function": {"name": .., "arguments": ..}}``, ``{"tool": .., "parameters": ..}``, sometimes
with the arguments as a JSON *string*, or wrapped once more (``{"args": "{...}"}``). These pure
functions turn such replies back into proper calls so the graph can run them; a name that is not
a known tool is still returned, and the tool node answers it with the list of valid names.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON|tool_call|tool)?\s*(.*?)```", re.S)
_NAME_KEYS = ("name", "tool", "tool_name", "function_name")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "tool_input")


def decode_arguments(args: Any) -> dict[str, Any]:
    """Arguments as a dict: decode JSON strings and unwrap one ``{"arguments": ...}`` layer."""
    for _ in range(3):
        if isinstance(args, str):
            text = args.strip()
            if not text:
                return {}
            try:
                args = json.loads(text)
            except ValueError:
                return {"value": args}
            continue
        if isinstance(args, dict) and len(args) == 1:
            (key, inner), = args.items()
            if key in _ARG_KEYS + ("properties",) and isinstance(inner, (dict, str)):
                decoded = _maybe_json_object(inner)
                if decoded is not None:
                    args = decoded
                    continue
        break
    if not isinstance(args, dict):
        return {} if args is None else {"value": args}
    return {k: (_maybe_json_object(v) if isinstance(v, str) and v.strip().startswith("{") else v) or v
            for k, v in args.items()}


def _maybe_json_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _candidates(text: str) -> list[str]:
    """JSON-looking snippets in text: fenced blocks first, then balanced {...} spans."""
    found = [m.group(1).strip() for m in _FENCE.finditer(text)]
    depth, start = 0, -1
    in_str, esc = False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            if depth == 0:
                start = i
            depth += 1
        elif ch in "}]" and depth:
            depth -= 1
            if depth == 0 and start >= 0:
                found.append(text[start:i + 1])
    return found


def _call_from_obj(obj: Any) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI shape {"type": "function", "function": {...}}
        return _call_from_obj(obj["function"])
    if isinstance(obj.get("function"), str):
        obj = {**obj, "name": obj["function"]}
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if not name:
        return None
    raw_args = next((obj[k] for k in _ARG_KEYS if k in obj), {})
    return {"name": name.strip(), "args": decode_arguments(raw_args),
            "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}


def extract_tool_calls(text: str) -> list[dict[str, Any]]:
    """Tool calls written as text in a reply, as LangChain ``ToolCall`` dicts (may be empty)."""
    if not text or "{" not in text:
        return []
    for snippet in _candidates(text):
        try:
            obj = json.loads(snippet)
        except ValueError:
            continue
        items = obj if isinstance(obj, list) else [obj]
        if isinstance(obj, dict) and isinstance(obj.get("tool_calls"), list):
            items = obj["tool_calls"]
        calls = [c for c in (_call_from_obj(i) for i in items) if c]
        if calls:
            return calls
    return []


__all__ = ["decode_arguments", "extract_tool_calls"]
