"""Fleet maintenance risk from the store: fit, save/load, predict, persist, rank.

The fast path for tools and the CLI: ``rank_fleet`` / ``device_risk`` reuse predictions stored in
``ai_predictions`` when they are fresh (made within ``FRESH_PREDICTIONS`` of ``now``), else load
the newest fitted model from ``ai_models`` (if fitted within ``REFIT_AFTER``) and predict, else
fit a new model on the fleet's history, save it and predict. ``refit=True`` forces a new fit.
"""

from __future__ import annotations

import io
import pickle
import warnings
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tools.maintenance.features import build_landmarks, ts_param
from tools.maintenance.survival import FailureRiskModel, RiskInputError
from tools.store.bulk import insert_frame, read_frame
from tools.store.engine import Store

MODEL_NAME = "failure_risk"
FRESH_PREDICTIONS = timedelta(hours=6)
REFIT_AFTER = timedelta(days=7)


def fit_fleet_model(store: Store, now: datetime, *, step_days: int = 2) -> FailureRiskModel:
    """Fit the failure-risk model on every landmark up to ``now``."""
    lm = build_landmarks(store, until=now, step_days=step_days)
    if lm.empty:
        n_dev = int(read_frame(store, "SELECT COUNT(*) AS n FROM devices")["n"].iloc[0])
        if n_dev == 0:
            raise RiskInputError("No devices in the store; run `homepot-ai simulate` or import data first.")
        raise RiskInputError(f"The history before {pd.Timestamp(now):%Y-%m-%d %H:%M} is too short to fit a failure "
                             "model (it needs a few days of metrics); simulate or import more days.")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model = FailureRiskModel().fit(lm)
    model.fitted_until_ = pd.Timestamp(now).to_pydatetime()
    return model


def save_model(store: Store, model: FailureRiskModel, now: datetime, *, name: str = MODEL_NAME,
               path=None) -> int:
    """Pickle the model into ``ai_models`` (and into ``path`` when given); returns the row id."""
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    if path is not None:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(blob)
    insert_frame(store, "ai_models", pd.DataFrame([{
        "name": name, "kind": model.kind_, "fitted_at": pd.Timestamp(now).to_pydatetime(), "blob": blob,
        "metrics": model.report()}]), json_cols=("metrics",))
    row = read_frame(store, "SELECT MAX(id) AS id FROM ai_models WHERE name = :n", {"n": name})
    return int(row["id"].iloc[0])


def load_model(store: Store, *, name: str = MODEL_NAME) -> tuple[FailureRiskModel, datetime] | None:
    """The newest saved model and when it was fitted, or None."""
    df = read_frame(store, "SELECT blob, fitted_at FROM ai_models WHERE name = :n ORDER BY fitted_at DESC, id DESC "
                           "LIMIT 1", {"n": name}, parse_dates=["fitted_at"])
    if df.empty:
        return None
    blob = df["blob"].iloc[0]
    return pickle.load(io.BytesIO(bytes(blob))), df["fitted_at"].iloc[0].to_pydatetime()


def predict_fleet(store: Store, model: FailureRiskModel, now: datetime) -> pd.DataFrame:
    """One row per device at ``now`` (devices that are down right now are flagged, P = 1)."""
    lm = build_landmarks(store, until=now, at_only=True)
    if lm.empty:
        return pd.DataFrame()
    pred = model.predict_risk(lm)
    down = lm["down"].to_numpy(bool)
    for col in [c for c in pred.columns if c.startswith("p_fail_")]:
        pred.loc[down, col] = 1.0
    pred.loc[down, ["rul_median_days", "rul_low_days", "rul_high_days"]] = 0.0
    pred.loc[down, "factors"] = pd.Series([["device is down now: failed and not yet repaired"]] * int(down.sum()),
                                          index=pred.index[down], dtype=object)
    pred["predicted_at"] = pd.Timestamp(now)
    return pred


def persist_predictions(store: Store, pred: pd.DataFrame, now: datetime) -> int:
    """Write predictions into ``ai_predictions`` (one row per device)."""
    if pred.empty:
        return 0
    rows = pd.DataFrame({
        "device_id": pred["device_id"].astype(int), "predicted_at": pd.Timestamp(now).to_pydatetime(),
        "model": pred["model"].astype(str), "p_fail_7d": pred["p_fail_7d"].astype(float),
        "p_fail_30d": pred["p_fail_30d"].astype(float), "rul_median_days": pred["rul_median_days"].astype(float),
        "rul_low_days": pred["rul_low_days"].astype(float), "rul_high_days": pred["rul_high_days"].astype(float),
        "factors": pred["factors"]})
    insert_frame(store, "ai_predictions", rows, json_cols=("factors",))
    return len(rows)


def _stored_predictions(store: Store, now: datetime) -> pd.DataFrame:
    since = pd.Timestamp(now) - FRESH_PREDICTIONS
    df = read_frame(store, "SELECT p.*, d.device_id AS public_id, d.name, d.device_type, s.name AS site_name "
                           "FROM ai_predictions p JOIN devices d ON d.id = p.device_id "
                           "LEFT JOIN sites s ON s.id = d.site_id "
                           "WHERE p.predicted_at >= :since AND p.predicted_at <= :now "
                           "AND p.predicted_at = (SELECT MAX(q.predicted_at) FROM ai_predictions q "
                           "WHERE q.predicted_at >= :since AND q.predicted_at <= :now)",
                    {"since": ts_param(store, since), "now": ts_param(store, now)},
                    parse_dates=["predicted_at"])
    if not df.empty:
        import json

        df["factors"] = [json.loads(f) if isinstance(f, str) else (f or []) for f in df["factors"]]
        df = df.drop(columns=["id"]).drop_duplicates("device_id", keep="last")
    return df


def current_predictions(store: Store, now: datetime, *, refit: bool = False) -> tuple[pd.DataFrame, str]:
    """Fresh predictions for every device and where they came from (stored | saved model | new fit)."""
    if not refit:
        stored = _stored_predictions(store, now)
        if not stored.empty:
            return stored, "stored predictions"
    loaded = None if refit else load_model(store)
    if loaded is not None and pd.Timestamp(now) - pd.Timestamp(loaded[1]) <= REFIT_AFTER \
            and pd.Timestamp(loaded[1]) <= pd.Timestamp(now):
        model, source = loaded[0], f"saved model fitted {loaded[1]:%Y-%m-%d %H:%M}"
    else:
        model = fit_fleet_model(store, now)
        save_model(store, model, now)
        source = "new fit"
    pred = predict_fleet(store, model, now)
    persist_predictions(store, pred, now)
    return pred, source


def rank_fleet(store: Store, now: datetime, *, top: int = 10, horizon: int = 30,
               refit: bool = False, device_ids: list[int] | None = None) -> pd.DataFrame:
    """Devices to service first: highest P(failure within ``horizon`` days), with the reasons.

    ``device_ids`` (``devices.id``) restricts the ranking to a scope; the model still sees the fleet.
    """
    if horizon not in (7, 30):
        raise RiskInputError(f"horizon must be 7 or 30 days, got {horizon}.")
    pred, source = current_predictions(store, now, refit=refit)
    if device_ids is not None:
        pred = pred[pred["device_id"].astype(int).isin([int(i) for i in device_ids])]
    if pred.empty:
        return pred
    col = f"p_fail_{horizon}d"
    ranked = pred.sort_values([col, "rul_median_days"], ascending=[False, True]).head(max(int(top), 1))
    ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked.attrs["source"] = source
    return ranked


def device_risk(store: Store, now: datetime, device: str | int, *, refit: bool = False) -> dict | None:
    """Risk of one device by public id (``DEVICE-...``), name or integer id; None when unknown."""
    pred, source = current_predictions(store, now, refit=refit)
    if pred.empty:
        return None
    key = str(device)
    hit = pred[(pred["public_id"].astype(str) == key) | (pred["device_id"].astype(str) == key)
               | (pred.get("name", pd.Series(dtype=str)).astype(str).str.lower() == key.lower())]
    if hit.empty:
        return None
    row = hit.iloc[0].to_dict()
    row["source"] = source
    row["predicted_at"] = str(row.get("predicted_at"))
    return row
