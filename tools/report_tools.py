"""render_report: a Markdown fleet or site report with its key tables and PNG charts.

The report is assembled from the same tools the agent calls (fleet_overview, list_alerts,
query_metric), so its numbers are the agent's numbers. Anomaly and risk sections appear when
``ai_anomalies`` / ``ai_predictions`` hold rows. Charts are matplotlib (Agg backend, no display)
PNGs under ``<data dir>/reports/``, referenced from the Markdown by relative path; the Markdown
is stored in ``ai_reports`` and written beside the charts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import insert

from tools.fleet_tools import device_status_frame
from tools.metric_tools import aggregate, fmt, iso, rnd, ts_param
from tools.registry import ToolContext, call_tool, register
from tools.results import ToolResult
from tools.scopes import friendly_errors, metric_unit, resolve_scope, resolve_site, scoped_text
from tools.store.schema import AiReport
from tools.timewindow import named_window

PERIOD_WINDOWS = {"daily": "yesterday", "weekly": "last_week", "monthly": "last_month"}
REPORT_METRICS = ("cpu_percent", "memory_percent", "network_latency_ms", "error_rate", "transaction_volume")


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A Markdown table; cell text is escaped so data can never break the layout."""
    head = "| " + " | ".join(title for _, title in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(str("" if r.get(k) is None else r.get(k)).replace("|", "\\|").replace("\n", " ") for k, _ in columns) + " |"
        for r in rows
    ]
    return "\n".join([head, sep, *body])


def _section_rows(ctx: ToolContext, sql: str, params: dict[str, Any], queries: list[str]) -> list[dict[str, Any]]:
    """Run one report section's scoped query; record it in ``queries`` (what the report ran)."""
    with ctx.store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(scoped_text(sql, params), params)]
    queries.append(sql)
    return rows


def _chart(series: pd.DataFrame, title: str, unit: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    ax.plot(pd.to_datetime(series["bucket"]), series["value"], marker="o", linewidth=1.5)
    ax.set_title(title)
    ax.set_ylabel(unit or "value")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class RenderReportArgs(BaseModel):
    period: Literal["daily", "weekly", "monthly"] = Field(
        default="daily", description="daily = yesterday, weekly = last week (Mon-Sun), monthly = last month."
    )
    site: str | None = Field(default=None, description="Site name or SITE- id for a site report. Default: the whole fleet.")
    charts: bool = Field(default=True, description="Draw PNG charts of the key metrics.")


@register(group="reports")
@friendly_errors
def render_report(ctx: ToolContext, args: RenderReportArgs) -> ToolResult:
    """Render a Markdown operations report (daily, weekly or monthly) for the fleet or one site.

    Contains fleet health (devices, online/offline, health states), open alerts, the top
    anomalies and the maintenance risk ranking when those analyses have run, and summaries of
    CPU, memory, latency, error rate and sales with charts. The report is saved (ai_reports and
    a .md file with PNG charts under the data directory) and its path is returned. Examples:
    "send me the weekly report" -> period=weekly; "daily report for Camden" -> site=Camden.
    """
    tool = "render_report"
    now = ctx.now()
    start, end = named_window(PERIOD_WINDOWS[args.period], now)
    scope = resolve_scope(ctx.store, "site" if args.site else "fleet", args.site)
    site_row = resolve_site(ctx.store, args.site) if args.site else None
    stamp = f"{args.period}-{'site' + str(site_row['id']) if site_row else 'fleet'}-{start:%Y%m%d}"
    out_dir = ctx.settings.data_dir / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{args.period.capitalize()} report: {scope.label}, {start:%Y-%m-%d} to {(end - timedelta(seconds=1)):%Y-%m-%d}"
    parts = [f"# {title}", "", f"Generated {iso(now)} UTC. Period: {iso(start)} to {iso(end)} UTC (end exclusive).", ""]
    queries: list[str] = []

    overview = call_tool(ctx, "fleet_overview", {})
    if overview.status != "ok":
        return ToolResult(status="no_data", tool=tool, summary=f"No devices are stored, so there is no {args.period} report to write.")
    dev, dev_sql = device_status_frame(ctx.store, now, float(ctx.settings.get("HOMEPOT_AI_STALE_AFTER_S")))
    queries.append(dev_sql)
    if site_row is not None and not dev.empty:
        dev = dev[dev["site_id"] == site_row["site_id"]]
    parts += ["## Fleet health", ""]
    if not dev.empty:
        health = dev.groupby("device_type").agg(
            devices=("device_id", "size"),
            online=("connectivity", lambda s: int((s == "online").sum())),
            offline=("connectivity", lambda s: int((s == "offline").sum())),
            healthy=("health_state", lambda s: int((s == "healthy").sum())),
            not_healthy=("health_state", lambda s: int((s != "healthy").sum())),
            stale=("stale", lambda s: int(s.sum())),
        ).reset_index()
        parts += [_table(health.to_dict("records"), [("device_type", "Type"), ("devices", "Devices"), ("online", "Online"),
                                                     ("offline", "Offline"), ("healthy", "Healthy"), ("not_healthy", "Not healthy"),
                                                     ("stale", "Stale data")]), ""]
        offline = dev[dev["connectivity"] == "offline"]
        if len(offline):
            parts += [f"Offline now: {', '.join(str(n) for n in offline['name'].head(20))}.", ""]
    n_dev, n_off = len(dev), int((dev["connectivity"] == "offline").sum()) if not dev.empty else 0

    alerts = call_tool(ctx, "list_alerts", {"site": args.site, "limit": 20} if args.site else {"limit": 20})
    parts += ["## Open alerts", ""]
    if alerts.status == "ok":
        parts += [_table(alerts.data, [("id", "#"), ("timestamp", "Raised"), ("severity", "Severity"), ("device", "Device"),
                                       ("title", "Title"), ("status", "Status")]), ""]
    else:
        parts += ["No open alerts.", ""]
    n_alerts = alerts.rows if alerts.status == "ok" else 0

    params: dict[str, Any] = {"start": ts_param(ctx.store, start), "end": ts_param(ctx.store, end)}
    scope_sql = scope.device_filter("a.device_id", params)
    anomaly_sql = (
        "SELECT d.name AS device, a.metric, a.kind, a.severity, a.score, a.start, a.explanation FROM ai_anomalies a "
        f"JOIN devices d ON d.id = a.device_id WHERE a.start >= :start AND a.start < :end AND {scope_sql} "
        "ORDER BY a.score DESC LIMIT 10"
    )
    anomalies = _section_rows(ctx, anomaly_sql, params, queries)
    if anomalies:
        for a in anomalies:
            a["score"], a["start"] = rnd(a["score"]), iso(a["start"])
        parts += ["## Top anomalies", "", _table(anomalies, [("device", "Device"), ("metric", "Metric"), ("kind", "Kind"),
                                                             ("severity", "Severity"), ("score", "Score"), ("start", "Start"),
                                                             ("explanation", "Why")]), ""]

    risk_sql = (
        "SELECT d.name AS device, p.p_fail_7d, p.p_fail_30d, p.rul_median_days, p.predicted_at FROM ai_predictions p "
        "JOIN devices d ON d.id = p.device_id WHERE p.predicted_at = (SELECT MAX(q.predicted_at) FROM ai_predictions q "
        f"WHERE q.device_id = p.device_id AND q.predicted_at < :end) AND {scope.device_filter('p.device_id', params)} "
        "ORDER BY p.p_fail_30d DESC LIMIT 10"
    )
    risks = _section_rows(ctx, risk_sql, params, queries)
    if risks:
        for r in risks:
            r["p_fail_7d"], r["p_fail_30d"], r["rul_median_days"] = rnd(r["p_fail_7d"]), rnd(r["p_fail_30d"]), rnd(r["rul_median_days"])
        parts += ["## Maintenance risk", "", _table(risks, [("device", "Device"), ("p_fail_7d", "P(fail 7 d)"),
                                                            ("p_fail_30d", "P(fail 30 d)"), ("rul_median_days", "Median RUL (days)")]), ""]

    parts += ["## Metrics", ""]
    bucket = "hour" if args.period == "daily" else "day"
    summary_rows, figures = [], []
    for metric in REPORT_METRICS:
        unit = metric_unit(metric)
        agg = "sum" if metric == "transaction_volume" else "avg"
        rows, sql = aggregate(ctx.store, metric, scope, start, end, agg)
        queries.append(sql)
        if not rows:
            continue
        peak, _ = aggregate(ctx.store, metric, scope, start, end, "max")
        summary_rows.append({"metric": metric, "agg": agg, "value": fmt(rows[0]["value"], unit),
                             "max": fmt(peak[0]["value"], unit), "samples": rows[0]["samples"]})
        if args.charts:
            series, _ = aggregate(ctx.store, metric, scope, start, end, agg, bucket=bucket)
            if len(series) >= 2:
                png = out_dir / f"{stamp}-{metric}.png"
                _chart(pd.DataFrame(series), f"{metric} ({agg} per {bucket})", unit, png)
                figures.append(f"![{metric}]({png.name})")
    if summary_rows:
        parts += [_table(summary_rows, [("metric", "Metric"), ("agg", "Aggregate"), ("value", "Value"), ("max", "Peak reading"),
                                        ("samples", "Readings")]), ""]
        parts += [*(f + "\n" for f in figures)]
    else:
        parts += ["No metric readings in this period.", ""]

    content = "\n".join(parts).rstrip() + "\n"
    md_path = out_dir / f"{stamp}.md"
    md_path.write_text(content, encoding="utf-8")
    with ctx.store.engine.begin() as conn:
        report_id = conn.execute(
            insert(AiReport).values(report_type=args.period, site_id=site_row["id"] if site_row else None, content=content,
                                    generated_at=now, mode="tool", period_start=start, period_end=end)
        ).inserted_primary_key[0]
    data = {"report_id": report_id, "path": str(md_path), "figures": [str(out_dir / f[f.index("(") + 1:-1]) for f in figures],
            "title": title, "devices": n_dev, "offline": n_off, "open_alerts": n_alerts, "anomalies": len(anomalies),
            "at_risk": len(risks), "markdown": content if len(content) <= 6000 else content[:6000] + "\n...(cut; see path)"}
    summary = (f"{title}: {n_dev} devices, {n_off} offline, {n_alerts} open alerts, {len(anomalies)} top anomalies, "
               f"{len(figures)} charts; saved to {md_path.name}.")
    return ToolResult(tool=tool, data=data, rows=1, query="; ".join(queries), summary=summary)
