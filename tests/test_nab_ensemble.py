"""The NAB-protocol detector: the framework-given range is its only look-ahead, it stays
bounded, fires once per event, and a prefix scores the same when the series grows."""

from __future__ import annotations

import numpy as np

from tools.anomaly.cad_ose import cad_ose_nab
from tools.anomaly.nab_ensemble import score_nab_protocol


def _cycle(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 48) + rng.normal(0, 0.2, n)


def test_given_the_range_and_length_no_row_depends_on_later_rows() -> None:
    x = _cycle(900)
    x[800] = 25.0
    lo, hi = float(x.min()), float(x.max())
    # NAB gives the range and (through the probationary period) the length up front; with
    # those fixed, replacing the future must not change any earlier score
    y = x.copy()
    y[700:] = x[652:852]
    assert np.array_equal(score_nab_protocol(x, lo, hi)[:700], score_nab_protocol(y, lo, hi)[:700])


def test_a_burst_outscores_everything_before_it_and_fires_once() -> None:
    x = _cycle(1200, seed=2)
    x[1000:1010] = 30.0
    s = score_nab_protocol(x)
    assert 0.0 <= s.min() and s.max() <= 1.0
    assert s[1000:1005].max() >= s[600:1000].max() + 0.2
    hot = np.flatnonzero(s[1000:1100] >= 0.5)
    assert len(hot) == 1  # one alarm per event


def test_the_fusion_never_loses_a_cad_ose_alarm_before_the_first_suppression() -> None:
    x = _cycle(1000, seed=4)
    x[900] = 40.0
    cad = cad_ose_nab(x)
    fused = score_nab_protocol(x)
    first = int(np.argmax(cad >= 0.75))
    assert cad[first] >= 0.75 and fused[first] >= cad[first] - 1e-12


def test_degenerate_series_give_finite_scores() -> None:
    assert np.all(score_nab_protocol(np.full(300, 4.0)) == 0.0)
    assert len(score_nab_protocol(np.arange(5.0))) == 5
    assert len(score_nab_protocol(np.zeros(0))) == 0
