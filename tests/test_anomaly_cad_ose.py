"""The CAD OSE port and the NAB ensemble: streaming, causal, and it reacts to a broken pattern."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tools.anomaly.cad_ose import CadOse, cad_ose_causal, cad_ose_nab, cad_ose_raw, py2_tuple_hash, rest_filter
from tools.anomaly.nab_detector import score_ensemble
from tools.config import load_settings


def _periodic(n: int = 1200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 48) + rng.normal(0, 0.2, n)


def test_a_learnt_pattern_stops_surprising_and_a_break_does() -> None:
    x = _periodic()
    x[900:910] = 30.0  # a burst far above the learnt cycle
    det = CadOse(float(x.min()), float(x.max()), rest=0)
    raw = np.array([det.raw_score(v) for v in x])
    assert raw[600:900].mean() < 0.2  # the cycle has been learnt
    assert raw[900:905].max() >= 0.75  # the burst is not predicted


def test_sensor_facts_encode_each_bit_of_the_quantised_value() -> None:
    det = CadOse(0.0, 7.0)
    # level 5 = 0b101: bit 0 set, bit 1 clear, bit 2 set
    assert det.facts_of(5.0) == (65536 + 1, 65536 + 2, 65536 + 5)
    assert det.facts_of(-3.0) == det.facts_of(0.0)  # below the range: lowest level


def test_causal_scores_of_a_prefix_do_not_change_when_the_series_grows() -> None:
    x = _periodic(900)
    full = cad_ose_causal(x, warm=150)
    part = cad_ose_causal(x[:600], warm=150)
    assert np.array_equal(full[:600], part)
    assert np.all(full[:150] == 0.0)  # the range is still being collected


def test_rest_filter_silences_rows_after_a_hot_score() -> None:
    # like CAD OSE, the rest period counts raw scores, so a silenced hot row (index 4,
    # within 3 rows of index 1) still silences the rows after it
    raw = np.array([0.1, 0.9, 0.8, 0.2, 0.95, 0.3, 0.3, 0.9, 0.2, 0.2, 0.2, 0.9])
    out = rest_filter(raw, rest=3)
    assert list(out) == [0.1, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9]


def test_ensemble_is_causal_bounded_and_handles_constant_and_short_series() -> None:
    x = _periodic(800, seed=1)
    x[700] += 20
    full = score_ensemble(x)
    assert np.allclose(full[:650], score_ensemble(x[:650]))
    assert full.min() >= 0 and full.max() <= 1
    assert full[700] == full[650:].max() > 0.5
    assert np.all(np.isfinite(score_ensemble(np.full(300, 4.0))))
    assert len(score_ensemble(np.arange(5.0))) == 5


def test_py2_tuple_hash_is_cpython27s() -> None:
    # well-known CPython 2.7 (64-bit) values; CAD OSE breaks ties between contexts with them
    assert py2_tuple_hash(()) == 3527539
    assert py2_tuple_hash((1, 2)) == 3713081631934410656


def test_nab_run_reproduces_the_published_contextose_row_scores() -> None:
    """NAB's results/contextOSE/realAdExchange/contextOSE_exchange-2_cpc_results.csv (rows
    129-130 and 439: the first two non-zero scores and one after a rest period)."""
    path = load_settings().benchmarks_dir / "nab/data/realAdExchange/exchange-2_cpc_results.csv"
    if not path.exists():
        pytest.skip("NAB corpus not available")
    x = pd.read_csv(path)["value"].to_numpy(dtype=float)
    got = cad_ose_nab(x)
    assert np.all(got[:129] == 0.0)
    assert got[129] == pytest.approx(0.223684210526, abs=1e-11)
    assert got[130] == pytest.approx(0.775883838384, abs=1e-11)
    assert got[439] == pytest.approx(0.707148407148, abs=1e-11)


def test_rest_filter_with_the_seed_history_matches_the_detector() -> None:
    x = _periodic(700, seed=3)
    x[500] = 40.0
    det = CadOse(float(x.min()), float(x.max()), rest=20)
    reported = np.array([det.score(v) for v in x])
    raw = cad_ose_raw(x, float(x.min()), float(x.max()))
    assert np.array_equal(rest_filter(raw, 20, initial=True), reported)
    assert np.all(reported[:20] == 0.0)  # the original seeds its history with 1.0
