"""Fleet status at a glance: what ``homepot-ai status`` prints and the agent can quote.

Every figure is one aggregate query over an indexed column, so the call stays well under a
second on a fleet of hundreds of devices and millions of metric rows:

* sites, devices by type and by ``health_state``: small tables, grouped in SQL;
* connectivity: ``devices.last_heartbeat_at`` against ``now`` (online under 120 s, SCHEMA.md);
* data range: ``MIN``/``MAX(timestamp)`` of ``device_metrics``, answered from the timestamp index;
* freshness per device: ``MAX(timestamp) GROUP BY device_id``, answered from the unique
  ``(device_id, timestamp)`` index (a skip-scan, never a read of the metric rows themselves);
* open alerts (status ``active`` or ``acknowledged``) by severity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import text

from tools.store.engine import Store

ONLINE_WITHIN = timedelta(seconds=120)
OPEN_ALERT_STATUSES = ("active", "acknowledged")


class FleetStatus(BaseModel):
    now: datetime
    database: str
    sites: int = 0
    sites_active: int = 0
    devices: int = 0
    devices_by_type: dict[str, int] = Field(default_factory=dict)
    health: dict[str, int] = Field(default_factory=dict)
    online: int = 0
    offline: int = 0  # heartbeat older than ONLINE_WITHIN
    never_seen: int = 0  # no heartbeat at all
    metric_rows: int | None = None  # only when cheap (PostgreSQL estimate / SQLite exact count)
    data_start: datetime | None = None
    data_end: datetime | None = None
    data_age_seconds: float | None = None  # now - newest metric
    stale_after_seconds: int = 900
    devices_with_data: int = 0
    devices_stale: int = 0  # newest metric older than stale_after_seconds
    devices_without_data: int = 0
    stale_devices: list[str] = Field(default_factory=list)  # public ids, the stalest first (capped)
    open_alerts: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0

    @property
    def open_alerts_total(self) -> int:
        return sum(self.open_alerts.values())


def fleet_status(store: Store, now: datetime, *, stale_after_s: int = 900, list_stale: int = 10) -> FleetStatus:
    """Aggregate the fleet's state as of ``now`` (naive UTC); each figure is one indexed query."""
    import time

    t0 = time.perf_counter()
    now = _naive(now)
    status = FleetStatus(now=now, database=store.url, stale_after_seconds=stale_after_s)
    with store.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT COUNT(*), SUM(CASE WHEN is_active THEN 1 ELSE 0 END) FROM sites")).one()
        status.sites, status.sites_active = int(row[0] or 0), int(row[1] or 0)
        by_type = conn.execute(text("SELECT device_type, COUNT(*) FROM devices GROUP BY device_type")).fetchall()
        status.devices_by_type = {str(t or "unknown"): int(n) for t, n in sorted(by_type, key=lambda r: -r[1])}
        status.devices = sum(status.devices_by_type.values())
        health = conn.execute(text("SELECT health_state, COUNT(*) FROM devices GROUP BY health_state")).fetchall()
        status.health = {str(h or "unknown"): int(n) for h, n in sorted(health, key=lambda r: -r[1])}

        beats = conn.execute(text("SELECT id, device_id, last_heartbeat_at FROM devices")).fetchall()
        public = {int(i): str(p) for i, p, _ in beats}
        cutoff = now - ONLINE_WITHIN
        for _, _, hb in beats:
            ts = _parse(hb)
            if ts is None:
                status.never_seen += 1
            elif ts >= cutoff:
                status.online += 1
            else:
                status.offline += 1

        lo = conn.execute(text("SELECT MIN(timestamp) FROM device_metrics")).scalar()
        hi = conn.execute(text("SELECT MAX(timestamp) FROM device_metrics")).scalar()
        status.data_start, status.data_end = _parse(lo), _parse(hi)
        if status.data_end is not None:
            status.data_age_seconds = (now - status.data_end).total_seconds()

        newest = conn.execute(text(_newest_per_device_sql(store))).fetchall()
        status.devices_with_data = len(newest)
        status.devices_without_data = max(status.devices - len(newest), 0)
        stale_cut = now - timedelta(seconds=stale_after_s)
        stale = sorted(
            ((ts, public.get(int(d), str(d))) for d, raw in newest if (ts := _parse(raw)) is not None and ts < stale_cut),
            key=lambda x: x[0],
        )
        status.devices_stale = len(stale)
        status.stale_devices = [p for _, p in stale[:list_stale]]
        status.metric_rows = _metric_rows(conn, store)

        alerts = conn.execute(
            text("SELECT severity, COUNT(*) FROM alerts WHERE status IN ('active', 'acknowledged') GROUP BY severity")
        ).fetchall()
        order = {s: i for i, s in enumerate(("critical", "high", "medium", "low", "info"))}
        status.open_alerts = {str(s): int(n) for s, n in sorted(alerts, key=lambda r: order.get(r[0], 99))}
    status.seconds = time.perf_counter() - t0
    return status


def _newest_per_device_sql(store: Store) -> str:
    """Newest metric timestamp per device without reading metric rows.

    A correlated ``MAX`` with the device fixed is one probe of the (device_id, timestamp) index
    on both backends; a plain ``GROUP BY`` would walk every index entry.
    """
    return (
        "SELECT id, newest FROM (SELECT d.id AS id, (SELECT MAX(m.timestamp) FROM device_metrics m "
        "WHERE m.device_id = d.id) AS newest FROM devices d) s WHERE newest IS NOT NULL"
    )


def _metric_rows(conn, store: Store) -> int | None:
    """Row count of device_metrics when cheap: PostgreSQL's planner estimate, SQLite's max(id)."""
    try:
        if store.is_postgres:
            n = conn.execute(text(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('device_metrics')")).scalar()
            return int(n) if n is not None and n >= 0 else None
        # id is an integer primary key (rowid alias): MAX is one b-tree probe; rows are never deleted.
        n = conn.execute(text("SELECT MAX(id) FROM device_metrics")).scalar()
        return int(n or 0)
    except Exception:  # a read-only HOMEPOT source may hide the catalog
        return None


def _naive(ts: datetime) -> datetime:
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t.to_pydatetime()


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    t = pd.Timestamp(value) if not isinstance(value, str) else pd.to_datetime(value, format="ISO8601", utc=True)
    if t is pd.NaT:
        return None
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t.to_pydatetime()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 0:
        return f"{-seconds:.0f} s in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def render_status(s: FleetStatus) -> str:
    """Plain-text rendering for the CLI: a few aligned lines, most important first."""
    def fmt(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

    lines = [
        f"Store        {s.database}",
        f"Sites        {s.sites} ({s.sites_active} active)",
        f"Devices      {s.devices}: {fmt(s.devices_by_type)}",
        f"Health       {fmt(s.health)}",
        f"Connectivity {s.online} online, {s.offline} offline, {s.never_seen} never seen (heartbeat < 120 s = online)",
    ]
    if s.data_end is None:
        lines.append("Metrics      none yet: run `homepot-ai simulate` or `homepot-ai import FILE`")
    else:
        rows = f"{s.metric_rows:,} rows, " if s.metric_rows is not None else ""
        lines.append(f"Metrics      {rows}{s.data_start:%Y-%m-%d %H:%M} -> {s.data_end:%Y-%m-%d %H:%M} UTC "
                     f"(newest {_age(s.data_age_seconds)})")
        stale = f"{s.devices_stale} stale (no metric for {s.stale_after_seconds // 60} min)"
        if s.stale_devices:
            stale += ": " + ", ".join(s.stale_devices[:5]) + (" ..." if s.devices_stale > 5 else "")
        lines.append(f"Freshness    {s.devices_with_data} devices with data, {stale}, {s.devices_without_data} without data")
    total = s.open_alerts_total
    lines.append(f"Open alerts  {total}" + (f": {fmt(s.open_alerts)}" if total else ""))
    lines.append(f"As of        {s.now:%Y-%m-%d %H:%M:%S} UTC ({s.seconds * 1000:.0f} ms)")
    return "\n".join(lines)
