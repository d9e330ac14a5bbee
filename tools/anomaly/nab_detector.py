"""Our univariate streaming detector, as run on NAB.

Each row is scored from the past only, with the same settings for every file (no labels,
no per-file tuning). Signals:

* ``resid``: robust z-score of the value against the previous ``long`` rows;
* ``shift``: z-score of the mean of the last few rows (level shifts, sustained changes);
* ``novel``: novelty of the quantised recent context (CAD-OSE-like: a pattern of the last
  three quantised values never seen before);

combined into one score (``residual_score``; the NAB-protocol detector in
``tools.anomaly.nab_ensemble`` fuses it with CAD OSE), and (``score_ensemble``, the causal
variant ``bench nab`` reports as ``causal_*``) maxed with
the raw score of our causal CAD OSE port (``tools.anomaly.cad_ose``: contexts of quantised
values, range fixed from the first rows only), weighted so the two are on one scale, and finally
passed through ``suppress_repeats`` so one event fires once (NAB counts the earliest detection
in a window and charges for every false positive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.anomaly.streaming import past_mean_std, recent_mean, suppress_repeats


@dataclass(frozen=True)
class NabParams:
    long: int = 1000
    shift_window: int = 6
    lik_long: int = 2000
    lik_short: int = 3
    bins: int = 16
    context: int = 3
    suppress: int = 150
    scale: float = 5.0
    cad_warm: int = 150
    cad_pad: float = 0.5
    ours_weight: float = 0.9


def context_novelty(x: np.ndarray, bins: int, context: int) -> np.ndarray:
    """1.0 where the tuple of the last ``context`` quantised values has never occurred before.

    Values are quantised against the running min/max of the past (so the grid only ever uses
    information available at that row).
    """
    n = len(x)
    out = np.zeros(n)
    if n == 0:
        return out
    lo = np.minimum.accumulate(x)
    hi = np.maximum.accumulate(x)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    q = np.clip(((x - lo) / span * bins).astype(np.int64), 0, bins)
    seen: set[tuple[int, ...]] = set()
    ql = q.tolist()
    for i in range(context - 1, n):
        key = tuple(ql[i - context + 1:i + 1])
        if key not in seen:
            seen.add(key)
            out[i] = 1.0
    return out


def signals(values: np.ndarray, p: NabParams = NabParams()) -> dict[str, np.ndarray]:
    """The raw per-row signals (all causal)."""
    x = np.asarray(values, dtype=float)
    mu, sd = past_mean_std(x, p.long, min_periods=10)
    sd = np.maximum(np.nan_to_num(sd, nan=0.0), 1e-9 + 1e-3 * np.nan_to_num(np.abs(mu)))
    resid = np.nan_to_num(np.abs(x - mu) / sd)
    shift = np.nan_to_num(np.abs(recent_mean(x, p.shift_window) - mu) / sd)
    novel = context_novelty(x, p.bins, p.context)
    return {"resid": resid, "shift": shift, "novel": novel}


def residual_score(values: np.ndarray, p: NabParams = NabParams()) -> np.ndarray:
    """Our residual / shift / novelty signals as one score in [0, 1) (before suppression)."""
    sig = signals(values, p)
    raw = np.maximum(sig["resid"], 1.5 * sig["shift"]) * (0.5 + sig["novel"])
    return 1.0 - np.exp(-raw / p.scale)


def score(values: np.ndarray, p: NabParams = NabParams()) -> np.ndarray:
    """Anomaly score in [0, 1] for every row of one series, computed from the past only."""
    return np.clip(suppress_repeats(residual_score(values, p), p.suppress), 0.0, 1.0)


def score_ensemble(values: np.ndarray, p: NabParams = NabParams()) -> np.ndarray:
    """The NAB detector: max(causal CAD OSE raw score, ``ours_weight`` x our residual score),
    then one alarm per event (``suppress_repeats``). Every row uses the past only; every
    setting is global."""
    from tools.anomaly.cad_ose import cad_ose_causal

    x = np.asarray(values, dtype=float)
    cad = cad_ose_causal(x, rest=0, warm=p.cad_warm, pad=p.cad_pad)
    combined = np.maximum(cad, p.ours_weight * residual_score(x, p))
    return np.clip(suppress_repeats(combined, p.suppress), 0.0, 1.0)
