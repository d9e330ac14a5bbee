"""What the model is offered each step: flat tool schemas, routed by intent to a few tools.

A 3B model picks the right tool far more often out of five than out of fifteen, and copes with
flat schemas (enums inline, no ``$ref``) far better than nested ones (DESIGN.md section 5). So
``tool_schemas`` inlines pydantic's ``$defs`` and ``route_tools`` keeps only the tool groups the
question is about (keywords per group), falling back to every tool when nothing matches. The
offline model is offered everything: it routes by itself.
"""

from __future__ import annotations

import re
from typing import Any

from tools.registry import ToolSpec

#: tool group -> words that point at it (matched on word starts, case-insensitive).
GROUP_KEYWORDS: dict[str, tuple[str, ...]] = {
    "fleet": ("device", "fleet", "offline", "online", "stale", "site", "how many", "list", "status", "health"),
    "metrics": ("cpu", "memory", "disk", "latency", "error", "transaction", "queue", "connection", "temp",
                "average", "avg", "max", "min", "p95", "metric", "trend", "compare", "versus", "vs", "top",
                "highest", "lowest", "most", "usage", "load"),
    "anomalies": ("anomal", "flag", "unusual", "spike", "drop", "outlier", "why", "weird", "strange"),
    "maintenance": ("maintenance", "fail", "risk", "rul", "predict", "break", "replace", "wear", "life"),
    "alerts": ("alert", "acknowledg", "ack", "mute", "resolve", "incident", "warning", "critical"),
    "reports": ("report", "summary", "weekly", "monthly", "daily"),
    "memory": ("runbook", "how do i", "how to", "procedure", "remember", "last time", "playbook", "fix"),
    "sql": ("sql", "query", "table", "select"),
}

MAX_ROUTED_TOOLS = 6


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                target = dict(defs.get(node["$ref"].split("/")[-1], {}))
                target.update({k: v for k, v in node.items() if k != "$ref"})
                return walk(target)
            if "anyOf" in node:  # Optional[X] -> X (the model may simply leave it out)
                options = [o for o in node["anyOf"] if o.get("type") != "null"]
                if len(options) == 1:
                    merged = {k: v for k, v in node.items() if k != "anyOf"}
                    merged.update(options[0])
                    return walk(merged)
            return {k: walk(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def tool_schema(spec: ToolSpec, *, max_description: int = 900) -> dict[str, Any]:
    """One tool in the OpenAI/Ollama function format, flat, with a bounded description."""
    params = _inline_refs(spec.args_model.model_json_schema())
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    desc = spec.description
    if len(desc) > max_description:
        desc = desc[:max_description].rsplit("\n", 1)[0]
    return {"type": "function", "function": {"name": spec.name, "description": desc, "parameters": params}}


def tool_schemas(specs: list[ToolSpec]) -> list[dict[str, Any]]:
    return [tool_schema(s) for s in specs]


def route_tools(question: str, specs: list[ToolSpec], *, limit: int = MAX_ROUTED_TOOLS) -> list[ToolSpec]:
    """The tools whose groups the question mentions (at most ``limit``), or all when unsure."""
    q = question.lower()
    scores: dict[str, int] = {}
    for group, words in GROUP_KEYWORDS.items():
        hits = sum(1 for w in words if re.search(r"\b" + re.escape(w), q))
        if hits:
            scores[group] = hits
    if not scores:
        return list(specs)
    ranked = sorted(scores, key=lambda g: -scores[g])
    chosen: list[ToolSpec] = []
    for group in ranked:
        chosen += [s for s in specs if s.group == group and s not in chosen]
    if not chosen:
        return list(specs)
    return chosen[:limit]


__all__ = ["tool_schema", "tool_schemas", "route_tools", "GROUP_KEYWORDS"]
