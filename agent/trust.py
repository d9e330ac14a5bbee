"""The trust line under every answer: how fresh the data is, and whose data is missing or stale.

HOMEPOT gates its own decisions on data validity; an assistant answering "CPU is fine" from
data that stopped arriving two hours ago must say so. One grouped query (``MAX(timestamp)`` per
device, served by the ``(device_id, timestamp)`` unique index) gives both the fleet's newest
reading and the devices with none recent enough (``HOMEPOT_AI_STALE_AFTER_S``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text

from tools.config import Settings
from tools.store.engine import Store

_SQL = text(
    """
    SELECT d.name AS name, MAX(m.timestamp) AS newest
    FROM devices d LEFT JOIN device_metrics m ON m.device_id = d.id
    WHERE COALESCE(d.lifecycle_state, 'active') NOT IN ('decommissioned', 'retired')
    GROUP BY d.id, d.name
    """
)


@dataclass
class Freshness:
    """The freshness facts behind the trust line (also useful to Chainlit/Slack renderers)."""

    devices: int = 0
    newest: datetime | None = None
    age_s: float | None = None
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def _parse(ts: object) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return ts.replace(tzinfo=None)
    try:
        return datetime.fromisoformat(str(ts)).replace(tzinfo=None)
    except ValueError:
        return None


def freshness(store: Store, settings: Settings) -> Freshness:
    """Per-device newest reading, reduced to the fleet's freshness facts."""
    now = settings.now()
    stale_after = float(settings.get("HOMEPOT_AI_STALE_AFTER_S"))
    with store.engine.connect() as conn:
        rows = conn.execute(_SQL).all()
    out = Freshness(devices=len(rows))
    for name, newest in rows:
        ts = _parse(newest)
        if ts is None:
            out.missing.append(name)
            continue
        if out.newest is None or ts > out.newest:
            out.newest = ts
        if (now - ts).total_seconds() > stale_after:
            out.stale.append(name)
    if out.newest is not None:
        out.age_s = max(0.0, (now - out.newest).total_seconds())
    return out


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)}s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _names(names: list[str], cap: int) -> str:
    shown = ", ".join(sorted(names)[:cap])
    return shown + (f" and {len(names) - cap} more" if len(names) > cap else "")


def trust_line(store: Store, settings: Settings, *, cap: int = 3) -> str:
    """One line, e.g. ``Data: newest reading 2 min old; stale: pos-7, pos-9; missing: kiosk-3``."""
    try:
        f = freshness(store, settings)
    except Exception as exc:  # the line must never break an answer
        return f"Data: freshness unknown ({type(exc).__name__})."
    if f.devices == 0:
        return "Data: the store has no devices yet (run `homepot-ai simulate` or `homepot-ai import`)."
    if f.newest is None:
        return f"Data: no metrics recorded for any of the {f.devices} devices."
    parts = [f"Data: newest reading {_age(f.age_s or 0.0)} old"]
    if f.stale and len(f.stale) == f.devices:
        parts.append(f"all {f.devices} devices stale")
    elif f.stale:
        parts.append(f"stale: {_names(f.stale, cap)}")
    if f.missing:
        parts.append(f"no data: {_names(f.missing, cap)}")
    if not f.stale and not f.missing:
        parts.append(f"all {f.devices} devices reporting")
    return "; ".join(parts) + "."


__all__ = ["Freshness", "freshness", "trust_line"]
