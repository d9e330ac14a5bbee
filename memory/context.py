"""The fleet context: a compact live snapshot of the fleet, built fresh for every turn.

It gives the model its bearings before it calls any tool ("200 devices, 6 offline, 2 critical
alerts open, newest data 40 s old"), so it can spot that a question is about a fleet with no
fresh data, and so the trust line has something to say. It is plain SQL on the store, one
round trip per part, and stays well under 50 ms on a 200-device fleet: the newest metric per
device is one index seek per device (a correlated ``MAX`` on the unique (device_id, timestamp)
index), never a scan of ``device_metrics``.

Connectivity is the one rule of ``tools.connectivity`` (SCHEMA.md): online while the last
heartbeat is at most 120 s old, else offline; the fleet tools and the trust line use the same
functions, so the counts never disagree. Data freshness is separate: a device's data is stale
when its newest metric is older than ``HOMEPOT_AI_STALE_AFTER_S`` (default 900 s) or it never
reported. ``devices.status`` is not used: HOMEPOT does not keep it reliably.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from tools.connectivity import format_age
from tools.store.engine import Store

OPEN_ALERT_STATUSES = ("active", "acknowledged")
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def connectivity(heartbeat_age_s: float | None) -> str:
    """``online`` / ``offline`` for the age in seconds of a device's last heartbeat (shared rule)."""
    from tools.connectivity import connectivity as shared

    return shared(heartbeat_age_s)


@dataclass
class FleetContext:
    """The snapshot; ``to_text()`` is what goes into the system prompt."""

    now: datetime
    devices: int = 0
    sites: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    connectivity: dict[str, int] = field(default_factory=dict)  # online / offline by heartbeat
    stale: int = 0  # devices whose newest metric is older than the stale setting, or missing
    health: dict[str, int] = field(default_factory=dict)
    open_alerts: dict[str, int] = field(default_factory=dict)
    newest_metric: datetime | None = None
    anomalies_24h: int | None = None
    stale_devices: list[str] = field(default_factory=list)
    build_ms: float = 0.0

    @property
    def freshness_s(self) -> float | None:
        if self.newest_metric is None:
            return None
        return max(0.0, (self.now - self.newest_metric).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["now"] = self.now.isoformat(timespec="seconds")
        out["newest_metric"] = self.newest_metric.isoformat(timespec="seconds") if self.newest_metric else None
        out["freshness_s"] = self.freshness_s
        return out

    def to_text(self) -> str:
        """A few short lines for the model; every number here is a fact it may quote."""
        if self.devices == 0:
            return f"As of {self.now:%Y-%m-%d %H:%M} UTC the store holds no devices yet."
        types = ", ".join(f"{n} {t}" for t, n in sorted(self.by_type.items(), key=lambda kv: -kv[1]))
        conn = ", ".join(f"{self.connectivity.get(k, 0)} {k}" for k in ("online", "offline"))
        lines = [
            f"As of {self.now:%Y-%m-%d %H:%M} UTC: {self.devices} devices at {self.sites} sites ({types}).",
            f"Connectivity by heartbeat: {conn}; {self.stale} with stale or missing data.",
        ]
        if self.open_alerts:
            sev = ", ".join(f"{self.open_alerts[s]} {s}" for s in SEVERITY_ORDER if self.open_alerts.get(s))
            others = {k: v for k, v in self.open_alerts.items() if k not in SEVERITY_ORDER}
            sev += "".join(f", {v} {k}" for k, v in others.items())
            lines.append(f"Open alerts: {sum(self.open_alerts.values())} ({sev}).")
        else:
            lines.append("Open alerts: none.")
        if self.anomalies_24h is not None:
            lines.append(f"Anomalies detected in the last 24 h: {self.anomalies_24h}.")
        if self.stale_devices:
            more = self.stale - len(self.stale_devices)
            lines.append("Longest silent: " + ", ".join(self.stale_devices) + (f" (+{more} more)." if more > 0 else "."))
        fresh = self.freshness_s
        if fresh is None:
            lines.append("No metrics have been received yet.")
        else:
            lines.append(f"Newest metric: {self.newest_metric:%Y-%m-%d %H:%M:%S} UTC ({format_age(fresh)} old).")
        return "\n".join(lines)


def build_fleet_context(store: Store, settings: Any, *, now: datetime | None = None,
                        list_stale: int = 5) -> FleetContext:
    """Build the snapshot from the store (read-only SQL; works on SQLite and PostgreSQL)."""
    started = time.perf_counter()
    now = now or settings.now()
    stale_after = float(settings.get("HOMEPOT_AI_STALE_AFTER_S"))
    ctx = FleetContext(now=now)
    from tools.connectivity import fleet_liveness

    devices = fleet_liveness(store, now, stale_after)
    with store.engine.connect() as conn:
        ctx.sites = int(conn.execute(text(
            "SELECT COUNT(*) FROM sites WHERE is_active IS NULL OR is_active = :yes"), {"yes": True}).scalar() or 0)
        statuses = ", ".join(f"'{s}'" for s in OPEN_ALERT_STATUSES)
        for severity, n in conn.execute(text(
            f"SELECT LOWER(severity), COUNT(*) FROM alerts WHERE status IN ({statuses}) GROUP BY LOWER(severity)"
        )):
            ctx.open_alerts[str(severity or "unknown")] = int(n)
        try:
            ctx.anomalies_24h = int(conn.execute(text(
                "SELECT COUNT(*) FROM ai_anomalies WHERE start >= :since"),
                {"since": now - timedelta(days=1)}).scalar() or 0)
        except Exception:  # a read-only HOMEPOT database without our ai_* tables
            ctx.anomalies_24h = None
    ctx.devices = len(devices)
    stale: list[tuple[float, str]] = []
    for d in devices:
        ctx.by_type[d.device_type or "unknown"] = ctx.by_type.get(d.device_type or "unknown", 0) + 1
        ctx.health[d.health_state or "unknown"] = ctx.health.get(d.health_state or "unknown", 0) + 1
        if d.newest_metric is not None and (ctx.newest_metric is None or d.newest_metric > ctx.newest_metric):
            ctx.newest_metric = d.newest_metric
        ctx.connectivity[d.connectivity] = ctx.connectivity.get(d.connectivity, 0) + 1
        if d.stale:
            stale.append((float("inf") if d.metric_age_s is None else d.metric_age_s, d.name))
    ctx.stale = len(stale)
    ctx.stale_devices = [name for _, name in sorted(stale, reverse=True)[:list_stale]]
    ctx.build_ms = (time.perf_counter() - started) * 1000
    return ctx
