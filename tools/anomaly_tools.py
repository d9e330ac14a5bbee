"""Agent tools for anomalies: list the strongest findings in a scope and window, explain one.

Findings come from ``ai_anomalies`` (written by ``homepot-ai scan`` and the scheduler). When the
window has none stored yet, ``find_anomalies`` scores the window itself (with a few days of
history before it, so the detector knows each metric's daily pattern) and stores the result.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.registry import ToolContext, register
from tools.results import ToolResult
from tools.scopes import ScopeArgs, resolve_scope, scoped_text
from tools.timewindow import WindowArgs, resolve_window

HISTORY = timedelta(days=3)
COLUMNS = ("a.id, a.device_id, d.device_id AS public_id, d.name AS device_name, a.metric, a.metrics, a.kind, "
           "a.score, a.severity, a.start, a.\"end\", a.observed, a.expected_low, a.expected_high, a.explanation")


class FindAnomaliesArgs(ScopeArgs, WindowArgs):
    limit: int = Field(default=10, ge=1, le=100, description="How many findings to return, strongest first.")
    min_severity: str = Field(default="low", description="Lowest severity to include: low, medium, high or critical.")
    group_by: Literal["none", "device"] = Field(
        default="none", description="'device': one row per device with its count of findings, most first.")
    top_n: int | None = Field(default=None, ge=1, le=100, description="With group_by='device': how many devices.")


class ExplainAnomalyArgs(BaseModel):
    anomaly_id: int | None = Field(default=None, description="The id of a finding, as returned by find_anomalies.")
    device: str | None = Field(default=None, description="A device name or DEVICE- id: explains its most recent finding.")


def _rows(ctx: ToolContext, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with ctx.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(scoped_text(sql, params), params)]


@register(group="anomalies")
def find_anomalies(ctx: ToolContext, args: FindAnomaliesArgs) -> ToolResult:
    """Find unusual behaviour in device metrics (spikes, dips, level shifts, drifts, erratic or
    stuck values, broken CPU/transaction relationships, devices that stopped reporting).

    Use for questions like "any anomalies at Camden yesterday?", "what looked odd on the tills
    this week?", "show the worst anomalies in the last 24 hours". Returns findings strongest first,
    each with the metric, kind, observed value against the expected band, start time and a
    one-sentence explanation. Default window: last_24h. Use explain_anomaly for details of one.
    """
    start, end, label = resolve_window(args.window, args.start, args.end, ctx.now(), default="last_24h")
    scope = resolve_scope(ctx.store, args.scope, args.target)
    order = ["low", "medium", "high", "critical"]
    sev = [s for s in order if order.index(s) >= order.index(args.min_severity if args.min_severity in order else "low")]
    params: dict[str, Any] = {"s": start, "e": end, "sev": sev, "n": args.limit}
    where = scope.device_filter("a.device_id", params)
    sql = (f"SELECT {COLUMNS} FROM ai_anomalies a JOIN devices d ON d.id = a.device_id "
           f"WHERE {where} AND a.start >= :s AND a.start < :e AND a.severity IN :sev "
           "ORDER BY a.score DESC, a.start LIMIT :n")
    if args.group_by == "device":  # "which 5 devices had the most anomalies": count per device in SQL
        params["n"] = args.top_n or args.limit
        sql = ("SELECT d.device_id AS public_id, d.name AS device_name, COUNT(*) AS anomalies, "
               "MAX(a.score) AS max_score, MAX(a.start) AS latest FROM ai_anomalies a JOIN devices d ON d.id = a.device_id "
               f"WHERE {where} AND a.start >= :s AND a.start < :e AND a.severity IN :sev "
               "GROUP BY d.device_id, d.name ORDER BY anomalies DESC, max_score DESC LIMIT :n")
    rows = _rows(ctx, sql, params)
    scanned = False
    if not rows:
        from tools.anomaly.service import detect_anomalies

        detect_anomalies(ctx.store, scope="device" if not scope.is_fleet else "fleet",
                         ids=None if scope.is_fleet else scope.device_ids, start=start - HISTORY, end=end)
        rows = _rows(ctx, sql, params)
        scanned = True
    if not rows:
        return ToolResult.empty("find_anomalies", f"No anomalies found for {scope.label} {label}.",
                                scope=args.scope, target=args.target, window=label)
    top = rows[0]
    if args.group_by == "device":
        summary = (f"{len(rows)} device{'' if len(rows) == 1 else 's'} with anomalies for {scope.label} {label}; most: "
                   f"{top['public_id']} ({top['device_name']}) with {top['anomalies']}.")
        return ToolResult(tool="find_anomalies", data=rows, rows=len(rows), summary=summary, query=sql,
                          params={"scope": args.scope, "target": args.target, "window": label,
                                  "group_by": "device", "scanned_now": scanned})
    summary = (f"{len(rows)} anomal{'y' if len(rows) == 1 else 'ies'} for {scope.label} {label}; strongest: "
               f"{top['public_id']} {top['kind']} on {top['metric']} at {top['start']} (score {top['score']:.2f}).")
    return ToolResult(tool="find_anomalies", data=rows, rows=len(rows), summary=summary, query=sql,
                      params={"scope": args.scope, "target": args.target, "window": label, "scanned_now": scanned})


@register(group="anomalies")
def explain_anomaly(ctx: ToolContext, args: ExplainAnomalyArgs) -> ToolResult:
    """Explain one anomaly: what was observed against what was expected, when it started, which
    signals fired and which other metrics moved with it.

    Use after find_anomalies ("why was that flagged?", "explain anomaly 42") or for a device
    ("what is wrong with till 3?", "explain the latest anomaly on DEVICE-..."). Give anomaly_id
    or device.
    """
    if args.anomaly_id is None and not args.device:
        return ToolResult.fail("explain_anomaly", "Give an anomaly_id or a device.")
    params: dict[str, Any] = {}
    if args.anomaly_id is not None:
        where, params["id"] = "a.id = :id", args.anomaly_id
    else:
        scope = resolve_scope(ctx.store, "device", args.device)
        where = scope.device_filter("a.device_id", params)
    sql = f"SELECT {COLUMNS}, a.signals FROM ai_anomalies a JOIN devices d ON d.id = a.device_id WHERE {where} ORDER BY a.start DESC LIMIT 1"
    rows = _rows(ctx, sql, params)
    if not rows:
        return ToolResult.empty("explain_anomaly", "No anomaly found for that id or device; run find_anomalies first.",
                                anomaly_id=args.anomaly_id, device=args.device)
    r = rows[0]
    return ToolResult(tool="explain_anomaly", data=r, rows=1, summary=r["explanation"], query=sql,
                      params={"anomaly_id": args.anomaly_id, "device": args.device})
