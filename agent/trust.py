"""The trust line under every answer: how fresh the data is, which devices are offline, whose data is stale.

HOMEPOT gates its own decisions on data validity; an assistant answering "CPU is fine" from
data that stopped arriving two hours ago must say so. The facts come from
``tools.connectivity.fleet_liveness``, the same rule the fleet tools and the fleet context use
(online = heartbeat at most 120 s old; stale = newest metric older than HOMEPOT_AI_STALE_AFTER_S),
so the trust line never disagrees with "how many devices are offline?".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tools.config import Settings
from tools.connectivity import fleet_liveness, format_age
from tools.store.engine import Store


@dataclass
class Freshness:
    """The freshness facts behind the trust line (also useful to Chainlit/Slack renderers)."""

    devices: int = 0
    newest: datetime | None = None
    age_s: float | None = None
    missing: list[str] = field(default_factory=list)  # never reported a metric
    stale: list[str] = field(default_factory=list)  # newest metric older than the stale setting
    offline: list[str] = field(default_factory=list)  # heartbeat older than 120 s (or none)


def freshness(store: Store, settings: Settings) -> Freshness:
    """Per-device liveness, reduced to the fleet's freshness facts."""
    now = settings.now()
    devices = fleet_liveness(store, now, float(settings.get("HOMEPOT_AI_STALE_AFTER_S")))
    out = Freshness(devices=len(devices))
    for d in devices:
        if not d.online:
            out.offline.append(d.name)
        if d.newest_metric is None:
            out.missing.append(d.name)
            continue
        if out.newest is None or d.newest_metric > out.newest:
            out.newest = d.newest_metric
        if d.stale:
            out.stale.append(d.name)
    if out.newest is not None:
        out.age_s = max(0.0, (now - out.newest).total_seconds())
    return out


def _names(names: list[str], cap: int) -> str:
    shown = ", ".join(sorted(names)[:cap])
    return shown + (f" and {len(names) - cap} more" if len(names) > cap else "")


def trust_line(store: Store, settings: Settings, *, cap: int = 3) -> str:
    """One line, e.g. ``Data: newest reading 2 min old; 1 offline (pos-7); stale data: pos-7, pos-9; no data: kiosk-3``."""
    try:
        f = freshness(store, settings)
    except Exception as exc:  # the line must never break an answer
        return f"Data: freshness unknown ({type(exc).__name__})."
    if f.devices == 0:
        return "Data: the store has no devices yet (run `homepot-ai simulate` or `homepot-ai import`)."
    if f.newest is None:
        return f"Data: no metrics recorded for any of the {f.devices} devices."
    parts = [f"Data: newest reading {format_age(f.age_s or 0.0)} old"]
    if f.offline:
        parts.append(f"{len(f.offline)} offline ({_names(f.offline, cap)})")
    if f.stale and len(f.stale) == f.devices:
        parts.append(f"all {f.devices} devices stale")
    elif f.stale:
        parts.append(f"stale data: {_names(f.stale, cap)}")
    if f.missing:
        parts.append(f"no data: {_names(f.missing, cap)}")
    if not f.stale and not f.missing:
        parts.append(f"all {f.devices} devices reporting")
    return "; ".join(parts) + "."


__all__ = ["Freshness", "freshness", "trust_line"]
