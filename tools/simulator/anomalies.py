"""Anomaly injection with exact ground truth.

Every kind in ``ANOMALY_KINDS`` is injected into a real-looking signal, sized against that
metric's own noise (sigma from the median absolute first difference, which ignores the daily
cycle), so that a good detector finds them and a threshold rule mostly does not:

- spike / dip: 1-3 samples, 6-12 sigma above / below the current value;
- level_shift: 6-48 h, 3-6 sigma step; drift: 12-72 h linear ramp to 6-12 sigma;
- variance_change: 6-36 h with 3-5x the noise; stuck: 2-12 h of one repeated value;
- broken_correlation: 8-48 h where the dependent metric (CPU, humidity) is shuffled, so its
  marginal distribution is normal but it no longer follows its driver (transactions, temperature);
- outage: 30 min - 6 h of no data at all (health checks fail too).

Ground truth ``start``/``end`` are the timestamps of the first and last affected sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tools.simulator.signals import DeviceSignals, SiteClock
from tools.store.schema import ANOMALY_KINDS, NAMED_METRICS

#: Metrics each kind may hit, by device type (all present on every row, so the anomaly is visible).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "pos_terminal": ("cpu_percent", "memory_percent", "network_latency_ms", "transaction_count",
                     "queue_depth", "temperature_celsius", "payment_auth_latency_ms", "disk_io_wait_ms"),
    "iot_sensor": ("temperature_celsius", "humidity_percent", "network_latency_ms", "cpu_percent"),
    "gateway": ("network_latency_ms", "cpu_percent", "active_connections", "net_rx_kbps", "temperature_celsius"),
    "industrial_controller": ("temperature_celsius", "motor_temp_celsius", "cpu_percent", "memory_percent", "network_latency_ms"),
    "unknown": ("cpu_percent", "memory_percent", "network_latency_ms", "temperature_celsius"),
}
CONTINUOUS = frozenset({"cpu_percent", "memory_percent", "network_latency_ms", "temperature_celsius",
                        "humidity_percent", "payment_auth_latency_ms", "disk_io_wait_ms", "motor_temp_celsius",
                        "net_rx_kbps"})
LOAD_DRIVEN = frozenset({"transaction_count", "queue_depth", "active_connections", "cpu_percent",
                         "payment_auth_latency_ms", "net_rx_kbps", "disk_io_wait_ms"})
UPPER = {"cpu_percent": 100.0, "memory_percent": 100.0, "disk_percent": 100.0, "humidity_percent": 100.0,
         "error_rate": 1.0}
LOWER_ZERO = frozenset({"cpu_percent", "memory_percent", "network_latency_ms", "transaction_count", "queue_depth",
                        "active_connections", "humidity_percent", "payment_auth_latency_ms", "disk_io_wait_ms",
                        "net_rx_kbps"})
#: (dependent, driver) pairs for broken_correlation.
CORRELATED = {"pos_terminal": ("cpu_percent", "transaction_count"), "gateway": ("cpu_percent", "transaction_count"),
              "industrial_controller": ("cpu_percent", "motor_temp_celsius"),
              "iot_sensor": ("humidity_percent", "temperature_celsius")}
#: duration range in hours per kind (spike/dip are in samples, see below)
DURATION_H = {"level_shift": (6, 48), "drift": (12, 72), "variance_change": (6, 36), "stuck": (2, 12),
              "broken_correlation": (8, 48), "outage": (0.5, 6)}


@dataclass
class InjectedAnomaly:
    kind: str
    metrics: list[str]
    start_idx: int
    end_idx: int  # inclusive
    magnitude: float
    details: dict = field(default_factory=dict)


def plan_kinds(rng: np.random.Generator, device_types: list[str], weeks: float, per_week: float) -> list[list[str]]:
    """How many anomalies of which kind each device gets; every kind appears once there are >= 8."""
    counts = rng.poisson(per_week * weeks, size=len(device_types))
    total = int(counts.sum())
    kinds = list(np.resize(rng.permutation(ANOMALY_KINDS), total)) if total else []
    kinds = [str(k) for k in rng.permutation(kinds)] if kinds else []
    out: list[list[str]] = []
    pos = 0
    for dtype, c in zip(device_types, counts.tolist()):
        mine = kinds[pos : pos + c]
        pos += c
        out.append(["level_shift" if (k == "broken_correlation" and dtype not in CORRELATED) else k for k in mine])
    return out


def get_series(sig: DeviceSignals, name: str) -> np.ndarray:
    return sig.named[name] if name in sig.named else sig.extras[name][0]


def noise_sigma(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Robust noise scale: MAD of first differences / sqrt(2) (insensitive to daily cycles)."""
    v = x if mask is None or mask.sum() < 20 else x[mask]
    d = np.diff(v)
    s = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2)
    if s <= 1e-9:
        s = 0.5 * float(np.std(d)) / np.sqrt(2)
    return max(s, 1e-3)


def inject(dtype: str, sig: DeviceSignals, clock: SiteClock, kinds: list[str], dt_s: int,
           rng: np.random.Generator, occupied: np.ndarray) -> list[InjectedAnomaly]:
    """Apply ``kinds`` to the device's signals in place; return the ground truth of each."""
    n = len(clock.load)
    found: list[InjectedAnomaly] = []
    per_h = 3600.0 / dt_s
    for kind in kinds:
        for _attempt in range(60):
            a = _try_one(kind, dtype, sig, clock, n, per_h, rng, occupied)
            if a is not None:
                found.append(a)
                pad = int(per_h * 2)
                occupied[max(0, a.start_idx - pad) : a.end_idx + pad + 1] = True
                break
    return found


def _window(kind: str, n: int, per_h: float, rng: np.random.Generator) -> tuple[int, int]:
    if kind in ("spike", "dip"):
        length = int(rng.integers(1, 4))
    else:
        lo, hi = DURATION_H[kind]
        length = max(2, int(round(rng.uniform(lo, hi) * per_h)))
    length = min(length, max(1, n // 3))
    i = int(rng.integers(1, max(2, n - length - 1)))
    return i, i + length - 1


def _try_one(kind: str, dtype: str, sig: DeviceSignals, clock: SiteClock, n: int, per_h: float,
             rng: np.random.Generator, occupied: np.ndarray) -> InjectedAnomaly | None:
    i, j = _window(kind, n, per_h, rng)
    if occupied[i : j + 1].any() or sig.down[i : j + 1].any() or sig.maintenance[i : j + 1].any():
        return None
    sl = slice(i, j + 1)
    if kind == "outage":
        return InjectedAnomaly(kind, list(NAMED_METRICS), i, j, float((j - i + 1) / per_h),
                               {"hours": round((j - i + 1) / per_h, 2), "cause": str(rng.choice(
                                   ["network", "power", "agent_crash", "network"]))})
    if kind == "broken_correlation":
        dep, drv = CORRELATED[dtype]
        x = get_series(sig, dep)
        seg = x[sl].copy()
        drv_seg = get_series(sig, drv)[sl]
        if np.std(drv_seg) <= 0 or np.std(seg) <= 0:
            return None
        before = float(np.corrcoef(seg, drv_seg)[0, 1])
        if not before > 0.4:
            return None
        x[sl] = rng.permutation(seg)
        after = float(np.corrcoef(x[sl], drv_seg)[0, 1])
        return InjectedAnomaly(kind, [dep, drv], i, j, round(before - after, 3),
                               {"corr_before": round(before, 3), "corr_after": round(after, 3), "dependent": dep, "driver": drv})
    cands = [m for m in CANDIDATES[dtype] if m in sig.named or m in sig.extras]
    if kind == "stuck":
        cands = [m for m in cands if m in CONTINUOUS]
    metric = cands[int(rng.integers(len(cands)))]
    x = get_series(sig, metric)
    load_driven = metric in LOAD_DRIVEN and dtype in ("pos_terminal", "gateway")
    sigma = noise_sigma(x, clock.open if load_driven else None)
    up = UPPER.get(metric, np.inf)
    lo_b = 0.0 if metric in LOWER_ZERO else -np.inf
    seg = x[sl]
    base = float(np.median(seg))
    if kind in ("spike", "dip"):
        m = float(rng.uniform(6, 12))
        delta = m * sigma * (1 if kind == "spike" else -1)
        if load_driven and kind == "dip" and clock.load[i] < 0.5:
            return None
        new = seg + delta
        if (new > up).any() or (new < lo_b).any():
            return None
        x[sl] = new
        details = {"sigma": round(sigma, 4), "delta": round(delta, 4), "value_before": round(float(seg.mean()), 4)}
    elif kind == "level_shift":
        m = float(rng.uniform(3, 6))
        delta = m * sigma * (1 if rng.random() < 0.6 else -1)
        new = np.clip(seg + delta, lo_b, up)
        if np.mean(np.abs(new - seg)) < 0.8 * abs(delta):
            return None
        x[sl] = new
        details = {"sigma": round(sigma, 4), "delta": round(delta, 4)}
    elif kind == "drift":
        m = float(rng.uniform(6, 12))
        delta = m * sigma * (1 if rng.random() < 0.75 else -1)
        ramp = np.linspace(0, delta, len(seg))
        new = np.clip(seg + ramp, lo_b, up)
        if abs(new[-1] - seg[-1]) < 0.7 * abs(delta):
            return None
        x[sl] = new
        details = {"sigma": round(sigma, 4), "delta_at_end": round(delta, 4)}
    elif kind == "variance_change":
        m = float(rng.uniform(3, 5))
        extra = rng.normal(0, sigma * np.sqrt(m * m - 1), size=len(seg))
        x[sl] = np.clip(seg + extra, lo_b, up)
        details = {"sigma": round(sigma, 4), "factor": round(m, 3)}
    elif kind == "stuck":
        value = float(seg[0])
        if np.std(seg) < 2 * sigma:
            return None
        x[sl] = value
        m = float(np.std(seg) / sigma)
        details = {"sigma": round(sigma, 4), "value": round(value, 4)}
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")
    if metric in sig.named and metric in ("transaction_count", "active_connections", "queue_depth"):
        x[sl] = np.maximum(np.round(x[sl]), 0)
    details["baseline"] = round(base, 4)
    return InjectedAnomaly(kind, [metric], i, j, round(m, 3), details)
