"""Metric tools: one number, a ranking, a time series, or a comparison, computed in SQL.

Both tools read ``device_metrics`` with the aggregation pushed into the database: a ``GROUP BY``
over the scope's devices and the window, time buckets with ``strftime`` (SQLite), ``date_trunc``
(PostgreSQL) or ``time_bucket`` (TimescaleDB). Extra metrics are JSON keys extracted in SQL
(``json_extract`` / ``->>``). Only ``p95`` on SQLite (no percentile function there) pulls the
already-filtered values into pandas. Every result says what ran (``query``) and carries a
one-sentence summary with the key numbers, rounded exactly as they appear in ``data``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from tools.registry import ToolContext, register
from tools.results import ToolResult
from tools.scopes import (
    friendly_errors,
    ResolvedScope,
    Scope,
    ScopeArgs,
    metric_unit,
    resolve_metric,
    resolve_scope,
    scoped_text,
)
from tools.store.bulk import SQLITE_TS_FORMAT
from tools.store.engine import Store
from tools.store.schema import NAMED_METRICS
from tools.timewindow import Window, WindowArgs, during, previous_period, resolve_window

Agg = Literal["avg", "min", "max", "sum", "count", "p95", "latest"]
Bucket = Literal["none", "hour", "day", "week"]
GroupBy = Literal["none", "device", "site", "device_type"]

AGG_WORDS = {
    "avg": "average",
    "min": "minimum",
    "max": "maximum",
    "sum": "total",
    "count": "number of readings of",
    "p95": "95th percentile",
    "latest": "latest",
}
MAX_ROWS = 200

# --------------------------------------------------------------------------- SQL building blocks

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def metric_expr(store: Store, metric: str, alias: str = "m") -> str:
    """SQL for one metric's value: a named column, or a JSON key of ``extra_metrics`` as a float."""
    if metric in NAMED_METRICS:
        return f"{alias}.{metric}"
    if not _KEY.match(metric):
        raise ValueError(f"Metric name {metric!r} has characters a metric name cannot have.")
    if store.is_sqlite:
        return f"CAST(json_extract({alias}.extra_metrics, '$.{metric}') AS REAL)"
    return f"CAST(NULLIF({alias}.extra_metrics::json->>'{metric}', '') AS DOUBLE PRECISION)"


def bucket_expr(store: Store, bucket: str, column: str = "m.timestamp") -> str:
    """SQL for the start of the hour/day/week (Monday) bucket holding ``column``."""
    if store.is_sqlite:
        return {
            "hour": f"strftime('%Y-%m-%d %H:00:00', {column})",
            "day": f"strftime('%Y-%m-%d 00:00:00', {column})",
            "week": f"strftime('%Y-%m-%d 00:00:00', {column}, 'weekday 0', '-6 days')",
        }[bucket]
    if store.has_timescale:
        return f"time_bucket(INTERVAL '1 {bucket}', {column})"
    return f"date_trunc('{bucket}', {column})"


def ts_param(store: Store, ts: datetime) -> Any:
    """A timestamp bound the way the column stores it (SQLite: the bulk writer's text format)."""
    return ts.strftime(SQLITE_TS_FORMAT) if store.is_sqlite else ts


def iso(value: Any) -> str | None:
    """A timestamp from either backend as 'YYYY-MM-DD HH:MM:SS' (naive UTC)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def rnd(value: Any) -> float | None:
    """Round for display: 2 decimals, 4 below 1 (error rates), so data and summary agree."""
    if value is None:
        return None
    v = float(value)
    if v != v:
        return None
    return round(v, 4) if abs(v) < 1 else round(v, 2)


def fmt(value: float | None, unit: str = "") -> str:
    """A rounded number as text, without trailing zeros, with its unit."""
    if value is None:
        return "n/a"
    text = f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if unit in ("%", "°C"):
        return f"{text}{unit}"
    return f"{text} {unit}" if unit and unit != "currency units" else text


_GROUP_COLS = {
    "device": ("d.device_id AS device_id, d.name AS device", "d.device_id, d.name", ["device_id", "device"]),
    "site": ("s.site_id AS site_id, s.name AS site", "s.site_id, s.name", ["site_id", "site"]),
    "device_type": ("d.device_type AS device_type", "d.device_type", ["device_type"]),
}


def _query(store: Store, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(scoped_text(sql, params), params)]


def shown_sql(sql: str, params: dict[str, Any]) -> str:
    """The SQL with its parameters written in, for ``ToolResult.query`` (for people, not to run)."""
    def sub(m: re.Match) -> str:
        v = params.get(m.group(1))
        if isinstance(v, (list, tuple)):
            return "(" + ", ".join(repr(x) for x in v[:20]) + (", ..." if len(v) > 20 else "") + ")"
        if isinstance(v, datetime):
            return repr(v.strftime("%Y-%m-%d %H:%M:%S"))
        return repr(v) if v is not None else m.group(0)

    return " ".join(re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", sub, sql).split())


def aggregate(
    store: Store,
    metric: str,
    scope: ResolvedScope,
    start: datetime,
    end: datetime,
    agg: str = "avg",
    *,
    bucket: str = "none",
    group_by: str = "none",
    order: str = "desc",
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Aggregate ``metric`` over ``scope`` and ``[start, end)``; returns (rows, the SQL shown).

    Each row has ``value``, ``samples`` and ``devices`` plus the group/bucket keys asked for.
    ``latest`` is each device's newest value (averaged when several devices form one group).
    """
    expr = metric_expr(store, metric)
    params: dict[str, Any] = {"start": ts_param(store, start), "end": ts_param(store, end)}
    where = (
        f"m.timestamp >= :start AND m.timestamp < :end AND {expr} IS NOT NULL "
        f"AND {scope.device_filter('m.device_id', params)}"
    )
    joins = " JOIN devices d ON d.id = m.device_id LEFT JOIN sites s ON s.id = d.site_id" if group_by != "none" else ""
    select, group, keys = [], [], []
    if group_by != "none":
        sel, grp, k = _GROUP_COLS[group_by]
        select.append(sel)
        group.append(grp)
        keys += k
    if bucket != "none" and agg != "latest":
        b = bucket_expr(store, bucket)
        select.append(f"{b} AS bucket")
        group.append(b)
        keys.append("bucket")
    if agg == "latest":
        return _latest(store, expr, where, params, group_by, keys, order, limit)
    if agg == "p95" and store.is_sqlite:
        return _p95_pandas(store, expr, where, joins, params, select, keys, bucket, order, limit)
    agg_sql = {
        "avg": f"AVG({expr})",
        "min": f"MIN({expr})",
        "max": f"MAX({expr})",
        "sum": f"SUM({expr})",
        "count": f"COUNT({expr})",
        "p95": f"percentile_cont(0.95) WITHIN GROUP (ORDER BY {expr})",
    }[agg]
    sql = (
        f"SELECT {', '.join(select + [f'{agg_sql} AS value', f'COUNT({expr}) AS samples', 'COUNT(DISTINCT m.device_id) AS devices'])} "
        f"FROM device_metrics m{joins} WHERE {where}"
    )
    if group:
        sql += f" GROUP BY {', '.join(group)}"
    if "bucket" in keys:
        sql += " ORDER BY bucket" + (f", value {order.upper()}" if group_by != "none" else "")
    elif group_by != "none":
        sql += f" ORDER BY value {order.upper()}, {keys[0]}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = _query(store, sql, params)
    if not group and rows and not rows[0]["samples"]:
        rows = []
    return [_clean(r) for r in rows], shown_sql(sql, params)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["value"] = rnd(out.get("value"))
    if "bucket" in out:
        out["bucket"] = iso(out["bucket"])
    for k in ("samples", "devices"):
        if k in out and out[k] is not None:
            out[k] = int(out[k])
    return out


def _latest(store, expr, where, params, group_by, keys, order, limit):
    """Each device's newest value in the window (a window function), grouped if asked."""
    sql = (
        "SELECT d.device_id AS device_id, d.name AS device, s.site_id AS site_id, s.name AS site, "
        "d.device_type AS device_type, x.v AS value, x.timestamp AS at FROM ("
        f"SELECT m.device_id AS did, m.timestamp, {expr} AS v, ROW_NUMBER() OVER "
        f"(PARTITION BY m.device_id ORDER BY m.timestamp DESC) AS rn FROM device_metrics m WHERE {where}"
        ") x JOIN devices d ON d.id = x.did LEFT JOIN sites s ON s.id = d.site_id WHERE x.rn = 1"
    )
    df = pd.DataFrame(_query(store, sql, params))
    shown = shown_sql(sql, params)
    if df.empty:
        return [], shown
    df["value"] = df["value"].astype(float)
    asc = order == "asc"
    if group_by == "device" or (group_by == "none" and len(df) == 1):
        df = df.sort_values(["value", "device"], ascending=[asc, True])
        df["samples"], df["devices"] = 1, 1
        df["at"] = df["at"].map(iso)
        cols = ["device_id", "device", "value", "at", "samples", "devices"]
        rows = df[cols].to_dict("records")
    else:
        gkeys = [k for k in keys if k != "bucket"]
        if gkeys:
            g = df.groupby(gkeys, dropna=False)["value"].agg(["mean", "count"]).reset_index()
        else:
            g = pd.DataFrame({"mean": [df["value"].mean()], "count": [len(df)]})
        g = g.rename(columns={"mean": "value", "count": "devices"})
        g["samples"] = g["devices"]
        g = g.sort_values("value", ascending=asc)
        rows = g.to_dict("records")
    if limit is not None:
        rows = rows[: int(limit)]
    return [_clean(r) for r in rows], shown


def _p95_pandas(store, expr, where, joins, params, select, keys, bucket, order, limit):
    """p95 on SQLite: the filtered values come back and pandas takes the quantile per group."""
    sel = select + [f"{expr} AS v", "m.device_id AS did"]
    sql = f"SELECT {', '.join(sel)} FROM device_metrics m{joins} WHERE {where}"
    df = pd.DataFrame(_query(store, sql, params))
    shown = shown_sql(sql, params) + "  -- then the 95th percentile per group in pandas"
    if df.empty:
        return [], shown
    df["v"] = df["v"].astype(float)
    if keys:
        g = df.groupby(keys, dropna=False).agg(value=("v", lambda s: s.quantile(0.95)), samples=("v", "size"), devices=("did", "nunique")).reset_index()
    else:
        g = pd.DataFrame({"value": [df["v"].quantile(0.95)], "samples": [len(df)], "devices": [df["did"].nunique()]})
    if "bucket" in keys:
        g = g.sort_values(["bucket", "value"], ascending=[True, order == "asc"])
    elif keys:
        g = g.sort_values("value", ascending=order == "asc")
    rows = g.to_dict("records")
    if limit is not None:
        rows = rows[: int(limit)]
    return [_clean(r) for r in rows], shown


# --------------------------------------------------------------------------- query_metric


class QueryMetricArgs(ScopeArgs, WindowArgs):
    metric: str = Field(
        description=(
            "Metric name or everyday word: cpu_percent ('cpu'), memory_percent, disk_percent, network_latency_ms "
            "('latency'), transaction_count ('transactions'), transaction_volume ('sales'), error_rate, "
            "active_connections, queue_depth, or an extra metric such as temperature_celsius ('temp'), card_reader_errors."
        )
    )
    agg: Agg = Field(default="avg", description="Aggregation over the readings. 'latest' = each device's newest reading.")
    bucket: Bucket = Field(default="none", description="Split the window into hourly/daily/weekly buckets (a time series).")
    group_by: GroupBy = Field(default="none", description="One value per device, site or device type (a ranking).")
    top_n: int | None = Field(default=None, ge=1, le=MAX_ROWS, description="Keep only the first N groups after ordering (e.g. top 5 devices).")
    order: Literal["desc", "asc"] = Field(default="desc", description="Ranking order: desc = highest first, asc = lowest first.")


@register(group="metrics")
@friendly_errors
def query_metric(ctx: ToolContext, args: QueryMetricArgs) -> ToolResult:
    """Aggregate one device metric over a scope (fleet, site, device type or device) and a time window.

    Use it for numbers about device telemetry: averages, peaks, totals, the latest reading,
    hourly/daily trends, and "top N" rankings of devices or sites. Units: *_percent in %,
    network_latency_ms in milliseconds, temperature_celsius in °C, transaction_volume in money,
    error_rate as stored by the source. Defaults: fleet scope, the last 24 hours, the average.
    Examples: "average CPU at Camden yesterday" -> metric=cpu, scope=site, target=Camden,
    window=yesterday; "which 5 devices had the highest latency this week?" -> metric=latency,
    agg=max, group_by=device, top_n=5, window=this_week.
    """
    tool = "query_metric"
    metric = resolve_metric(ctx.store, args.metric)
    scope = resolve_scope(ctx.store, args.scope, args.target)
    start, end, label = resolve_window(args.window, args.start, args.end, ctx.now())
    group_by = args.group_by
    if args.agg == "latest" and group_by == "none" and len(scope.device_ids) > 1 and args.bucket == "none":
        group_by = "device"  # "latest CPU of the Camden site" means each device's latest
    grouped = group_by != "none" or args.bucket != "none"
    cap = min(args.top_n or MAX_ROWS, MAX_ROWS)
    rows, sql = aggregate(
        ctx.store, metric, scope, start, end, args.agg,
        bucket=args.bucket, group_by=group_by, order=args.order, limit=cap + 1 if grouped else None,
    )
    unit = metric_unit(metric)
    params = {"metric": metric, "scope": scope.kind, "target": scope.label, "window": label,
              "start": iso(start), "end": iso(end), "agg": args.agg}
    if not rows:
        return ToolResult(
            status="no_data", tool=tool, query=sql, params=params,
            summary=f"No {metric} readings for {scope.label} {during(label)} ({iso(start)} to {iso(end)} UTC).",
        )
    truncated = len(rows) > cap
    rows = rows[:cap]
    word = AGG_WORDS[args.agg]
    if not grouped:
        row = rows[0]
        data = {"metric": metric, "unit": unit, "agg": args.agg, "value": row["value"], "samples": row["samples"],
                "devices": row["devices"], "scope": scope.label, "window": label, "start": iso(start), "end": iso(end)}
        summary = (f"The {word} {metric} for {scope.label} {during(label)} was {fmt(row['value'], unit)} "
                   f"({row['samples']} readings from {row['devices']} device{'s' if row['devices'] != 1 else ''}).")
        return ToolResult(tool=tool, data=data, rows=1, query=sql, params=params, summary=summary)
    if args.bucket != "none" and group_by == "none":
        vals = [r["value"] for r in rows if r["value"] is not None]
        hi = max(rows, key=lambda r: r["value"] if r["value"] is not None else float("-inf"))
        summary = (f"{word.capitalize()} {metric} for {scope.label} by {args.bucket} {during(label)}: {len(rows)} buckets, "
                   f"highest {fmt(hi['value'], unit)} at {hi['bucket']}, lowest {fmt(min(vals), unit)}.")
    else:
        key = {"device": "device", "site": "site", "device_type": "device_type"}[group_by]
        head = rows[: min(5, len(rows))]
        listed = ", ".join(f"{r.get(key)} {fmt(r['value'], unit)}" for r in head)
        which = "highest" if args.order == "desc" else "lowest"
        summary = (f"{word.capitalize()} {metric} by {key.replace('_', ' ')} for {scope.label} {during(label)}, {which} first: "
                   f"{listed}{' ...' if len(rows) > len(head) else ''}.")
    for r in rows:
        r["unit"] = unit
    return ToolResult(tool=tool, data=rows, rows=len(rows), truncated=truncated, query=sql, params=params, summary=summary)


# --------------------------------------------------------------------------- compare_metric


class CompareMetricArgs(WindowArgs):
    metric: str = Field(description="Metric name or everyday word, as for query_metric (e.g. 'error rate', 'cpu', 'temp').")
    agg: Literal["avg", "min", "max", "sum", "count", "p95"] = Field(default="avg", description="Aggregation compared.")
    scope_a: Scope = Field(default="fleet", description="Scope of the first side.")
    target_a: str | None = Field(default=None, description="Site/device/device type of the first side (e.g. 'Camden').")
    scope_b: Scope | None = Field(
        default=None, description="Scope of the second side. Leave empty to compare the first side with another period."
    )
    target_b: str | None = Field(default=None, description="Site/device/device type of the second side (e.g. 'Brixton').")
    period_b: Window | Literal["previous"] = Field(
        default="previous",
        description="When comparing periods: the other period; 'previous' = the period of the same length just before.",
    )


@register(group="metrics")
@friendly_errors
def compare_metric(ctx: ToolContext, args: CompareMetricArgs) -> ToolResult:
    """Compare one metric between two scopes over the same window, or one scope over two periods.

    Gives both values, the absolute difference (A minus B) and the percentage difference
    relative to B. Two scopes: set scope_a/target_a and scope_b/target_b. Two periods: set
    only scope_a/target_a and the window; B is the previous period (or period_b). Defaults: the
    average over the last 7 days. Examples: "compare the error rate of Camden and Brixton over
    the last 7 days" -> metric=error rate, scope_a=site, target_a=Camden, scope_b=site,
    target_b=Brixton, window=last_7d; "is CPU at Camden higher this week than last week?" ->
    metric=cpu, scope_a=site, target_a=Camden, window=this_week.
    """
    tool = "compare_metric"
    metric = resolve_metric(ctx.store, args.metric)
    a_scope = resolve_scope(ctx.store, args.scope_a, args.target_a)
    start, end, label = resolve_window(args.window, args.start, args.end, ctx.now(), default="last_7d")
    if args.scope_b is not None or args.target_b:
        b_scope = resolve_scope(ctx.store, args.scope_b or args.scope_a, args.target_b)
        b_start, b_end, b_label = start, end, label
        mode = "scopes"
    else:
        b_scope = a_scope
        if args.period_b == "previous":
            b_start, b_end, b_label = previous_period(start, end, args.window if args.start is None else None)
        else:
            b_start, b_end, b_label = resolve_window(args.period_b, None, None, ctx.now())
        mode = "periods"
    rows_a, sql_a = aggregate(ctx.store, metric, a_scope, start, end, args.agg)
    rows_b, sql_b = aggregate(ctx.store, metric, b_scope, b_start, b_end, args.agg)
    unit = metric_unit(metric)
    query = f"A: {sql_a}\nB: {sql_b}"
    params = {"metric": metric, "agg": args.agg, "a": f"{a_scope.label}, {label}", "b": f"{b_scope.label}, {b_label}"}

    def side(scope: ResolvedScope, rows, s, e, lab) -> dict[str, Any]:
        r = rows[0] if rows else {"value": None, "samples": 0, "devices": 0}
        return {"scope": scope.label, "window": lab, "start": iso(s), "end": iso(e),
                "value": r["value"], "samples": r["samples"], "devices": r["devices"]}

    a = side(a_scope, rows_a, start, end, label)
    b = side(b_scope, rows_b, b_start, b_end, b_label)
    name_a = a_scope.label if mode == "scopes" else label
    name_b = b_scope.label if mode == "scopes" else b_label
    if a["value"] is None or b["value"] is None:
        missing = " and ".join(n for n, s in ((name_a, a), (name_b, b)) if s["value"] is None)
        return ToolResult(status="no_data", tool=tool, data={"a": a, "b": b}, query=query, params=params,
                          summary=f"No {metric} readings for {missing}, so there is nothing to compare.")
    diff = rnd(a["value"] - b["value"])
    pct = round((a["value"] - b["value"]) / abs(b["value"]) * 100, 2) if b["value"] else None
    data = {"metric": metric, "unit": unit, "agg": args.agg, "mode": mode, "a": a, "b": b,
            "difference": diff, "percent_difference": pct}
    word = AGG_WORDS[args.agg]
    where = f" {during(label)}" if mode == "scopes" else f" for {a_scope.label}"
    direction = "higher" if diff > 0 else "lower" if diff < 0 else "the same as"
    rel = f" ({'+' if pct and pct > 0 else ''}{fmt(pct)}%)" if pct is not None else ""
    if diff == 0:
        tail = f"{name_a} is the same as {name_b}."
    else:
        tail = f"{name_a} is {fmt(abs(diff), unit)} {direction} than {name_b}{rel}."
    summary = (f"{word.capitalize()} {metric}{where}: {name_a} {fmt(a['value'], unit)} vs {name_b} "
               f"{fmt(b['value'], unit)}; {tail}")
    return ToolResult(tool=tool, data=data, rows=2, query=query, params=params, summary=summary)
