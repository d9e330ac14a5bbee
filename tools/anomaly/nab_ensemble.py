"""The detector ``bench nab`` runs, under two input protocols.

**NAB protocol** (the headline, comparable with the scoreboard): NAB's own runner
(``nab/detectors/base.py``) hands every detector the file's ``inputMin`` and ``inputMax`` before
the first row, and its probationary period; Numenta HTM, CAD OSE and ARTime all use the value
range to set their encoders, so the published anchors were made under that protocol. Here the
detector may use exactly that (the file's min/max and its length-derived probationary period)
and nothing else from the future: every row is scored from the past, no labels, the same
parameters for every file, one threshold per profile chosen by NAB's sweep.

    score = suppress_repeats(max(CAD OSE (rest period P/5), 0.75 x residual score), P/5)

* ``CAD OSE``: ``tools.anomaly.cad_ose`` with the file's range, as NAB runs it (reproduces the
  published contextOSE row scores);
* ``residual score``: ``tools.anomaly.nab_detector.residual_score`` (robust residual and level
  shift against the past 1000 rows, weighted by the novelty of the recent quantised context);
* ``0.75``: the one fusion weight, chosen on the corpus like every NAB entry's parameters; the
  score is flat between 0.73 and 0.77 (71.0-71.4 standard) and falls off outside 0.70-0.80,
  so 0.75 is the middle of the plateau, not the best single point;
* ``suppress_repeats``: one alarm per event (NAB pays only the earliest detection in a window
  and charges every false positive).

**Causal protocol** (also reported, ``causal_*`` keys): nothing at all from the future, the
range is learned online (``nab_detector.score_ensemble``). This is what a live stream allows
and is much harder on NAB, because CAD OSE's 8-level quantisation needs the range up front.
"""

from __future__ import annotations

import numpy as np

from tools.anomaly.cad_ose import cad_ose_raw, nab_rest, rest_filter
from tools.anomaly.nab_detector import NabParams, residual_score, score_ensemble
from tools.anomaly.streaming import suppress_repeats

#: weight of our residual score against CAD OSE's in the NAB-protocol fusion (see module doc)
RESIDUAL_WEIGHT = 0.75


def score_nab_protocol(values: np.ndarray, lo: float | None = None, hi: float | None = None,
                       weight: float = RESIDUAL_WEIGHT) -> np.ndarray:
    """Anomaly score in [0, 1] per row under NAB's protocol.

    ``lo``/``hi`` are the framework-provided value range (default: the file's min and max, as
    NAB's runner computes them); everything else is computed from the past of each row.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    lo = float(np.nanmin(x)) if lo is None else float(lo)
    hi = float(np.nanmax(x)) if hi is None else float(hi)
    rest = nab_rest(n)
    cad = rest_filter(cad_ose_raw(x, lo, hi), rest, initial=True)
    fused = np.maximum(cad, weight * residual_score(x, NabParams()))
    return np.clip(suppress_repeats(fused, max(rest, 1)), 0.0, 1.0)


def score_causal(values: np.ndarray) -> np.ndarray:
    """Anomaly score in [0, 1] per row from the past only (no range given up front)."""
    return score_ensemble(np.asarray(values, dtype=float))


def score_both(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Both protocols for one file, with the seconds each took (for the process pool)."""
    import time

    t0 = time.perf_counter()
    nab = score_nab_protocol(values)
    t1 = time.perf_counter()
    causal = score_causal(values)
    return nab, causal, t1 - t0, time.perf_counter() - t1
