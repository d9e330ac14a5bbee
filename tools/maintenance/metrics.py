"""Scores for survival predictions: concordance, IPCW Brier score, integrated Brier, reliability.

Implemented here (rather than with scikit-survival, which is not a dependency) because each is a
few vectorised lines. The Brier score weights observations by the inverse probability of
censoring (Graf et al. 1999), with the censoring distribution estimated by Kaplan–Meier on the
*training* spells, so that censored test spells neither count as survivors nor as failures.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def c_index(durations: np.ndarray, risk: np.ndarray, events: np.ndarray) -> float:
    """Harrell's concordance; ``risk`` higher means earlier failure. 0.5 when undefined."""
    from lifelines.utils import concordance_index

    events = np.asarray(events, bool)
    if events.sum() == 0 or len(np.unique(durations)) < 2:
        return 0.5
    try:
        return float(concordance_index(durations, -np.asarray(risk, float), events))
    except ZeroDivisionError:  # no admissible pairs
        return 0.5


def censoring_survival(durations: np.ndarray, events: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """G(t) = P(censoring time > t) by Kaplan–Meier on reversed event indicators (a step function)."""
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(np.asarray(durations, float), event_observed=~np.asarray(events, bool))
    times = km.survival_function_.index.to_numpy(float)
    values = km.survival_function_.iloc[:, 0].to_numpy(float)

    def G(t: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(times, np.asarray(t, float), side="right") - 1
        return np.clip(np.where(idx >= 0, values[np.clip(idx, 0, None)], 1.0), 0.05, 1.0)

    return G


def brier_scores(surv: np.ndarray, times: np.ndarray, durations: np.ndarray, events: np.ndarray,
                 G: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """IPCW Brier score at each of ``times``; ``surv[i, j]`` = predicted S(times[j] | x_i)."""
    d = np.asarray(durations, float)[:, None]
    e = np.asarray(events, bool)[:, None]
    t = np.asarray(times, float)[None, :]
    died = (d <= t) & e
    alive = d > t
    w_died = 1.0 / G(d.ravel())[:, None]
    w_alive = 1.0 / G(np.asarray(times, float))[None, :]
    loss = died * surv ** 2 * w_died + alive * (1.0 - surv) ** 2 * w_alive
    return loss.mean(axis=0)


def integrated_brier(surv: np.ndarray, times: np.ndarray, durations: np.ndarray, events: np.ndarray,
                     G: Callable[[np.ndarray], np.ndarray]) -> float:
    """Brier score averaged over ``times`` (trapezoid rule divided by the span). Lower is better;
    0.25 is what a constant S = 0.5 scores."""
    bs = brier_scores(surv, times, durations, events, G)
    times = np.asarray(times, float)
    if len(times) < 2:
        return float(bs[0])
    return float(np.trapezoid(bs, times) / (times[-1] - times[0]))


def reliability_table(p: np.ndarray, outcome: np.ndarray, bins: int = 5) -> pd.DataFrame:
    """Predicted vs observed failure rate in quantile bins of the predicted probability."""
    p = np.asarray(p, float)
    y = np.asarray(outcome, float)
    if len(p) == 0:
        return pd.DataFrame(columns=["bin", "n", "mean_predicted", "observed_rate"])
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    df = pd.DataFrame({"bin": which, "p": p, "y": y})
    out = df.groupby("bin").agg(n=("p", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
    return out.reset_index()


def brier(p: np.ndarray, outcome: np.ndarray) -> float:
    """Plain Brier score of binary outcomes (for horizons where every label is known)."""
    p = np.asarray(p, float)
    return float(np.mean((p - np.asarray(outcome, float)) ** 2)) if len(p) else float("nan")
