"""Fleet risk from the store: landmarks without look-ahead, save/load, ranking, persistence, tool, CLI."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta

import pandas as pd
import pytest

from tools.maintenance.features import build_landmarks, ts_param
from tools.maintenance.fleet import (
    fit_fleet_model,
    load_model,
    predict_fleet,
    rank_fleet,
    save_model,
)
from tools.store.bulk import read_frame
from tools.store.engine import open_store

END = datetime(2025, 3, 1)


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory):
    from tools.simulator import simulate_fleet

    path = tmp_path_factory.mktemp("fleet") / "fleet.db"
    store = open_store(f"sqlite:///{path}")
    simulate_fleet(store, devices=14, days=45, interval="1h", seed=3, end=END, failure_scale=4.0, min_failures=2)
    yield store
    store.dispose()


def test_landmark_features_use_only_the_past(fleet_store) -> None:
    cut = END - timedelta(days=10)
    early = build_landmarks(fleet_store, until=cut, at_only=True).set_index("device_id")
    later = build_landmarks(fleet_store, until=END, step_days=2).set_index("device_id")
    same_time = later[later["at"] == pd.Timestamp(cut)]
    cols = [c for c in early.columns if c.endswith(("_level", "_trend_z", "error_logs_7d"))]
    assert len(same_time) > 0
    pd.testing.assert_frame_equal(early.loc[same_time.index, cols], same_time[cols], check_dtype=False)


def test_landmark_outcomes_are_censored_at_the_end(fleet_store) -> None:
    lm = build_landmarks(fleet_store, until=END, step_days=2)
    assert (lm["at"] + pd.to_timedelta(lm["duration_days"], unit="D") <= pd.Timestamp(END) + timedelta(seconds=1)).all()
    assert lm["event"].any() and (~lm["event"]).any()


def test_fit_save_load_predict_round_trip(fleet_store) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_fleet_model(fleet_store, END)
    save_model(fleet_store, model, END)
    loaded, fitted_at = load_model(fleet_store)
    assert fitted_at == END and loaded.kind_ == model.kind_
    a, b = predict_fleet(fleet_store, model, END), predict_fleet(fleet_store, loaded, END)
    pd.testing.assert_frame_equal(a.drop(columns=["factors"]), b.drop(columns=["factors"]))
    assert (a["p_fail_7d"] <= a["p_fail_30d"]).all()
    assert a["factors"].map(lambda f: isinstance(f, list) and len(f) >= 1).all()


def test_rank_fleet_persists_then_reuses_predictions(fleet_store) -> None:
    ranked = rank_fleet(fleet_store, END, top=5, horizon=30, refit=True)
    assert len(ranked) == 5 and ranked["p_fail_30d"].is_monotonic_decreasing
    stored = read_frame(fleet_store, "SELECT COUNT(DISTINCT device_id) AS n FROM ai_predictions WHERE predicted_at >= :t",
                        {"t": ts_param(fleet_store, END)})
    assert int(stored["n"].iloc[0]) == 14
    again = rank_fleet(fleet_store, END, top=5, horizon=30)
    assert again.attrs["source"] == "stored predictions"
    assert list(again["device_id"]) == list(ranked["device_id"])
    with pytest.raises(ValueError, match="7 or 30"):
        rank_fleet(fleet_store, END, horizon=14)


def test_agent_tools_answer_with_probabilities_and_reasons(fleet_store) -> None:
    from tools.config import load_settings
    from tools.registry import ToolContext, call_tool

    ctx = ToolContext(store=fleet_store, settings=load_settings().replace(now=END.isoformat()), audit=False)
    res = call_tool(ctx, "fleet_risk_ranking", {"top_n": 3, "horizon_days": 7})
    assert res.status == "ok" and res.rows == 3
    first = res.data[0]
    assert 0 <= first["p_fail_7d"] <= first["p_fail_30d"] <= 1 and first["factors"]
    one = call_tool(ctx, "maintenance_risk", {"device": first["device"]})
    assert one.status == "ok" and one.data["device"] == first["device"]
    site = call_tool(ctx, "fleet_risk_ranking", {"scope": "site", "target": first["site"], "top_n": 50})
    assert site.status == "ok" and {r["site"] for r in site.data} == {first["site"]}
    bad = call_tool(ctx, "maintenance_risk", {"device": "no such device xyz"})
    assert bad.status == "error" and "Traceback" not in (bad.error or "")


def test_cli_risk_json(fleet_store, monkeypatch) -> None:
    from click.testing import CliRunner

    from app.cli.maintenance_cmds import risk

    monkeypatch.setenv("HOMEPOT_AI_DATABASE_URL", str(fleet_store.url))
    monkeypatch.setenv("HOMEPOT_AI_NOW", END.isoformat())
    out = CliRunner().invoke(risk, ["--top", "3", "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(payload["devices"]) == 3 and payload["horizon_days"] == 30


def test_two_week_fixture_fleet_gets_a_fallback_answer_not_a_crash(tmp_path) -> None:
    """Regression: a 14-day history left no training landmark and build_landmarks read from NaT."""
    from tools.config import load_settings
    from tools.registry import ToolContext, call_tool
    from tools.simulator.fixture import populate_fixture_db

    end = datetime(2026, 11, 20, 12)
    store = open_store(f"sqlite:///{tmp_path / 'short.db'}")
    populate_fixture_db(store, seed=42, devices=8, end=end)
    ctx = ToolContext(store=store, settings=load_settings().replace(now=end.isoformat()), audit=False)
    ranked = call_tool(ctx, "fleet_risk_ranking", {"top_n": 3})
    assert ranked.status == "ok", ranked.error
    assert all(0 <= r["p_fail_7d"] <= r["p_fail_30d"] <= 1 for r in ranked.data)
    one = call_tool(ctx, "maintenance_risk", {"device": ranked.data[0]["device"]})
    assert one.status == "ok" and one.data["factors"]


def test_a_history_of_hours_says_it_is_too_short(tmp_path) -> None:
    from tools.maintenance.survival import RiskInputError
    from tools.simulator import simulate_fleet

    end = datetime(2026, 1, 10)
    store = open_store(f"sqlite:///{tmp_path / 'tiny.db'}")
    simulate_fleet(store, devices=3, days=0.2, interval="1h", seed=1, end=end)
    with pytest.raises(RiskInputError, match="too short|No devices"):
        fit_fleet_model(store, end)


def test_wear_features_measure_drift_from_the_healthy_level_and_the_slope() -> None:
    """A battery losing 0.8 points a day for 20 days after 40 healthy days, beside a healthy twin."""
    import numpy as np

    from tools.maintenance.features import _rolling_features

    rng = np.random.default_rng(0)
    days = np.arange(60)
    wearing = 90 - 0.8 * np.clip(days - 40, 0, None) + rng.normal(0, 0.3, 60)
    healthy = 90 + rng.normal(0, 0.3, 60)
    panel = pd.DataFrame({"device_id": np.repeat([1, 2], 60), "k": np.tile(days, 2),
                          "battery_health_percent": np.r_[wearing, healthy],
                          "error_logs": 0.0, "failed_checks": 0.0, "checks": 48.0})
    f = _rolling_features(panel).set_index(["device_id", "k"])
    worn, twin = f.loc[(1, 60)], f.loc[(2, 60)]
    # last 3 days (k 57-59) average ~ 90 - 0.8 * 18 = 75.6: about 14 points below the healthy week
    assert worn["battery_health_percent_drift"] == pytest.approx(-14.4, abs=1.0)
    assert worn["battery_health_percent_trend"] == pytest.approx(-0.8, abs=0.1)
    assert worn["battery_health_percent_level"] > 10 * max(twin["battery_health_percent_level"], 1.0)
    assert worn["battery_health_percent_trend_z"] > 5 > twin["battery_health_percent_trend_z"]


def test_wear_factors_read_like_an_engineer_wrote_them() -> None:
    from tools.maintenance.survival import FailureRiskModel

    m = FailureRiskModel()
    m.kind_, m.firmware_ratio_ = "weibull_aft", {}
    row = pd.Series({"battery_health_percent_trend": -0.8, "battery_health_percent_now": 61.2,
                     "fan_speed_rpm_drift": 240.0, "fan_speed_rpm_level": 12.0, "fan_speed_rpm_now": 2100.0})
    trend = m._describe("battery_health_percent_trend_z", row, 1.0)
    level = m._describe("fan_speed_rpm_level", row, 1.0)
    assert trend.startswith("battery health 61.2% and falling 0.8%/day over 14 days")
    assert level.startswith("fan speed at 2100 rpm, 240 rpm above its healthy level")
