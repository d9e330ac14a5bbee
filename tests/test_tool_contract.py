"""The contract every registered tool keeps (lifelines' habit: one test over all models).

For every tool in the registry, whoever wrote it: a description written for the model, a flat
JSON schema with described fields, a ToolResult back, no crash on an empty store, a row cap that
holds, and LangChain wrappers whose output stays under the configured size.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from test_tools_fleet_fixture import NOW, build_fleet
from tools.config import load_settings
from tools.langchain_tools import as_langchain_tools, model_text
from tools.registry import ToolContext, call_tool, get_tools
from tools.results import ToolResult

TOOLS = {t.name: t for t in get_tools()}

#: Arguments that make each tool do real work on the test fleet (unknown tools get minimal ones).
EXAMPLES: dict[str, dict[str, Any]] = {
    "fleet_overview": {},
    "list_devices": {},
    "query_metric": {"metric": "cpu", "group_by": "device"},
    "compare_metric": {"metric": "cpu", "scope_a": "site", "target_a": "camden", "scope_b": "site", "target_b": "brixton"},
    "list_alerts": {"status": "all"},
    "update_alert": {"alert_id": 1, "action": "acknowledge"},
    "run_sql": {"sql": "SELECT * FROM device_metrics"},
    "render_report": {"period": "daily"},
}
LIMIT_FIELDS = ("limit", "top_n", "max_rows", "max_listed")


def _minimal_args(name: str) -> dict[str, Any]:
    if name in EXAMPLES:
        return dict(EXAMPLES[name])
    schema = TOOLS[name].args_model.model_json_schema()
    args: dict[str, Any] = {}
    for field in schema.get("required", []):
        prop = schema["properties"][field]
        kind = prop.get("type") or next((a.get("type") for a in prop.get("anyOf", []) if a.get("type") != "null"), "string")
        args[field] = {"integer": 1, "number": 1.0, "boolean": False}.get(kind, "cpu")
    return args


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_tool_is_described_for_the_model(name: str) -> None:
    spec = TOOLS[name]
    assert len(spec.description) > 80, "say when to use it, units, defaults and example questions"
    schema = spec.args_model.model_json_schema()
    for field, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{name}.{field} needs a description"
        assert prop.get("type") != "object", f"{name}.{field}: keep schemas flat for small models"
    json.dumps(schema)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_tool_on_an_empty_store_returns_a_result_not_a_crash(name: str, sqlite_store) -> None:
    ctx = ToolContext(sqlite_store, load_settings().replace(now=NOW.isoformat()), confirmed=True, audit=False)
    result = call_tool(ctx, name, _minimal_args(name))
    assert isinstance(result, ToolResult) and result.tool == name
    if name in EXAMPLES:
        assert result.status in ("ok", "no_data"), result.error
    if result.status == "error":  # allowed for others' tools, but as one clean sentence
        assert "Traceback" not in (result.error or "") and "\n" not in (result.error or "").strip()
    if result.status == "no_data":
        assert result.summary, "say what was searched"


@pytest.fixture(scope="module")
def fleet_ctx(tmp_path_factory):
    from tools.store.engine import open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('contract') / 'fleet.db'}")
    build_fleet(store)
    yield ToolContext(store, load_settings().replace(now=NOW.isoformat(), sql_max_rows=5), audit=False)
    store.dispose()


@pytest.mark.parametrize("name", sorted(n for n in TOOLS if n in EXAMPLES))
def test_tool_returns_an_envelope_with_a_summary(name: str, fleet_ctx) -> None:
    result = call_tool(fleet_ctx, name, _minimal_args(name))
    if TOOLS[name].writes:
        assert result.status == "needs_confirmation"
        return
    assert result.status == "ok", result.error
    assert result.summary and result.rows >= 1 and result.query
    assert isinstance(result.data, (list, dict))


@pytest.mark.parametrize("name", sorted(n for n, t in TOOLS.items() if set(t.args_model.model_fields) & set(LIMIT_FIELDS)))
def test_row_cap_holds(name: str, fleet_ctx) -> None:
    field = next(f for f in LIMIT_FIELDS if f in TOOLS[name].args_model.model_fields)
    result = call_tool(fleet_ctx, name, {**_minimal_args(name), field: 2})
    assert result.status in ("ok", "no_data", "error")
    if result.status == "ok" and isinstance(result.data, list):
        assert len(result.data) <= 2 and result.rows <= 2


def test_sql_row_cap_from_settings_holds(fleet_ctx) -> None:
    result = call_tool(fleet_ctx, "run_sql", {"sql": "SELECT * FROM device_metrics", "max_rows": 1000})
    assert result.rows == 5 and result.truncated


def test_langchain_tools_mirror_the_registry_and_cap_output(fleet_ctx) -> None:
    tools = {t.name: t for t in as_langchain_tools(fleet_ctx)}
    assert set(tools) == set(TOOLS)
    msg = tools["query_metric"].invoke(
        {"type": "tool_call", "id": "c1", "name": "query_metric", "args": {"metric": "cpu", "group_by": "device"}}
    )
    assert isinstance(msg.artifact, ToolResult) and msg.artifact.rows == 10
    small = model_text(msg.artifact, 500)
    assert len(small) <= 500 and json.loads(small)["summary"] == msg.artifact.summary
    bad = tools["query_metric"].invoke(
        {"type": "tool_call", "id": "c2", "name": "query_metric", "args": {"metric": "cpu", "agg": "median"}}
    )
    assert "Invalid arguments" in bad.content and "agg" in bad.content


def test_langchain_write_tool_waits_for_confirmation(fleet_ctx) -> None:
    asked: list[tuple[str, dict]] = []
    tool = as_langchain_tools(fleet_ctx, ["update_alert"], confirm=lambda n, a: asked.append((n, a)) or False)[0]
    msg = tool.invoke({"type": "tool_call", "id": "c3", "name": "update_alert", "args": {"alert_id": 2, "action": "mute"}})
    assert msg.artifact.status == "needs_confirmation"
    assert [(n, a["alert_id"], a["action"]) for n, a in asked] == [("update_alert", 2, "mute")]
