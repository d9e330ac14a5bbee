"""The streaming fleet detector: constant state per series, one vectorised step per interval.

Many series (every (device, metric) pair) are advanced together: a step takes one value per
series (NaN where none arrived) and updates fixed-size state with numpy, so batch scoring of
30 days is a loop over 8,640 five-minute steps of array operations, and an incremental pass over
one new interval is the same single step. A point is scored from the state built from the past
only, so scores of a prefix never change when the series grows.

Per series the state holds:

* a seasonal baseline: Huber-clipped EWMA level and mean absolute deviation per
  (day type x hour) bucket, with a global EWMA as fallback until a bucket has enough samples
  (robust: one outlier moves the baseline by at most ``clip`` deviations);
* short memory for the change signals: a fast EWMA of the standardised residual (level shifts),
  two-sided CUSUM (drift), EWMA of squared residuals (variance change), the run length of an
  unchanged value and how often the series normally repeats itself (stuck values);
* for configured metric pairs, an EWMA regression of one metric on the other (broken
  correlation).

``step`` returns, per series, the signal that fired (or none), its strength relative to its
threshold, and the expected band, which ``events.py`` groups into findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KIND_CODES: dict[int, str] = {
    1: "spike", 2: "dip", 3: "level_shift", 4: "drift", 5: "variance_change", 6: "stuck",
    7: "broken_correlation",
}
N_BUCKETS = 72  # 3 day types (weekday, Saturday, Sunday) x 24 hours


@dataclass(frozen=True)
class DetectorParams:
    """Global settings (the same for every series); thresholds are in robust-sigma units."""

    alpha_bucket: float = 0.05
    alpha_global: float = 0.01
    clip: float = 3.0
    min_bucket: int = 12
    min_global: int = 36
    spike_z: float = 7.0
    shift_z: float = 3.0
    shift_alpha: float = 0.35
    cusum_k: float = 1.0
    cusum_h: float = 25.0
    var_alpha: float = 0.15
    var_ratio: float = 3.0
    stuck_run: int = 8
    stuck_max_repeat: float = 0.1
    tail_q: float = 0.995
    tail_lr: float = 0.2
    tail_mult: float = 1.4
    corr_z: float = 6.0
    corr_rms: float = 2.5
    rel_floor: float = 0.02
    abs_floor: float = 1e-3


def bucket_of(ts: np.ndarray) -> np.ndarray:
    """(day type x hour) bucket for naive UTC datetimes (numpy datetime64)."""
    t = np.asarray(ts, dtype="datetime64[m]")
    days = t.astype("datetime64[D]")
    dow = ((days.astype(np.int64) + 3) % 7)  # 0 = Monday
    daytype = np.where(dow == 5, 1, np.where(dow == 6, 2, 0))
    hour = ((t - days).astype(np.int64) // 60).astype(np.int64)
    return daytype * 24 + hour


@dataclass
class SeriesState:
    """Fixed-size state for S series (arrays of length S, or S x N_BUCKETS)."""

    b_mean: np.ndarray
    b_dev: np.ndarray
    b_n: np.ndarray
    g_mean: np.ndarray
    g_dev: np.ndarray
    g_n: np.ndarray
    fast: np.ndarray
    cus_pos: np.ndarray
    cus_neg: np.ndarray
    var: np.ndarray
    last: np.ndarray
    run: np.ndarray
    repeat: np.ndarray
    tail: np.ndarray | None = None  # running 99.5th percentile of |z| (heavy-tailed series)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def new(cls, s: int) -> "SeriesState":
        z = lambda: np.zeros(s)  # noqa: E731
        return cls(
            b_mean=np.zeros((s, N_BUCKETS)), b_dev=np.zeros((s, N_BUCKETS)), b_n=np.zeros((s, N_BUCKETS)),
            g_mean=z(), g_dev=z(), g_n=z(), fast=z(), cus_pos=z(), cus_neg=z(), var=np.ones(s),
            last=np.full(s, np.nan), run=z(), repeat=z(), tail=z(),
        )

    def take(self, idx: np.ndarray) -> "SeriesState":
        """The state of a subset of series (for saving one device)."""
        return SeriesState(**{k: getattr(self, k)[idx] for k in self._fields()})

    @staticmethod
    def _fields() -> list[str]:
        return ["b_mean", "b_dev", "b_n", "g_mean", "g_dev", "g_n", "fast", "cus_pos", "cus_neg",
                "var", "last", "run", "repeat", "tail"]

    @classmethod
    def concat(cls, parts: list["SeriesState"]) -> "SeriesState":
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in cls._fields()})

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self._fields()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SeriesState":
        got = {k: np.asarray(arrays[k]) for k in cls._fields() if k in arrays}
        got.setdefault("tail", np.zeros_like(got["g_n"]))
        return cls(**got)


@dataclass
class StepResult:
    """Per series: fired kind code (0 none), strength (>= 1 when fired), expected value and scale."""

    kind: np.ndarray
    strength: np.ndarray
    expected: np.ndarray
    scale: np.ndarray
    z: np.ndarray


def step(state: SeriesState, x: np.ndarray, bucket: int | np.ndarray, p: DetectorParams) -> StepResult:
    """Score one value per series from the state (past only), then fold the value into the state."""
    s = len(x)
    rows = np.arange(s)
    valid = np.isfinite(x)
    b = np.broadcast_to(np.asarray(bucket), (s,))
    bm = state.b_mean[rows, b]
    bd = state.b_dev[rows, b]
    bn = state.b_n[rows, b]
    use_bucket = bn >= p.min_bucket
    expected = np.where(use_bucket, bm, state.g_mean)
    dev = np.where(use_bucket, np.maximum(bd, 0.5 * state.g_dev), state.g_dev)
    floor = np.maximum(p.rel_floor * np.abs(expected), p.abs_floor)
    scale = np.maximum(1.2533 * dev, floor)
    ready = valid & (state.g_n >= p.min_global) & use_bucket
    resid = np.where(valid, x - expected, 0.0)
    z = np.where(ready, resid / scale, 0.0)

    # change signals (computed from this point and the past)
    fast = np.where(valid, (1 - p.shift_alpha) * state.fast + p.shift_alpha * z, state.fast)
    zc = np.clip(z, -10, 10)
    cus_pos = np.where(valid, np.maximum(0.0, state.cus_pos + zc - p.cusum_k), state.cus_pos)
    cus_neg = np.where(valid, np.maximum(0.0, state.cus_neg - zc - p.cusum_k), state.cus_neg)
    var = np.where(valid, (1 - p.var_alpha) * state.var + p.var_alpha * np.minimum(z * z, 100.0), state.var)
    same = valid & (x == state.last)
    run = np.where(valid, np.where(same, state.run + 1, 0), state.run)

    # a spike must beat both the global bar and the series' own tail (bursty counts, latencies)
    spike_bar = np.maximum(p.spike_z, p.tail_mult * state.tail)
    strengths = np.vstack([
        np.where(z > 0, np.abs(z) / spike_bar, 0.0),
        np.where(z < 0, np.abs(z) / spike_bar, 0.0),
        np.abs(fast) / p.shift_z,
        np.maximum(cus_pos, cus_neg) / p.cusum_h,
        np.sqrt(var) / p.var_ratio,
        np.where(state.repeat < p.stuck_max_repeat, run / p.stuck_run, 0.0),
    ])
    strengths[:, ~ready] = 0.0
    best = np.argmax(strengths, axis=0)
    strength = strengths[best, rows]
    kind = np.where(strength >= 1.0, best + 1, 0)

    # fold the value in (Huber-clipped, so outliers barely move the baseline)
    r = np.clip(resid, -p.clip * scale, p.clip * scale)
    first = valid & (state.g_n == 0)
    g_mean = np.where(first, x, state.g_mean + np.where(valid, _rate(state.g_n, p.alpha_global) * np.where(ready, r, resid), 0.0))
    g_dev = np.where(valid & ~first, state.g_dev + _rate(state.g_n, p.alpha_global) * (np.abs(np.where(ready, r, resid)) - state.g_dev), state.g_dev)
    g_n = state.g_n + valid
    rb = np.where(bn > 0, x - bm, 0.0)
    rb = np.clip(rb, -p.clip * scale, p.clip * scale)
    a_b = _rate(bn, p.alpha_bucket)
    new_bm = np.where(valid, np.where(bn > 0, bm + a_b * rb, x), bm)
    new_bd = np.where(valid, np.where(bn > 0, bd + a_b * (np.abs(rb) - bd), state.g_dev), bd)
    state.b_mean[rows, b] = new_bm
    state.b_dev[rows, b] = new_bd
    state.b_n[rows, b] = bn + valid
    state.g_mean, state.g_dev, state.g_n = g_mean, g_dev, g_n
    # after an alarm the change detectors restart, so one event fires once
    fired = kind > 0
    state.fast = np.where(fired & (kind != 3), 0.0, fast)
    state.cus_pos = np.where(fired & (kind != 4), 0.0, cus_pos)
    state.cus_neg = np.where(fired & (kind != 4), 0.0, cus_neg)
    state.var = np.where(fired & (kind != 5), 1.0, var)
    state.repeat = np.where(valid & np.isfinite(state.last), state.repeat + 0.01 * (same - state.repeat), state.repeat)
    state.last = np.where(valid, x, state.last)
    state.run = run
    az = np.abs(z)
    state.tail = np.where(ready, state.tail + p.tail_lr * ((az > state.tail) - (1 - p.tail_q)), state.tail)
    return StepResult(kind, strength, expected, scale, z)


def _rate(n: np.ndarray, alpha: float) -> np.ndarray:
    """EWMA rate that starts as a plain running mean (1/n) and settles at ``alpha``."""
    return np.maximum(1.0 / np.maximum(n + 1, 1), alpha)
