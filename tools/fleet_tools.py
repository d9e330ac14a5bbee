"""Fleet tools: the state of the fleet now (fleet_overview) and devices by filter (list_devices).

Connectivity is derived, never read from ``devices.status`` (unreliable in HOMEPOT): a device is
online when its last heartbeat is at most 120 s older than the agent's clock. Data freshness is
each device's newest metric, found with one index seek per device (a correlated ``MAX``), and a
device is stale when that is older than HOMEPOT_AI_STALE_AFTER_S or it has never reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from tools.connectivity import ONLINE_WITHIN_S, format_age
from tools.metric_tools import iso, ts_param
from tools.registry import ToolContext, register
from tools.results import ToolResult
from tools.scopes import friendly_errors, DEVICE_TYPE_LABELS, ScopeNotFound, resolve_device_type, resolve_site, scoped_text
from tools.store.engine import Store
from tools.store.schema import ALERT_SEVERITIES

OPEN_ALERT_STATUSES = ("active", "acknowledged")
MAX_LISTED = 200


def _query(store: Store, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    params = params or {}
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(scoped_text(sql, params), params)]


def device_status_frame(store: Store, now: datetime, stale_after_s: float) -> tuple[pd.DataFrame, str]:
    """Every device with site, health, connectivity, heartbeat age, newest metric and staleness.

    Returns the frame and the SQL that ran. Columns: id, device_id, name, device_type,
    health_state, firmware_version, site_id, site, last_heartbeat_at, heartbeat_age_s,
    connectivity (online|offline), last_metric_at, stale (bool).
    """
    sql = (
        "SELECT d.id, d.device_id, d.name, d.device_type, d.health_state, d.firmware_version, "
        "s.site_id AS site_id, s.name AS site, d.last_heartbeat_at, "
        "(SELECT MAX(m.timestamp) FROM device_metrics m WHERE m.device_id = d.id AND m.timestamp <= :now) AS last_metric_at "
        "FROM devices d LEFT JOIN sites s ON s.id = d.site_id ORDER BY d.name, d.id"
    )
    params = {"now": ts_param(store, now)}
    df = pd.DataFrame(_query(store, sql, params))
    shown = sql.replace(":now", repr(now.strftime("%Y-%m-%d %H:%M:%S")))
    if df.empty:
        return df, shown
    now_ts = pd.Timestamp(now)
    hb = pd.to_datetime(df["last_heartbeat_at"], utc=True, format="ISO8601", errors="coerce").dt.tz_localize(None)
    lm = pd.to_datetime(df["last_metric_at"], utc=True, format="ISO8601", errors="coerce").dt.tz_localize(None)
    df["heartbeat_age_s"] = (now_ts - hb).dt.total_seconds()
    df["connectivity"] = (df["heartbeat_age_s"] <= ONLINE_WITHIN_S).map({True: "online", False: "offline"})  # = connectivity.is_online
    df["stale"] = lm.isna() | ((now_ts - lm).dt.total_seconds() > stale_after_s)
    df["last_heartbeat_at"] = hb.map(iso)
    df["last_metric_at"] = lm.map(iso)
    return df, shown


class FleetOverviewArgs(BaseModel):
    max_listed: int = Field(default=20, ge=1, le=MAX_LISTED, description="Most offline/stale devices to list by name.")


@register(group="fleet")
def fleet_overview(ctx: ToolContext, args: FleetOverviewArgs) -> ToolResult:
    """The state of the whole fleet right now: device counts, health, connectivity, alerts, data freshness.

    Use it first for broad questions. Gives devices by type and by health_state, how many are
    online (heartbeat within 120 s) or offline with the offline devices' names, open alerts
    (active or acknowledged) by severity, the newest metric timestamp and the devices whose data
    is stale (older than HOMEPOT_AI_STALE_AFTER_S seconds, 900 by default), and the site count.
    Examples: "how many devices are offline?", "give me a fleet status".
    """
    tool = "fleet_overview"
    now = ctx.now()
    stale_after = float(ctx.settings.get("HOMEPOT_AI_STALE_AFTER_S"))
    df, sql = device_status_frame(ctx.store, now, stale_after)
    sites = _query(ctx.store, "SELECT COUNT(*) AS n FROM sites")[0]["n"]
    alert_sql = (
        "SELECT severity, status, COUNT(*) AS n FROM alerts WHERE status IN ('active', 'acknowledged') "
        "GROUP BY severity, status"
    )
    alert_rows = _query(ctx.store, alert_sql)
    if df.empty:
        return ToolResult.empty(tool, f"No devices are stored yet ({int(sites)} sites); load or simulate a fleet first.")
    by_sev = {s: 0 for s in ALERT_SEVERITIES}
    by_status = {s: 0 for s in OPEN_ALERT_STATUSES}
    for r in alert_rows:
        by_sev[r["severity"]] = by_sev.get(r["severity"], 0) + int(r["n"])
        by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["n"])
    offline = df[df["connectivity"] == "offline"].sort_values("heartbeat_age_s", na_position="first")
    stale = df[df["stale"]].sort_values("last_metric_at", na_position="first")
    cap = args.max_listed
    newest = df["last_metric_at"].dropna().max() if df["last_metric_at"].notna().any() else None
    data = {
        "now": iso(now),
        "devices": int(len(df)),
        "sites": int(sites),
        "by_type": {k: int(v) for k, v in df["device_type"].value_counts().sort_index().items()},
        "by_health": {k: int(v) for k, v in df["health_state"].fillna("unknown").value_counts().sort_index().items()},
        "online": int((df["connectivity"] == "online").sum()),
        "offline": int(len(offline)),
        "offline_devices": [
            {"device_id": r.device_id, "name": r.name, "site": r.site, "last_heartbeat": _ago(r.heartbeat_age_s)}
            for r in offline.head(cap).itertuples()
        ],
        "open_alerts": int(sum(by_sev.values())),
        "open_alerts_by_severity": {k: v for k, v in by_sev.items() if v},
        "open_alerts_by_status": by_status,
        "newest_metric_at": newest,
        "stale_after_s": int(stale_after),
        "stale": int(len(stale)),
        "stale_devices": [
            {"device_id": r.device_id, "name": r.name, "last_metric_at": r.last_metric_at} for r in stale.head(cap).itertuples()
        ],
    }
    truncated = len(offline) > cap or len(stale) > cap
    sev_text = ", ".join(f"{v} {k}" for k, v in data["open_alerts_by_severity"].items()) or "none"
    offline_names = ", ".join(str(d["name"]) for d in data["offline_devices"][:5])
    more = " ..." if data["offline"] > 5 else ""
    offline_text = f" ({offline_names}{more})" if data["offline"] else ""
    summary = (
        f"{data['devices']} devices at {data['sites']} sites: {data['online']} online, {data['offline']} offline"
        f"{offline_text}; "
        f"{data['open_alerts']} open alerts ({sev_text}); {data['stale']} devices with stale or missing data; "
        f"newest metric at {newest or 'never'}."
    )
    query = f"{sql}; {alert_sql}; SELECT COUNT(*) FROM sites"
    return ToolResult(tool=tool, data=data, rows=int(len(df)), truncated=truncated, query=query, summary=summary)


class ListDevicesArgs(BaseModel):
    connectivity: Literal["any", "online", "offline", "stale"] = Field(
        default="any", description="online/offline by heartbeat (120 s); stale = newest metric older than the stale setting."
    )
    health_state: Literal["any", "healthy", "warning", "error", "maintenance", "unknown"] = Field(
        default="any", description="Filter by the device's health_state."
    )
    device_type: str | None = Field(
        default=None, description="Device type or word for it: pos_terminal ('POS', 'tills'), iot_sensor ('sensors'), industrial_controller, gateway."
    )
    site: str | None = Field(default=None, description="Site name (partial is fine) or SITE- id.")
    name_contains: str | None = Field(default=None, description="Only devices whose name contains this text (case-insensitive).")
    limit: int = Field(default=50, ge=1, le=MAX_LISTED, description="Most devices to return.")


@register(group="fleet")
@friendly_errors
def list_devices(ctx: ToolContext, args: ListDevicesArgs) -> ToolResult:
    """List devices with their site, type, health, connectivity and data freshness, filtered.

    Use it to name the devices behind a count: which are offline, which are in error, which
    tills are at a site. Connectivity is derived from the heartbeat (online within 120 s).
    Default: every device, 50 at most, sorted by name. Examples: "which devices are offline at
    Camden?" -> connectivity=offline, site=Camden; "list the sensors in error" ->
    device_type=sensors, health_state=error.
    """
    tool = "list_devices"
    now = ctx.now()
    df, sql = device_status_frame(ctx.store, now, float(ctx.settings.get("HOMEPOT_AI_STALE_AFTER_S")))
    searched = []
    if not df.empty:
        if args.site:
            site = resolve_site(ctx.store, args.site)
            df = df[df["site_id"] == site["site_id"]]
            searched.append(f"site {site['name']}")
        if args.device_type:
            dtype = resolve_device_type(args.device_type)
            if dtype is None:
                raise ScopeNotFound(f"{args.device_type!r} is not a device type; use one of: {', '.join(DEVICE_TYPE_LABELS)}.")
            df = df[df["device_type"] == dtype]
            searched.append(DEVICE_TYPE_LABELS[dtype])
        if args.health_state != "any":
            df = df[df["health_state"] == args.health_state]
            searched.append(f"health {args.health_state}")
        if args.connectivity == "stale":
            df = df[df["stale"]]
            searched.append("stale data")
        elif args.connectivity != "any":
            df = df[df["connectivity"] == args.connectivity]
            searched.append(args.connectivity)
        if args.name_contains:
            df = df[df["name"].fillna("").str.lower().str.contains(args.name_contains.lower(), regex=False)]
            searched.append(f"name containing {args.name_contains!r}")
    what = ", ".join(searched) or "no filters"
    if df.empty:
        return ToolResult(status="no_data", tool=tool, query=sql, summary=f"No devices match ({what}).")
    total = len(df)
    out = df.head(args.limit)
    cols = ["device_id", "name", "device_type", "site", "health_state", "connectivity", "last_heartbeat_at",
            "last_metric_at", "stale", "firmware_version"]
    data = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in out[cols].to_dict("records")]
    for row, age in zip(data, out["heartbeat_age_s"].tolist()):
        row["last_heartbeat"] = _ago(age)
        row["stale"] = bool(row["stale"])
    names = ", ".join(str(r["name"]) for r in data[:5])
    summary = f"{total} device{'s match' if total != 1 else ' matches'} ({what}): {names}{' ...' if total > 5 else ''}."
    return ToolResult(tool=tool, data=data, rows=len(data), truncated=total > len(data), query=sql, summary=summary)


def _ago(seconds: float | None) -> str:
    text = format_age(seconds)
    return text if text == "never" else f"{text} ago"
