"""The NAB scorer on tiny hand-computed cases (SCORING.md sections 3-8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.anomaly.nab_scoring import (
    NabFile,
    file_raw_score,
    null_scores,
    perfect_scores,
    probation_rows,
    row_values,
    scaled_sigmoid,
    score_corpus,
    sweep,
)


def _file(n: int, windows: list[tuple[int, int]], name: str = "x/f.csv") -> NabFile:
    return NabFile(name, np.arange(n), np.zeros(n), windows)


def test_scaled_sigmoid_reference_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_15_percent_capped_at_750() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(4032) == 604
    assert probation_rows(22695) == 750


def test_row_values_inside_before_and_after_a_window() -> None:
    v, w = row_values(20, [(10, 13)], "standard")
    # before any window: full FP cost
    assert v[0] == pytest.approx(-0.11)
    # first row of the window is worth exactly A_TP; later rows less
    assert v[10] == pytest.approx(1.0)
    sig = lambda y: 2 / (1 + math.exp(5 * y)) - 1  # noqa: E731
    assert v[12] == pytest.approx(sig(-2 / 4) / sig(-1))
    assert list(w[10:14]) == [0, 0, 0, 0] and w[9] == -1 and w[14] == -1
    # after the window: A(|r - i| / (w - 1)) * A_FP, small just after, full later
    assert v[14] == pytest.approx(sig(1 / 3) * 0.11)
    assert v[19] == pytest.approx(sig(6 / 3) * 0.11)
    assert v[14] > v[19]


def test_one_detection_early_in_window_and_one_false_positive() -> None:
    # 100 rows: probation 15; window rows 50..59; flag row 50 and row 20 (before the window)
    f = _file(100, [(50, 59)])
    s = np.zeros(100)
    s[50] = 0.9
    s[20] = 0.8
    assert file_raw_score(f, s, 0.85, "standard") == pytest.approx(1.0)
    assert file_raw_score(f, s, 0.8, "standard") == pytest.approx(1.0 - 0.11)
    assert file_raw_score(f, s, 0.95, "standard") == pytest.approx(-1.0)
    res = sweep([f], [s], "standard")
    assert res.threshold == pytest.approx(0.9) and res.raw == pytest.approx(1.0)
    assert res.score == pytest.approx(100.0)


def test_only_the_best_detection_in_a_window_counts() -> None:
    f = _file(100, [(50, 59)])
    s = np.zeros(100)
    s[55] = 1.0
    s[51] = 0.5
    late = file_raw_score(f, s, 1.0, "standard")
    both = file_raw_score(f, s, 0.5, "standard")
    assert both > late  # the earlier detection is worth more
    assert file_raw_score(f, s, 0.4, "standard") == pytest.approx(both)


def test_probationary_rows_are_never_scored() -> None:
    f = _file(100, [(50, 59)])
    s = np.zeros(100)
    s[5] = 1.0  # inside probation: no FP cost
    s[50] = 1.0
    assert file_raw_score(f, s, 1.0, "standard") == pytest.approx(1.0)


def test_null_and_perfect_normalise_to_0_and_100_on_every_profile() -> None:
    files = [_file(200, [(60, 79), (150, 169)]), _file(120, []), _file(300, [(100, 129)], "y/g.csv")]
    for res in score_corpus(files, null_scores(files)).values():
        assert res.score == pytest.approx(0.0)
    for res in score_corpus(files, perfect_scores(files)).values():
        assert res.score == pytest.approx(100.0)
    low_fn = sweep(files, null_scores(files), "reward_low_FN_rate")
    assert low_fn.null == pytest.approx(-2.0 * 3)


def test_sweep_equals_sum_of_per_file_scores_at_its_threshold() -> None:
    rng = np.random.default_rng(0)
    files = [_file(200, [(60, 79), (150, 169)]), _file(300, [(100, 129)], "y/g.csv")]
    scores = [rng.random(f.n) for f in files]
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        res = sweep(files, scores, profile)
        total = sum(file_raw_score(f, s, res.threshold, profile) for f, s in zip(files, scores))
        assert total == pytest.approx(res.raw)


def test_scores_outside_0_1_are_rejected() -> None:
    f = _file(50, [])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sweep([f], [np.full(50, 1.5)], "standard")
