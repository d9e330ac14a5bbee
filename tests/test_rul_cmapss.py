"""RUL regression: causal features, targets, the PHM08 score and a small end-to-end fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tools.maintenance.rul_seq import engine_windows, torch_available
from tools.maintenance.rul import (
    RULInputError,
    RULRegressor,
    phm_score,
    rmse,
    rul_targets,
    trajectory_features,
)

SENSORS = ("s2", "s3")


def _fleet(n_units: int = 12, seed: int = 0) -> pd.DataFrame:
    """Synthetic run-to-failure engines: s2 rises as the engine wears out, s3 is noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(1, n_units + 1):
        life = int(rng.integers(80, 160))
        cycles = np.arange(1, life + 1)
        wear = np.maximum(0, cycles - (life - 100)) / 100.0  # degradation starts 100 cycles before failure
        s2 = 640 + 5 * wear ** 2 + rng.normal(0, 0.1, life)
        s3 = 1590 + rng.normal(0, 1, life)
        rows.append(pd.DataFrame({"unit": unit, "cycle": cycles, "s2": s2, "s3": s3}))
    return pd.concat(rows, ignore_index=True)


def test_features_of_a_cycle_ignore_later_cycles_and_other_engines() -> None:
    df = _fleet(4)
    full = trajectory_features(df, SENSORS).set_index(["unit", "cycle"])
    # Truncate engine 2 at cycle 40 and perturb every other engine: engine 2's first 40 rows must not move.
    cut = df[(df.unit != 2) | (df.cycle <= 40)].copy()
    cut.loc[cut.unit != 2, ["s2", "s3"]] += 1000.0
    part = trajectory_features(cut, SENSORS).set_index(["unit", "cycle"])
    pd.testing.assert_frame_equal(part.loc[2], full.loc[2].loc[:40])


def test_targets_are_capped_for_training_only() -> None:
    df = pd.DataFrame({"unit": [1] * 200, "cycle": np.arange(1, 201)})
    assert rul_targets(df, 125).max() == 125
    assert rul_targets(df, None).max() == 199
    assert rul_targets(df, 125).iloc[-1] == 0


def test_phm_score_punishes_late_more_than_early() -> None:
    truth = np.array([50.0])
    assert phm_score(truth + 10, truth) > phm_score(truth - 10, truth) > 0
    assert phm_score(truth, truth) == 0
    assert rmse(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == pytest.approx(1.0)


def test_fit_predicts_one_value_per_engine_and_learns_wear() -> None:
    train, test = _fleet(15, seed=1), _fleet(6, seed=2)
    model = RULRegressor(sensors=SENSORS, n_folds=3, seed=0, learning_rate=0.2, sequence=None, n_threads=1).fit(train)
    # cut each test engine 30 cycles before its failure
    last = test.groupby("unit")["cycle"].transform("max")
    cut = test[test.cycle <= last - 30]
    pred = model.predict(cut)
    assert list(pred.index) == sorted(cut.unit.unique())
    assert rmse(pred.to_numpy(), np.full(len(pred), 30.0)) < 20
    again = RULRegressor(sensors=SENSORS, n_folds=3, seed=0, learning_rate=0.2, sequence=None, n_threads=1).fit(train).predict(cut)
    np.testing.assert_allclose(pred.to_numpy(), again.to_numpy())  # deterministic


def test_bad_input_says_how_to_fix_it() -> None:
    with pytest.raises(RULInputError, match="sensors="):
        trajectory_features(pd.DataFrame({"unit": [1], "cycle": [1]}), SENSORS)
    df = _fleet(2)
    df.loc[3, "s2"] = np.nan
    with pytest.raises(RULInputError, match="isna"):
        trajectory_features(df, SENSORS)
    with pytest.raises(RULInputError, match="fit"):
        RULRegressor().predict(df)


def test_windows_end_at_their_cycle_and_pad_short_histories_with_the_first_cycle() -> None:
    df = _fleet(3)
    lo, hi = df[list(SENSORS)].min().to_numpy(), df[list(SENSORS)].max().to_numpy()
    wins, idx = engine_windows(df, SENSORS, 5, lo, hi)
    assert wins.shape == (len(df), 5, len(SENSORS) + 1) and list(idx) == list(df.index)
    unit1 = df[df.unit == 1]
    scaled = (unit1[list(SENSORS)].to_numpy() - lo) / (hi - lo) * 2 - 1
    np.testing.assert_allclose(wins[9, :, :2], scaled[5:10], rtol=1e-5)  # cycles 6..10 end at row of cycle 10
    np.testing.assert_allclose(wins[1, :, :2], scaled[[0, 0, 0, 0, 1]], rtol=1e-5)  # cycle 2: padded with cycle 1
    last, last_idx = engine_windows(df, SENSORS, 5, lo, hi, last_only=True)
    assert len(last) == 3 and list(df.loc[last_idx, "cycle"]) == list(df.groupby("unit")["cycle"].max())


@pytest.mark.skipif(not torch_available(), reason="torch is optional (pip install .[rul])")
def test_tree_and_window_mlp_blend_is_deterministic_and_learns_wear() -> None:
    train, test = _fleet(15, seed=1), _fleet(6, seed=2)
    last = test.groupby("unit")["cycle"].transform("max")
    cut = test[test.cycle <= last - 30]
    kw = dict(sensors=SENSORS, n_folds=3, seed=0, learning_rate=0.2, sequence="mlp", seq_window=10, seq_epochs=6,
              seq_seeds=1, n_threads=1)
    model = RULRegressor(**kw).fit(train)
    assert model.sequence == "mlp" and len(model.seq_model_.models_) == 3  # one per fold
    pred = model.predict(cut)
    assert list(pred.index) == sorted(cut.unit.unique())
    assert rmse(pred.to_numpy(), np.full(len(pred), 30.0)) < 25
    assert not np.allclose(model.oof_.to_numpy(), model.oof_trees_.to_numpy())  # the MLP really takes part
    np.testing.assert_allclose(pred.to_numpy(), RULRegressor(**kw).fit(train).predict(cut).to_numpy())
    every = model.predict(cut, last_only=False)
    assert len(every) == len(cut)
    np.testing.assert_allclose(every.groupby(cut.loc[every.index, "unit"]).last().to_numpy(), pred.to_numpy())


def test_unknown_sequence_model_is_refused_in_one_sentence() -> None:
    with pytest.raises(RULInputError, match="sequence must be"):
        RULRegressor(sequence="lstm")


def test_without_torch_auto_falls_back_to_trees_and_mlp_says_how_to_install(monkeypatch) -> None:
    import tools.maintenance.rul_seq as rul_seq

    monkeypatch.setattr(rul_seq, "torch_available", lambda: False)
    assert RULRegressor(sequence="auto").sequence is None
    with pytest.raises(RULInputError, match=r"pip install \.\[rul\]"):
        RULRegressor(sequence="mlp")


def test_bench_table_puts_ours_beside_the_anchors_and_judges_the_goal() -> None:
    from evals.bench.cmapss import ANCHORS, format_table

    result = {"model": "LightGBM", "rmse": 11.9, "phm_score": 240.0, "rmse_truth_capped": 10.8, "train_seconds": 80.0,
              "train_cpu_seconds": 90.0, "cv_rmse": 12.4, "cv_phm_per_100": 215.0,
              "note": "torch is not installed, so this is the LightGBM-only model"}
    table = format_table(result)
    assert all(name in table for name, *_ in ANCHORS)
    assert "goal RMSE <= 12.0, score <= 250.0: met" in table and "note: torch is not installed" in table
    assert "NOT met" in format_table({**result, "phm_score": 251.0})
