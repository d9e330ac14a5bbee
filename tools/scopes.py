"""Who a question is about: fleet, site, device type or device, resolved from loose words.

Users and models name things loosely: "camden" for "Camden High St", "tills" for POS terminals,
"temp" for ``temperature_celsius``. This module turns those words into exact database keys, or
fails with ``ScopeNotFound`` / ``MetricNotFound`` whose one-sentence message lists the closest
real names, so the model (or the offline parser) can correct itself instead of guessing.

Matching order, strictest first: public id (``SITE-...``/``DEVICE-...``) or integer key, exact
name, every query word found in the name, then difflib similarity. Several equally good
matches is an ambiguity, which is reported rather than silently resolved.

``ScopeArgs`` is the pydantic mixin tools inherit so that their schemas stay flat.
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, get_args

from pydantic import BaseModel, Field
from sqlalchemy import bindparam, text

from tools.store.engine import Store
from tools.store.schema import DEVICE_TYPES, NAMED_METRICS

Scope = Literal["fleet", "site", "device_type", "device"]
SCOPES: tuple[str, ...] = get_args(Scope)


class ScopeNotFound(ValueError):
    """No (or no single) site/device/type matches; ``suggestions`` holds the closest names."""

    def __init__(self, message: str, suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions)


class MetricNotFound(ValueError):
    """No metric matches the words; ``suggestions`` holds the closest metric names."""

    def __init__(self, message: str, suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions)


class ScopeArgs(BaseModel):
    """Scope arguments every scoped tool accepts (a mixin: the schema stays flat)."""

    scope: Scope = Field(
        default="fleet",
        description="What to look at: the whole fleet, one site, one device type, or one device.",
    )
    target: str | None = Field(
        default=None,
        description=(
            "Which site/device/device type when scope is not 'fleet': a name (partial is fine, e.g. "
            "'camden'), a SITE-/DEVICE- id, or a device type ('pos_terminal', 'tills', 'sensors')."
        ),
    )


@dataclass(frozen=True)
class ResolvedScope:
    """A scope resolved to database keys. ``device_ids`` are ``devices.id`` integers."""

    label: str
    device_ids: list[int]
    site_ids: list[int]
    kind: str
    device_type: str | None = None
    public_ids: list[str] = field(default_factory=list)

    @property
    def is_fleet(self) -> bool:
        return self.kind == "fleet"

    def device_filter(self, column: str, params: dict[str, Any], name: str = "scope_ids") -> str:
        """A SQL condition restricting ``column`` (a devices.id column) to this scope.

        The fleet needs no filter (``"1=1"``); otherwise an expanding ``IN`` parameter is added to
        ``params``; bind it with :func:`scoped_text`.
        """
        if self.is_fleet:
            return "1=1"
        params[name] = list(self.device_ids) or [-1]
        return f"{column} IN :{name}"


def scoped_text(sql: str, params: dict[str, Any]):
    """``sqlalchemy.text`` with every list parameter bound as an expanding IN list."""
    stmt = text(sql)
    expanding = [bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, (list, tuple))]
    return stmt.bindparams(*expanding) if expanding else stmt


# --------------------------------------------------------------------------- normalising and matching


def normalise(value: str) -> str:
    """Lower case, punctuation and underscores to single spaces: 'Camden-High_St.' -> 'camden high st'."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", value.lower()).split())


def _words_match(query: str, candidate: str) -> bool:
    """Every query word starts some candidate word ("camden hi" matches "camden high st")."""
    cwords = candidate.split()
    return all(any(c.startswith(q) for c in cwords) for q in query.split())


def match_names(query: str, names: Iterable[str], *, cutoff: float = 0.72) -> list[str]:
    """Names matching ``query``, best first: exact, word-prefix/substring, then fuzzy (difflib)."""
    names = list(dict.fromkeys(n for n in names if n))
    q = normalise(query)
    if not q:
        return []
    norm = {n: normalise(n) for n in names}
    exact = [n for n in names if norm[n] == q]
    if exact:
        return exact
    partial = [n for n in names if _words_match(q, norm[n]) or (len(q) >= 4 and q in norm[n].replace(" ", ""))]
    if partial:
        return sorted(partial, key=lambda n: (len(norm[n]), n))
    scored = []
    for n in names:
        ratio = difflib.SequenceMatcher(None, q, norm[n]).ratio()
        # also compare against the name's leading words of the query's length ("camdn" vs "camden high st")
        head = " ".join(norm[n].split()[: max(1, len(q.split()))])
        ratio = max(ratio, difflib.SequenceMatcher(None, q, head).ratio())
        if ratio >= cutoff:
            scored.append((ratio, n))
    scored.sort(key=lambda t: (-t[0], t[1]))
    if len(scored) > 1 and scored[0][0] - scored[1][0] >= 0.08:
        return [scored[0][1]]
    return [n for _, n in scored]


def close_names(query: str, names: Iterable[str], n: int = 5) -> list[str]:
    """The ``n`` names most similar to ``query`` (for 'did you mean' messages)."""
    names = list(dict.fromkeys(x for x in names if x))
    q = normalise(query)
    ranked = sorted(names, key=lambda x: -difflib.SequenceMatcher(None, q, normalise(x)).ratio())
    return ranked[:n]


# --------------------------------------------------------------------------- device types

#: Words people use for device types -> the stored ``device_type``.
DEVICE_TYPE_SYNONYMS: dict[str, str] = {
    "pos": "pos_terminal",
    "pos terminal": "pos_terminal",
    "pos terminals": "pos_terminal",
    "pos_terminal": "pos_terminal",
    "point of sale": "pos_terminal",
    "till": "pos_terminal",
    "tills": "pos_terminal",
    "terminal": "pos_terminal",
    "terminals": "pos_terminal",
    "card reader": "pos_terminal",
    "card readers": "pos_terminal",
    "checkout": "pos_terminal",
    "checkouts": "pos_terminal",
    "register": "pos_terminal",
    "registers": "pos_terminal",
    "sensor": "iot_sensor",
    "sensors": "iot_sensor",
    "iot": "iot_sensor",
    "iot sensor": "iot_sensor",
    "iot sensors": "iot_sensor",
    "iot_sensor": "iot_sensor",
    "fridge sensor": "iot_sensor",
    "fridge sensors": "iot_sensor",
    "temperature sensor": "iot_sensor",
    "temperature sensors": "iot_sensor",
    "controller": "industrial_controller",
    "controllers": "industrial_controller",
    "industrial controller": "industrial_controller",
    "industrial controllers": "industrial_controller",
    "industrial_controller": "industrial_controller",
    "plc": "industrial_controller",
    "plcs": "industrial_controller",
    "gateway": "gateway",
    "gateways": "gateway",
    "router": "gateway",
    "routers": "gateway",
    "hub": "gateway",
    "hubs": "gateway",
    "unknown": "unknown",
}

#: How each device type reads in a sentence.
DEVICE_TYPE_LABELS: dict[str, str] = {
    "pos_terminal": "POS terminals",
    "iot_sensor": "IoT sensors",
    "industrial_controller": "industrial controllers",
    "gateway": "gateways",
    "unknown": "devices of unknown type",
}


def resolve_device_type(value: str) -> str | None:
    """The stored device type named by ``value`` ("tills" -> pos_terminal), or None."""
    q = normalise(value)
    if not q:
        return None
    if q in DEVICE_TYPE_SYNONYMS:
        return DEVICE_TYPE_SYNONYMS[q]
    if q.replace(" ", "_") in DEVICE_TYPES:
        return q.replace(" ", "_")
    singular = q[:-1] if q.endswith("s") else q
    if singular in DEVICE_TYPE_SYNONYMS:
        return DEVICE_TYPE_SYNONYMS[singular]
    hit = difflib.get_close_matches(q, list(DEVICE_TYPE_SYNONYMS), n=1, cutoff=0.8)
    return DEVICE_TYPE_SYNONYMS[hit[0]] if hit else None


# --------------------------------------------------------------------------- sites and devices


def _rows(store: Store, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(scoped_text(sql, params or {}), params or {})]


def _pick(query: str, rows: list[dict[str, Any]], kind: str, id_col: str) -> dict[str, Any]:
    """One row whose public id, integer key or name matches ``query``, else ``ScopeNotFound``."""
    q = query.strip()
    for r in rows:
        if str(r[id_col]).lower() == q.lower() or (q.isdigit() and r["id"] == int(q)):
            return r
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_name.setdefault(r["name"] or r[id_col], []).append(r)
    hits = match_names(q, by_name)
    if len(hits) == 1 and len(by_name[hits[0]]) == 1:
        return by_name[hits[0]][0]
    if len(hits) == 1:  # two rows share a name: ask for the id
        ids = ", ".join(r[id_col] for r in by_name[hits[0]])
        raise ScopeNotFound(f"Several {kind}s are named {hits[0]!r} ({ids}); give the {kind} id.", hits)
    if hits:
        shown = ", ".join(hits[:6]) + (f" and {len(hits) - 6} more" if len(hits) > 6 else "")
        raise ScopeNotFound(f"{query!r} matches several {kind}s: {shown}; say which one.", hits[:6])
    close = close_names(q, by_name)
    if not rows:
        raise ScopeNotFound(f"No {kind}s are stored yet, so {query!r} cannot be found.")
    raise ScopeNotFound(f"No {kind} matches {query!r}; closest {kind}s: {', '.join(close)}.", close)


def resolve_site(store: Store, target: str) -> dict[str, Any]:
    """The ``sites`` row (id, site_id, name) that ``target`` names."""
    rows = _rows(store, "SELECT id, site_id, name FROM sites ORDER BY id")
    return _pick(target, rows, "site", "site_id")


def resolve_device(store: Store, target: str) -> dict[str, Any]:
    """The ``devices`` row (id, device_id, name, device_type, site_id) that ``target`` names."""
    rows = _rows(store, "SELECT id, device_id, name, device_type, site_id FROM devices ORDER BY id")
    return _pick(target, rows, "device", "device_id")


def resolve_scope(store: Store, scope: str = "fleet", target: str | None = None) -> ResolvedScope:
    """Resolve ``scope``/``target`` to device and site keys, or raise ``ScopeNotFound``.

    ``scope="fleet"`` ignores ``target``. A target without a scope-specific match is reported with
    the closest names, e.g. "No site matches 'camdn'; closest sites: Camden High St, ...".
    """
    if scope not in SCOPES:
        raise ScopeNotFound(f"Unknown scope {scope!r}; use one of: {', '.join(SCOPES)}.")
    if scope != "fleet" and not (target and target.strip()):
        raise ScopeNotFound(f"Scope {scope!r} needs a target: which {scope.replace('_', ' ')}?")
    if scope == "fleet":
        rows = _rows(store, "SELECT id, device_id, site_id FROM devices ORDER BY id")
        sites = _rows(store, "SELECT id FROM sites ORDER BY id")
        return ResolvedScope(
            label="the fleet",
            device_ids=[r["id"] for r in rows],
            site_ids=[r["id"] for r in sites],
            kind="fleet",
            public_ids=[r["device_id"] for r in rows],
        )
    assert target is not None
    if scope == "site":
        site = resolve_site(store, target)
        rows = _rows(store, "SELECT id, device_id FROM devices WHERE site_id = :s ORDER BY id", {"s": site["id"]})
        return ResolvedScope(
            label=str(site["name"] or site["site_id"]),
            device_ids=[r["id"] for r in rows],
            site_ids=[site["id"]],
            kind="site",
            public_ids=[r["device_id"] for r in rows],
        )
    if scope == "device_type":
        dtype = resolve_device_type(target)
        if dtype is None:
            raise ScopeNotFound(
                f"{target!r} is not a device type; use one of: {', '.join(DEVICE_TYPES)} "
                "(or words like POS, tills, sensors, controllers, gateways).",
                DEVICE_TYPES,
            )
        rows = _rows(store, "SELECT id, device_id, site_id FROM devices WHERE device_type = :t ORDER BY id", {"t": dtype})
        return ResolvedScope(
            label=DEVICE_TYPE_LABELS.get(dtype, dtype),
            device_ids=[r["id"] for r in rows],
            site_ids=sorted({r["site_id"] for r in rows if r["site_id"] is not None}),
            kind="device_type",
            device_type=dtype,
            public_ids=[r["device_id"] for r in rows],
        )
    device = resolve_device(store, target)
    return ResolvedScope(
        label=str(device["name"] or device["device_id"]),
        device_ids=[device["id"]],
        site_ids=[device["site_id"]] if device["site_id"] is not None else [],
        kind="device",
        device_type=device["device_type"],
        public_ids=[device["device_id"]],
    )


# --------------------------------------------------------------------------- metrics

#: Extra metric names the simulator writes into ``device_metrics.extra_metrics`` (used when a
#: store has no extra metrics yet, so that words still resolve to the names data will carry).
KNOWN_EXTRA_METRICS: tuple[str, ...] = (
    "temperature_celsius",
    "humidity_percent",
    "fan_speed_rpm",
    "battery_health_percent",
    "printer_errors",
    "card_reader_errors",
    "disk_io_wait_ms",
    "packet_loss_percent",
)

#: Words people use for metrics -> metric name. Longer phrases are tried first.
METRIC_SYNONYMS: dict[str, str] = {
    "cpu": "cpu_percent",
    "cpu usage": "cpu_percent",
    "cpu load": "cpu_percent",
    "processor": "cpu_percent",
    "load": "cpu_percent",
    "memory": "memory_percent",
    "ram": "memory_percent",
    "memory usage": "memory_percent",
    "disk": "disk_percent",
    "disk usage": "disk_percent",
    "disk space": "disk_percent",
    "storage": "disk_percent",
    "latency": "network_latency_ms",
    "network latency": "network_latency_ms",
    "ping": "network_latency_ms",
    "response time": "network_latency_ms",
    "lag": "network_latency_ms",
    "slow": "network_latency_ms",
    "transactions": "transaction_count",
    "transaction count": "transaction_count",
    "number of transactions": "transaction_count",
    "payments": "transaction_count",
    "sales": "transaction_volume",
    "revenue": "transaction_volume",
    "takings": "transaction_volume",
    "turnover": "transaction_volume",
    "transaction volume": "transaction_volume",
    "transaction value": "transaction_volume",
    "error rate": "error_rate",
    "errors": "error_rate",
    "error": "error_rate",
    "failure rate": "error_rate",
    "connections": "active_connections",
    "active connections": "active_connections",
    "sessions": "active_connections",
    "queue": "queue_depth",
    "queue depth": "queue_depth",
    "queue length": "queue_depth",
    "backlog": "queue_depth",
    "temp": "temperature_celsius",
    "temps": "temperature_celsius",
    "temperature": "temperature_celsius",
    "heat": "temperature_celsius",
    "humidity": "humidity_percent",
    "fan": "fan_speed_rpm",
    "fan speed": "fan_speed_rpm",
    "fans": "fan_speed_rpm",
    "battery": "battery_health_percent",
    "battery health": "battery_health_percent",
    "printer errors": "printer_errors",
    "printer": "printer_errors",
    "printer faults": "printer_errors",
    "paper jams": "printer_errors",
    "card reader errors": "card_reader_errors",
    "card reader": "card_reader_errors",
    "card reader faults": "card_reader_errors",
    "card errors": "card_reader_errors",
    "chip reader errors": "card_reader_errors",
    "io wait": "disk_io_wait_ms",
    "disk io": "disk_io_wait_ms",
    "disk io wait": "disk_io_wait_ms",
    "packet loss": "packet_loss_percent",
    "dropped packets": "packet_loss_percent",
}

#: Units for display, by metric-name suffix.
_UNIT_SUFFIXES: dict[str, str] = {
    "_percent": "%",
    "_ms": "ms",
    "_celsius": "°C",
    "_rpm": "rpm",
}


def metric_unit(metric: str) -> str:
    """The display unit of a metric ('%' for cpu_percent, 'ms' for latency, '' for counts)."""
    if metric == "transaction_volume":
        return "currency units"
    for suffix, unit in _UNIT_SUFFIXES.items():
        if metric.endswith(suffix):
            return unit
    return ""


_extra_cache: dict[str, tuple[float, list[str]]] = {}
_EXTRA_TTL_S = 60.0


def extra_metric_names(store: Store, *, sample_rows: int = 5000, refresh: bool = False) -> list[str]:
    """Keys of ``device_metrics.extra_metrics`` seen in the newest rows (cached for a minute)."""
    key = store.url
    hit = _extra_cache.get(key)
    if hit and not refresh and time.monotonic() - hit[0] < _EXTRA_TTL_S:
        return hit[1]
    try:
        from tools.store import metrics_io  # the shared helper, when it exists

        names = sorted(set(metrics_io.list_metric_names(store)) - set(NAMED_METRICS))  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        names = _discover_extra_names(store, sample_rows)
    _extra_cache[key] = (time.monotonic(), names)
    return names


def _discover_extra_names(store: Store, sample_rows: int) -> list[str]:
    if store.is_sqlite:
        sql = (
            "SELECT DISTINCT j.key AS name FROM (SELECT extra_metrics FROM device_metrics "
            "WHERE extra_metrics IS NOT NULL ORDER BY id DESC LIMIT :n) m, json_each(m.extra_metrics) j "
            "WHERE json_valid(m.extra_metrics)"
        )
    else:
        sql = (
            "SELECT DISTINCT json_object_keys(m.extra_metrics::json) AS name FROM (SELECT extra_metrics FROM "
            "device_metrics WHERE extra_metrics IS NOT NULL AND json_typeof(extra_metrics::json) = 'object' "
            "ORDER BY id DESC LIMIT :n) m"
        )
    return sorted(str(r["name"]) for r in _rows(store, sql, {"n": sample_rows}))


def metric_names(store: Store) -> list[str]:
    """Every metric a tool can query: the nine named columns, then the extra metrics in the data."""
    extras = extra_metric_names(store)
    return list(NAMED_METRICS) + [n for n in extras if n not in NAMED_METRICS]


def resolve_metric(store_or_names: Store | Iterable[str], value: str) -> str:
    """The metric name that ``value`` means ("temp" -> temperature_celsius), or ``MetricNotFound``.

    ``store_or_names`` is a store (names are discovered from its data) or a list of names. Extra
    metrics the simulator writes resolve even before any data exists.
    """
    if isinstance(store_or_names, Store):
        available = metric_names(store_or_names)
    else:
        available = list(store_or_names)
    if not any(n not in NAMED_METRICS for n in available):
        available = available + [n for n in KNOWN_EXTRA_METRICS if n not in available]
    avail = set(available)
    raw = value.strip()
    if raw in avail:
        return raw
    q = normalise(raw)
    if not q:
        raise MetricNotFound(f"No metric named; use one of: {', '.join(available)}.", available)
    by_norm = {normalise(n): n for n in available}
    if q in by_norm:
        return by_norm[q]
    syn = METRIC_SYNONYMS.get(q) or METRIC_SYNONYMS.get(q[:-1] if q.endswith("s") else q)
    if syn and syn in avail:
        return syn
    # a name whose words (units dropped) are all in the text: "humidity" -> humidity_percent
    for n in sorted(available, key=len, reverse=True):
        stem = normalise(re.sub(r"_(percent|ms|celsius|rpm|count)$", "", n))
        if stem and (stem == q or f" {stem} " in f" {q} "):
            return n
    # a synonym phrase inside longer text: "card reader errors at camden" (longest phrase first)
    for phrase in sorted(METRIC_SYNONYMS, key=len, reverse=True):
        if f" {phrase} " in f" {q} " and METRIC_SYNONYMS[phrase] in avail:
            return METRIC_SYNONYMS[phrase]
    hits = match_names(q, list(by_norm) + [p for p in METRIC_SYNONYMS if METRIC_SYNONYMS[p] in avail], cutoff=0.8)
    targets = list(dict.fromkeys(by_norm.get(h) or METRIC_SYNONYMS[h] for h in hits))
    if len(targets) == 1:
        return targets[0]
    close = targets or close_names(q, available)
    raise MetricNotFound(
        f"No metric matches {value!r}; closest: {', '.join(close[:5])}. All metrics: {', '.join(available)}.",
        close[:5],
    )


# --------------------------------------------------------------------------- tool error shape


def friendly_errors(fn):
    """Decorator for tools: a name or window that cannot be resolved becomes a one-sentence result.

    ``ScopeNotFound``/``MetricNotFound``/``WindowError`` are the model's mistakes to correct, so they
    come back as ``error`` results carrying only the sentence (no exception class name); when the
    store simply holds no sites or devices yet, the answer is ``no_data`` instead.
    """
    import functools

    from tools.results import ToolResult
    from tools.timewindow import WindowError

    @functools.wraps(fn)
    def wrapper(ctx, args):
        try:
            return fn(ctx, args)
        except (ScopeNotFound, MetricNotFound, WindowError) as exc:
            name = fn.__name__
            if "are stored yet" in str(exc):
                return ToolResult(status="no_data", tool=name, summary=str(exc))
            return ToolResult.fail(name, str(exc))

    return wrapper
