"""Reference detectors used to verify the NAB scorer against posted numbers.

``windowed_gaussian`` reproduces NAB's ``windowedGaussian`` detector (window 6400 rows,
refreshed every 100 rows once full; score = 1 - Q(|x - mean| / std)) with numpy instead of a
per-row loop. The statistics used for row ``i`` come only from rows before ``i``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc


def windowed_gaussian(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """Anomaly scores of NAB's windowed-Gaussian detector, row by row, past only."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = np.zeros(n)
    std = np.ones(n)
    if n == 0:
        return np.zeros(0)
    # Growing phase: row i (1 <= i <= window) is scored with mean/std of x[0:i], computed
    # exactly as numpy does on the list (scores near 1 are sensitive to the last bits).
    for i in range(1, min(n, window + 1)):
        seg = x[:i]
        mean[i] = seg.mean()
        std[i] = seg.std()
    if n > window:
        # Full phase: the window is refreshed after rows u = window-1, window-1+step, ...
        # Row j > window-1 uses the last refresh u < j: window = x[u+1-window : u+1].
        j = np.arange(window, n)
        u = window - 1 + ((j - window) // step) * step
        for uu in np.unique(u):
            seg = x[uu + 1 - window: uu + 1]
            sel = u == uu
            mean[j[sel]] = seg.mean()
            std[j[sel]] = seg.std()
    std = np.where(std == 0.0, 0.000001, std)
    z = np.abs(x - mean) / std
    score = 1.0 - 0.5 * erfc(z / np.sqrt(2.0))
    score[0] = 0.0
    return score
