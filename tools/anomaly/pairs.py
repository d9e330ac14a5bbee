"""Broken correlation between paired metrics of one device (e.g. transactions vs CPU).

For each pair (a, b) an EWMA regression of ``a`` on ``b`` is kept (means, variance,
covariance); the standardised error of predicting ``a`` from ``b`` is scored like any residual.
When the usual relationship holds, the error is small even while both metrics swing with trading
hours; when one moves without the other, the error grows although each metric alone may look
normal. Constant state, one vectorised step over all devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Metric pairs checked on every device: (dependent, driver).
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("cpu_percent", "transaction_count"),
    ("cpu_percent", "motor_temp_celsius"),
    ("humidity_percent", "temperature_celsius"),
)


@dataclass
class PairState:
    ma: np.ndarray
    mb: np.ndarray
    vb: np.ndarray
    cab: np.ndarray
    va: np.ndarray
    edev: np.ndarray
    n: np.ndarray
    #: EWMA of the squared (clipped) error z: a sustained loss of the relationship (values
    #: shuffled within their usual range) raises it although single points look ordinary
    ez: np.ndarray | None = None
    #: the pair's own 90th / 99th percentile of sqrt(ez), for a per-device calibrated bar
    q90: np.ndarray | None = None
    q99: np.ndarray | None = None

    @classmethod
    def new(cls, s: int) -> "PairState":
        return cls(*(np.zeros(s) for _ in range(8)), q90=np.full(s, 1.3), q99=np.full(s, 1.8))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "PairState":
        out = cls(**{k: np.asarray(arrays[k]) for k in ("ma", "mb", "vb", "cab", "va", "edev", "n")})
        out.ez = np.asarray(arrays["ez"]) if "ez" in arrays else np.zeros_like(out.n)
        out.q90 = np.asarray(arrays["q90"]) if "q90" in arrays else np.full_like(out.n, 1.3)
        out.q99 = np.asarray(arrays["q99"]) if "q99" in arrays else np.full_like(out.n, 1.8)
        return out

    def take(self, idx: np.ndarray) -> "PairState":
        return PairState(**{k: v[idx] for k, v in self.__dict__.items()})


def pair_step(st: PairState, a: np.ndarray, b: np.ndarray, *, alpha: float = 0.01, min_n: int = 288,
              min_r2: float = 0.5, clip: float = 3.0, ez_alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (z of the prediction error, predicted a, error scale), then update the state.

    z is 0 until ``min_n`` joint points were seen or while the pair is not usually correlated
    (R^2 below ``min_r2``): a relationship that never held cannot break.
    """
    valid = np.isfinite(a) & np.isfinite(b)
    beta = np.where(st.vb > 0, st.cab / np.maximum(st.vb, 1e-12), 0.0)
    pred = st.ma + beta * (np.where(valid, b, st.mb) - st.mb)
    err = np.where(valid, a - pred, 0.0)
    r2 = np.where((st.vb > 0) & (st.va > 0), st.cab ** 2 / np.maximum(st.vb * st.va, 1e-12), 0.0)
    scale = np.maximum(1.2533 * st.edev, 1e-6 + 0.01 * np.abs(st.ma))
    ready = valid & (st.n >= min_n) & (r2 >= min_r2)
    z = np.where(ready, err / scale, 0.0)
    ez = st.ez if st.ez is not None else np.zeros_like(z)
    st.ez = np.where(ready, (1 - ez_alpha) * ez + ez_alpha * np.minimum(z * z, 25.0), ez)
    rate = np.maximum(1.0 / (st.n + 1), alpha)
    # clip what is learnt so a broken stretch does not redefine the relationship at once
    w = np.where(valid, rate, 0.0)
    ec = np.clip(err, -clip * scale, clip * scale)
    a_used = np.where(ready, pred + ec, a)
    a_used = np.where(valid, a_used, st.ma)
    bb = np.where(valid, b, st.mb)
    da, db = a_used - st.ma, bb - st.mb
    st.ma = st.ma + w * da
    st.mb = st.mb + w * db
    st.va = (1 - w) * (st.va + w * da * da)
    st.vb = (1 - w) * (st.vb + w * db * db)
    st.cab = (1 - w) * (st.cab + w * da * db)
    st.edev = st.edev + w * (np.abs(np.where(st.n >= 1, ec, 0.0)) - st.edev)
    st.n = st.n + valid
    return z, pred, scale
