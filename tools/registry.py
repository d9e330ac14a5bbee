"""The one registry of agent tools (llm's hook-and-collector habit, datasette's strictness).

A tool is a plain typed function ``fn(ctx, args) -> ToolResult`` whose ``args`` is a pydantic
model and whose docstring is written for the model: when to use it, units, defaults, example
questions. ``register`` adds it (a duplicate name is an error), ``get_tools`` collects them,
and ``call_tool`` is the single execution path: validate the arguments, refuse writes that have
not been confirmed, time the call, turn exceptions into ``error`` results and write the audit row.
The LangChain wrappers are generated from this registry in ``tools/langchain_tools.py``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from tools.config import Settings
from tools.results import ToolResult
from tools.store.engine import Store


@dataclass
class ToolContext:
    """What every tool call may need: the store, the settings, the clock and who is asking."""

    store: Store
    settings: Settings
    user: str = "cli"
    surface: str = "cli"
    thread_id: str | None = None
    confirmed: bool = False  # set by the human-in-the-loop step for write tools
    audit: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.settings.now()


ToolFn = Callable[[ToolContext, BaseModel], ToolResult]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: ToolFn
    args_model: type[BaseModel]
    description: str
    group: str
    writes: bool = False


_REGISTRY: dict[str, ToolSpec] = {}


class ToolRegistryError(ValueError):
    pass


def register(fn: ToolFn | None = None, *, name: str | None = None, group: str = "fleet", writes: bool = False):
    """Register a tool; usable as ``@register`` or ``@register(group="alerts", writes=True)``."""

    def wrap(f: ToolFn) -> ToolFn:
        tool_name = name or f.__name__
        if tool_name in _REGISTRY and _REGISTRY[tool_name].fn is not f:
            raise ToolRegistryError(f"A tool named {tool_name!r} is already registered")
        hints = get_type_hints(f)
        params = list(inspect.signature(f).parameters)
        if len(params) != 2:
            raise ToolRegistryError(f"Tool {tool_name!r} must take (ctx, args)")
        args_model = hints.get(params[1])
        if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
            raise ToolRegistryError(f"Tool {tool_name!r}: its args must be a pydantic model")
        doc = inspect.getdoc(f) or ""
        if not doc:
            raise ToolRegistryError(f"Tool {tool_name!r} needs a docstring written for the model")
        _REGISTRY[tool_name] = ToolSpec(tool_name, f, args_model, doc, group, writes)
        return f

    return wrap(fn) if fn is not None else wrap


def _load_builtin_tools() -> None:
    """Import the modules that register the built-in tools (they use the public ``register``)."""
    import importlib

    for module in BUILTIN_TOOL_MODULES:
        importlib.import_module(module)


#: Modules whose import registers the built-in tools. A module that does not exist yet is skipped.
BUILTIN_TOOL_MODULES: list[str] = [
    "tools.fleet_tools",
    "tools.metric_tools",
    "tools.anomaly_tools",
    "tools.maintenance_tools",
    "tools.alert_tools",
    "tools.report_tools",
    "tools.sql_tools",
    "tools.memory_tools",
    "memory.memory_tools",  # memory_search lives with the memory layer (imported by name only)
]


def get_tools() -> list[ToolSpec]:
    """Every registered tool, built-ins first."""
    import importlib.util

    for module in BUILTIN_TOOL_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    return list(_REGISTRY.values())


def get_tool(name: str) -> ToolSpec:
    tools = {t.name: t for t in get_tools()}
    if name not in tools:
        raise ToolRegistryError(f"Unknown tool {name!r}. Available tools: {', '.join(sorted(tools))}")
    return tools[name]


def call_tool(ctx: ToolContext, name: str, args: dict[str, Any] | BaseModel | None = None) -> ToolResult:
    """The single execution path for a tool call; never raises for the tool's own failures."""
    started = time.perf_counter()
    try:
        spec = get_tool(name)
    except ToolRegistryError as exc:
        return _finish(ctx, ToolResult.fail(name, str(exc)), name, args, started)
    try:
        parsed = args if isinstance(args, spec.args_model) else spec.args_model.model_validate(
            args.model_dump() if isinstance(args, BaseModel) else (args or {})
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return _finish(ctx, ToolResult.fail(name, f"Invalid arguments: {problems}"), name, args, started)
    params = parsed.model_dump(mode="json", exclude_none=True)
    if spec.writes and not ctx.confirmed:
        result = ToolResult(
            status="needs_confirmation",
            tool=name,
            params=params,
            summary=f"{name} changes data and needs an explicit confirmation first.",
        )
        return _finish(ctx, result, name, params, started)
    try:
        result = spec.fn(ctx, parsed)
    except Exception as exc:  # a tool failure is data, not a crash
        result = ToolResult.fail(name, f"{type(exc).__name__}: {exc}")
    result.tool = result.tool or name
    if not result.params:
        result.params = params
    return _finish(ctx, result, name, params, started)


def _finish(ctx: ToolContext, result: ToolResult, name: str, args: Any, started: float) -> ToolResult:
    seconds = time.perf_counter() - started
    result.tool = result.tool or name
    if ctx.audit:
        from tools.audit import record_tool_call

        record_tool_call(ctx, name, args, result, seconds)
    return result
