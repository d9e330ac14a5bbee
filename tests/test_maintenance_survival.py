"""The failure-risk model on synthetic survival data with known parameters, and its edge cases."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from tools.maintenance.survival import FailureRiskModel, RiskInputError, RiskModelWarning

SHAPE, SCALE, HR_HOT = 1.5, 100.0, 3.0  # Weibull shape, scale (days), hazard ratio of "hot" devices


def _synthetic(n: int = 600, seed: int = 0, *, censor_at: float = 120.0) -> pd.DataFrame:
    """Weibull proportional hazards: a binary 'hot' covariate multiplies the hazard by HR_HOT."""
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.5
    # S(t) = exp(-(t/scale)^shape * HR^hot)  =>  t = scale * (E / HR^hot)^(1/shape)
    t = SCALE * (rng.exponential(size=n) / np.where(hot, HR_HOT, 1.0)) ** (1 / SHAPE)
    at = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.uniform(0, 150, n), unit="D")
    return pd.DataFrame({
        "device_id": np.arange(n), "at": at,
        "duration_days": np.minimum(t, censor_at), "event": t <= censor_at,
        "temperature_celsius_level": hot * 3.0 + rng.normal(0, 0.2, n),
        "temperature_celsius_trend": hot * 0.8, "temperature_celsius_trend_z": rng.normal(0, 1, n),
        "device_type": "pos_terminal", "firmware_version": "1.0",
        "age_days": rng.uniform(100, 900, n), "days_since_repair": rng.uniform(10, 300, n),
    })


@pytest.fixture(scope="module")
def fitted() -> tuple[FailureRiskModel, pd.DataFrame]:
    df = _synthetic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RiskModelWarning)
        return FailureRiskModel(val_fraction=0.3).fit(df), df


def test_recovers_the_hazard_ratio_of_the_covariate(fitted) -> None:
    model, df = fitted
    model_cox = FailureRiskModel(candidates=("cox_ph",)).fit(df)
    hr_per_unit = model_cox.summary.loc["temperature_celsius_level", "hazard_ratio"]
    assert hr_per_unit ** 3.0 == pytest.approx(HR_HOT, rel=0.35)  # level 3.0 <=> hot
    assert model.kind_ in ("weibull_aft", "cox_ph")
    assert set(model.validation_["models"]) == {"weibull_aft", "cox_ph"}


def test_weibull_aft_recovers_shape_and_scale() -> None:
    df = _synthetic(1500, seed=3)
    m = FailureRiskModel(candidates=("weibull_aft",)).fit(df)
    rho = float(np.exp(m.model_.params_.loc["rho_"].iloc[0]))
    assert rho == pytest.approx(SHAPE, rel=0.15)
    cold = df[df.temperature_celsius_level < 1.5].head(50)
    # median of the cold group: scale * ln2^(1/shape)
    assert np.median(m.predict_median(cold)) == pytest.approx(SCALE * np.log(2) ** (1 / SHAPE), rel=0.25)


def test_probabilities_are_monotone_in_the_horizon_and_hot_devices_rank_first(fitted) -> None:
    model, df = fitted
    risk = model.predict_risk(df)
    assert (risk.p_fail_7d <= risk.p_fail_30d).all()
    assert risk.p_fail_30d.between(0, 1).all()
    hot = df.temperature_celsius_level > 1.5
    assert risk.loc[hot, "p_fail_30d"].mean() > 2 * risk.loc[~hot, "p_fail_30d"].mean()
    assert (risk.rul_low_days <= risk.rul_median_days).all() and (risk.rul_median_days <= risk.rul_high_days).all()


def test_factors_are_sentences_with_units(fitted) -> None:
    model, df = fitted
    hot_row = df[df.temperature_celsius_level > 2].head(1)
    factors = model.explain(hot_row)[0]
    assert any("temperature" in f and "above" in f for f in factors)


def test_calibration_is_reported(fitted) -> None:
    model, _ = fitted
    rep = model.report()
    assert "brier_raw" in rep["validation"]["30d"]
    assert rep["reliability"]["30d"] and {"mean_predicted", "observed_rate"} <= set(rep["reliability"]["30d"][0])


def test_pickle_round_trip_predicts_the_same(fitted) -> None:
    model, df = fitted
    again = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(again.predict_risk(df.head(20)), model.predict_risk(df.head(20)))


def test_no_failures_falls_back_with_a_clear_warning() -> None:
    df = _synthetic(50)
    df["event"] = False
    with pytest.warns(RiskModelWarning, match="No failures"):
        m = FailureRiskModel().fit(df)
    risk = m.predict_risk(df)
    assert m.kind_ == "kaplan_meier" and (risk.p_fail_30d == 0).all()
    assert "no evidence" in risk.factors.iloc[0][0]


def test_few_failures_single_device_and_constant_covariates_fall_back_to_weibull() -> None:
    df = _synthetic(40, seed=5).head(5).assign(device_id=1)  # one device, a handful of spells
    with pytest.warns(RiskModelWarning):
        m = FailureRiskModel().fit(df)
    assert m.kind_ in ("weibull", "exponential")
    risk = m.predict_risk(df)
    assert (risk.p_fail_7d <= risk.p_fail_30d).all()
    const = _synthetic(200, seed=6)
    for c in ("temperature_celsius_level", "temperature_celsius_trend_z", "age_days", "days_since_repair"):
        const[c] = 1.0
    with pytest.warns(RiskModelWarning, match="constant"):
        m2 = FailureRiskModel().fit(const)
    assert m2.kind_ == "weibull" and "constant" in m2.warning_


def test_bad_input_says_how_to_fix_it() -> None:
    with pytest.raises(RiskInputError, match="simulate"):
        FailureRiskModel().fit(pd.DataFrame())
    df = _synthetic(20)
    df.loc[0, "duration_days"] = -1
    with pytest.raises(RiskInputError, match="duration_days"):
        FailureRiskModel().fit(df)
    with pytest.raises(RiskInputError, match="fit"):
        FailureRiskModel().predict_risk(df)


def test_wear_projection_says_how_far_and_how_soon_a_metric_reaches_the_failure_level() -> None:
    """Fans in the training history failed ~600 rpm below their healthy speed; this one is 300 rpm
    down and losing 20 rpm a day: halfway there, 15 days to go. Its healthy twin projects nothing."""
    from tools.maintenance.survival import learn_failure_levels, wear_projection

    history = pd.DataFrame({"device_type": "gateway", "event": True, "duration_days": [1.0, 2.0, 3.0, 40.0],
                            "fan_speed_rpm_level": [12.0, 10.0, 11.0, 9.0],
                            "fan_speed_rpm_drift": [-580.0, -600.0, -620.0, -100.0]})
    levels = learn_failure_levels(history)
    assert levels == {("gateway", "fan_speed_rpm"): pytest.approx(600.0)}
    now = pd.DataFrame({"device_type": ["gateway", "gateway"], "fan_speed_rpm_level": [8.0, 0.3],
                        "fan_speed_rpm_drift": [-300.0, -5.0], "fan_speed_rpm_trend": [-20.0, 0.1],
                        "fan_speed_rpm_trend_z": [6.0, -0.1]})
    frac, days = wear_projection(now, levels, cap_days=120.0)
    assert frac[0] == pytest.approx(0.5) and days[0] == pytest.approx(15.0)
    assert frac[1] == 0.0 and days[1] == 120.0


def test_rul_agrees_with_the_horizon_probabilities() -> None:
    """A device 98% likely to fail within 30 days cannot have a 10-year median RUL: the calibrated
    probabilities fix which side of 7 and 30 days each RUL percentile lies on; a survival value
    already on the right side is kept."""
    from tools.maintenance.survival import coherent_percentile

    p7, p30 = np.array([0.6, 0.1, 0.1, 0.01]), np.array([0.98, 0.6, 0.3, 0.02])
    from_survival = np.array([3650.0, 20.0, 100.0, 5.0])
    median = coherent_percentile(from_survival, p7, p30, 0.5, 7, 30)
    assert 0 < median[0] <= 7  # P(7 d) >= 0.5: half the curve is gone by day 7
    assert median[1] == 20.0 and median[2] == 100.0  # already consistent: unchanged
    assert 30 < median[3] < 3650  # P(30 d) 2%: not within a month, yet not "never"
    low = coherent_percentile(from_survival, p7, p30, 0.9, 7, 30)
    high = coherent_percentile(from_survival, p7, p30, 0.1, 7, 30)
    assert (low <= 30)[:2].all() and high[0] <= 30 and (high[1:] > 30).all()


def test_risk_rows_never_contradict_their_own_probabilities(fitted) -> None:
    model, df = fitted
    risk = model.predict_risk(df)
    assert not ((risk.p_fail_30d >= 0.5) & (risk.rul_median_days > 30)).any()
    assert not ((risk.p_fail_30d < 0.5) & (risk.rul_median_days <= 30)).any()
    assert not ((risk.p_fail_7d >= 0.5) & (risk.rul_median_days > 7)).any()


def test_the_decision_threshold_favours_precision() -> None:
    """Calibrated probabilities in four bands: F1 takes the 0.3 band in (more failures caught),
    the precision-weighted cut (beta 0.5) stops at 0.6, where 9 in 10 calls are right."""
    from tools.maintenance.survival import _best_f1_threshold

    p = np.repeat([0.05, 0.3, 0.6, 0.9], 10)
    y = np.concatenate([np.zeros(10), np.r_[np.ones(5), np.zeros(5)], np.r_[np.ones(8), np.zeros(2)],
                        np.r_[np.ones(10)]]).astype(int)
    assert _best_f1_threshold(p, y, beta=1.0) == pytest.approx(0.3)
    assert _best_f1_threshold(p, y) == pytest.approx(0.6)
