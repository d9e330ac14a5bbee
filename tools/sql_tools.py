"""The guarded read-only SQL tool: the agent's escape hatch when no typed tool fits.

Everything goes through ``tools.sql_guard.run_guarded`` (one SELECT over allow-listed tables,
forced LIMIT, read-only session, time limit). A rejected or timed-out query comes back as an
``error`` result whose sentence says what is allowed or which setting to change, so the model
can rewrite the query instead of retrying it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.registry import ToolContext, register
from tools.results import ToolResult
from tools.sql_guard import QueryTimeout, SqlRejected, run_guarded


class RunSqlArgs(BaseModel):
    sql: str = Field(
        min_length=1,
        max_length=20_000,
        description=(
            "One read-only SELECT (WITH ... SELECT allowed) over the HOMEPOT tables (sites, devices, device_metrics, "
            "alerts, error_logs, health_checks, jobs, ...) and ai_anomalies, ai_predictions, ai_device_events, ai_reports."
        ),
    )
    max_rows: int | None = Field(
        default=None, ge=1, description="Fewer rows than the configured cap (HOMEPOT_AI_SQL_MAX_ROWS); never more."
    )


@register(group="sql")
def run_sql(ctx: ToolContext, args: RunSqlArgs) -> ToolResult:
    """Run one read-only SQL SELECT against the fleet store, when no other tool answers the question.

    Prefer the typed tools (query_metric, list_devices, list_alerts...): they resolve names and
    time windows for you. Rules: one SELECT only; allowed tables are the HOMEPOT tables plus
    ai_anomalies, ai_predictions, ai_device_events and ai_reports; a LIMIT is forced (200 rows by
    default); the query is stopped after HOMEPOT_AI_SQL_TIMEOUT_MS (2000 ms by default).
    device_metrics.timestamp is naive UTC; devices.id joins device_metrics.device_id while
    alerts.device_id holds the public DEVICE- id. Examples: "how many error_logs of severity
    critical are there per category?"; "which firmware versions run on the POS terminals?".
    """
    tool = "run_sql"
    cap = int(ctx.settings.get("HOMEPOT_AI_SQL_MAX_ROWS"))
    timeout_ms = int(ctx.settings.get("HOMEPOT_AI_SQL_TIMEOUT_MS"))
    try:
        result = run_guarded(
            ctx.store, args.sql, max_rows=args.max_rows or cap, timeout_ms=timeout_ms,
            settings_max_rows=cap, settings_timeout_ms=timeout_ms,
        )
    except (SqlRejected, QueryTimeout) as exc:
        return ToolResult(status="error", tool=tool, error=str(exc), query=args.sql)
    rows = result.dicts()
    if not rows:
        return ToolResult(status="no_data", tool=tool, query=result.sql, data=[],
                          summary=f"The query returned no rows (columns: {', '.join(result.columns)}).")
    more = f", cut at the {len(rows)}-row cap" if result.truncated else ""
    summary = f"The query returned {len(rows)} row{'s' if len(rows) != 1 else ''}{more} with columns {', '.join(result.columns)}."
    return ToolResult(tool=tool, data=rows, rows=len(rows), truncated=result.truncated, query=result.sql, summary=summary)
