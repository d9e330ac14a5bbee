"""Causal (past-only) vectorised primitives shared by the NAB detector and the fleet detector.

Every function returns, for row ``i``, a value computed from rows ``< i`` (or ``<= i`` where the
name says so), so running it on a prefix gives the same numbers as on the whole series: that is
what makes a batch of numpy operations equivalent to streaming one point at a time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import erfc


def past_mean_std(x: np.ndarray, window: int, min_periods: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the previous ``window`` rows (row ``i`` itself excluded)."""
    s = pd.Series(x).shift(1)
    r = s.rolling(window, min_periods=min_periods)
    return r.mean().to_numpy(), r.std(ddof=0).to_numpy()


def past_max(x: np.ndarray, window: int) -> np.ndarray:
    """Max of the previous ``window`` rows; -inf where there is no past."""
    return pd.Series(x).shift(1).rolling(window, min_periods=1).max().fillna(-np.inf).to_numpy()


def recent_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of rows ``i - window + 1 .. i`` (the current row included)."""
    return pd.Series(x).rolling(window, min_periods=1).mean().to_numpy()


def tail_prob(z: np.ndarray) -> np.ndarray:
    """Gaussian upper tail Q(z)."""
    return 0.5 * erfc(z / np.sqrt(2.0))


def likelihood(raw: np.ndarray, long_window: int, short_window: int, min_periods: int = 50) -> np.ndarray:
    """HTM-style anomaly likelihood: how unusual the recent average of a raw score is
    compared with that score's own past distribution. In [0, 1]; 0.5 means "as usual".

    This is what lets one global threshold work across files with very different noise.
    """
    short = recent_mean(raw, short_window)
    mu, sd = past_mean_std(raw, long_window, min_periods=min_periods)
    sd = np.where(np.isfinite(sd), np.maximum(sd, 1e-6), np.nan)
    z = (short - mu) / sd
    out = 1.0 - tail_prob(z)
    return np.where(np.isfinite(out), out, 0.5)


def suppress_repeats(score: np.ndarray, window: int) -> np.ndarray:
    """Keep a score only where it beats every score of the previous ``window`` rows.

    Threshold-free form of "after a detection, stay quiet for a while": at any threshold a
    sustained high plateau fires once, at its start.
    """
    prev = past_max(score, window)
    return np.where(score > prev, score, 0.0)
