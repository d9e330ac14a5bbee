"""One definition of "online", "offline" and "stale", shared by every part that counts them.

SCHEMA.md: a device is online while its last heartbeat is at most 120 s old (``ONLINE_WITHIN_S``);
otherwise, or when it never sent one, it is offline. Separately, its *data* is stale when its
newest metric is older than ``HOMEPOT_AI_STALE_AFTER_S`` or it never reported. The fleet tools,
the per-turn fleet context (memory.context) and the trust line (agent.trust) all classify with
these functions, so "how many devices are offline?" gets one answer everywhere.

Plain Python, no pandas: the fleet context and trust line are built every turn and must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text

from tools.store.engine import Store

#: A device whose last heartbeat is at most this old is online (SCHEMA.md).
ONLINE_WITHIN_S = 120


def parse_ts(value: Any) -> datetime | None:
    """A stored timestamp (datetime or ISO text, naive or aware) as naive UTC; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def is_online(heartbeat_age_s: float | None) -> bool:
    """Online while the last heartbeat is at most ``ONLINE_WITHIN_S`` old; never seen = offline."""
    return heartbeat_age_s is not None and heartbeat_age_s == heartbeat_age_s and heartbeat_age_s <= ONLINE_WITHIN_S


def connectivity(heartbeat_age_s: float | None) -> str:
    """``"online"`` or ``"offline"`` for the age in seconds of a device's last heartbeat."""
    return "online" if is_online(heartbeat_age_s) else "offline"


def format_age(seconds: float | None) -> str:
    """An age in words people use on call: "45 s", "12 min", "3 h", "2 days" ("never" when unknown).

    Whole units only, so the figure a user reads is the figure every surface shows.
    """
    if seconds is None or seconds != seconds:
        return "never"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def is_stale(metric_age_s: float | None, stale_after_s: float) -> bool:
    """Data is stale when the newest metric is older than ``stale_after_s`` or there is none."""
    return metric_age_s is None or metric_age_s != metric_age_s or metric_age_s > stale_after_s


@dataclass(frozen=True)
class Liveness:
    """One device's heartbeat and data freshness as of ``now``."""

    name: str
    device_id: str
    device_type: str | None
    health_state: str | None
    heartbeat_age_s: float | None
    newest_metric: datetime | None
    metric_age_s: float | None
    online: bool
    stale: bool

    @property
    def connectivity(self) -> str:
        return "online" if self.online else "offline"


_LIVENESS_SQL = (
    "SELECT d.name, d.device_id, d.device_type, d.health_state, d.last_heartbeat_at, "
    "(SELECT MAX(m.timestamp) FROM device_metrics m WHERE m.device_id = d.id AND m.timestamp <= :now) AS newest "
    "FROM devices d ORDER BY d.name, d.id"
)


def fleet_liveness(store: Store, now: datetime, stale_after_s: float) -> list[Liveness]:
    """Every device's liveness (the same set the fleet tools count) in one query (a correlated MAX per device on the unique
    (device_id, timestamp) index, never a scan of ``device_metrics``)."""
    with store.engine.connect() as conn:
        bound = now.strftime("%Y-%m-%d %H:%M:%S.%f") if store.is_sqlite else now  # SQLite stores text
        rows = conn.execute(text(_LIVENESS_SQL), {"now": bound}).all()
    out = []
    for name, public_id, dtype, health, heartbeat, newest in rows:
        hb, lm = parse_ts(heartbeat), parse_ts(newest)
        hb_age = None if hb is None else (now - hb).total_seconds()
        lm_age = None if lm is None else (now - lm).total_seconds()
        out.append(Liveness(str(name), str(public_id), dtype, health, hb_age, lm, lm_age,
                            is_online(hb_age), is_stale(lm_age, stale_after_s)))
    return out


__all__ = ["ONLINE_WITHIN_S", "Liveness", "connectivity", "fleet_liveness", "is_online", "is_stale", "parse_ts"]
