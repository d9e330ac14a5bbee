"""Survival data from the store: landmark rows of device covariates + degradation features.

A *landmark* is a (device, time L) pair. Its covariates use only data up to L: device type, age
at L, firmware, site, and degradation features from the previous days of metrics, error logs and
health checks. Its outcome is the time from L to the device's next failure (``ai_device_events``,
``event_type='failure'``), right-censored at the end of the data. Landmarks inside a failure
(between the failure and the repair/replacement that ends it) are skipped: the device is down.
Several landmarks per device (one every ``step_days``) turn a small fleet with a few failures into
enough rows for a survival fit; the same function builds the one landmark per device at "now"
that ``predict`` scores.

Degradation features are per-device, in units of the device's own day-to-day noise, so that
"hot" means hot for this device (see ``_rolling_features``): drift away from the device's
healthiest week of the last two months (``_level``), slopes over 14 and 30 days (``_trend_z``,
``_trend30_z``), error-log counts and their trend, and the share of failed health checks.
Aggregation to daily means is done once per device-day, so the cost is one read of the metrics.
"""

from __future__ import annotations

import warnings
from datetime import datetime

import numpy as np
import pandas as pd

from tools.store.bulk import read_frame
from tools.store.engine import Store

#: Metrics whose degradation precedes failures, with units and the direction that means "worse".
DEGRADATION_METRICS: dict[str, tuple[str, int]] = {
    "temperature_celsius": ("°C", +1),
    "fan_speed_rpm": ("rpm", -1),
    "disk_io_wait_ms": ("ms", +1),
    "smart_reallocated_sectors": ("sectors", +1),
    "error_rate": ("", +1),
    "memory_percent": ("%", +1),
    "swap_used_mb": ("MB", +1),
    "gc_pause_ms": ("ms", +1),
    "battery_health_percent": ("%", -1),
    "battery_voltage_v": ("V", -1),
    "packet_loss_percent": ("%", +1),
    "tcp_retransmits": ("", +1),
    "network_latency_ms": ("ms", +1),
    "card_reader_errors": ("", +1),
    "printer_errors": ("", +1),
    "printer_head_temp_celsius": ("°C", +1),
    "humidity_percent": ("%", +1),
    "payment_auth_latency_ms": ("ms", +1),
    "signal_strength_dbm": ("dBm", -1),
    "disk_percent": ("%", +1),
    "app_heap_mb": ("MB", +1),
    "db_query_ms": ("ms", +1),
    "motor_temp_celsius": ("°C", +1),
    "vibration_mm_s": ("mm/s", +1),
}

BASELINE_DAYS = 14
TREND_DAYS = 14
LONG_TREND_DAYS = 30
REFERENCE_DAYS = 60


def ts_param(store: Store, ts) -> object:
    """A timestamp bound the way the column stores it (SQLite: the bulk writer's text format)."""
    from tools.store.bulk import SQLITE_TS_FORMAT

    t = pd.Timestamp(ts).to_pydatetime()
    return t.strftime(SQLITE_TS_FORMAT) if store.is_sqlite else t


def _naive(ts) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def load_devices(store: Store) -> pd.DataFrame:
    """Device covariates: id, public id, type, firmware, site, install time."""
    df = read_frame(store, "SELECT d.id, d.device_id, d.name, d.device_type, d.firmware_version, d.site_id, "
                           "d.created_at, s.name AS site_name FROM devices d LEFT JOIN sites s ON s.id = d.site_id",
                    parse_dates=["created_at"])
    df["firmware_version"] = df["firmware_version"].fillna("unknown").astype(str)
    df["device_type"] = df["device_type"].fillna("unknown").astype(str)
    return df


def load_events(store: Store, until: datetime | None = None) -> pd.DataFrame:
    """Failure / repair / replacement events (the survival labels), up to ``until``."""
    sql = ("SELECT device_id, event_type, timestamp, cause FROM ai_device_events "
           "WHERE event_type IN ('failure', 'repair', 'replacement')")
    params: dict = {}
    if until is not None:
        sql += " AND timestamp <= :until"
        params["until"] = ts_param(store, until)
    ev = read_frame(store, sql + " ORDER BY device_id, timestamp", params, parse_dates=["timestamp"])
    return ev


def _day_index_sql(store: Store, column: str) -> str:
    """SQL for floor((column - :origin) / 1 day): day bins aligned to the landmark clock."""
    if store.is_sqlite:
        return f"(CAST(julianday({column}) - julianday(:origin) + 100000 AS INTEGER) - 100000)"
    return f"CAST(floor(extract(epoch FROM ({column} - CAST(:origin AS timestamp))) / 86400) AS integer)"


def daily_panel(store: Store, devices: pd.DataFrame, start: datetime, origin: datetime) -> pd.DataFrame:
    """Per (device_id, k): daily means of the degradation metrics, error-log counts and health checks.

    Bin ``k`` covers ``[origin + k days, origin + (k + 1) days)``; every landmark sits on a bin edge,
    so "the bins before the landmark" is exactly "the data before it" (no partial-day look-ahead).
    Error logs and health checks are counted in SQL; metrics are read once through ``metrics_io``.
    """
    from tools.store.metrics_io import load_metrics_wide

    metrics = list(DEGRADATION_METRICS)
    wide = load_metrics_wide(store, start=start, end=origin, metrics=metrics)
    if wide.empty:
        m = pd.DataFrame(columns=["device_id", "k", *metrics])
    else:
        ts = pd.to_datetime(wide["timestamp"])
        wide["k"] = ((ts - pd.Timestamp(origin)) // pd.Timedelta(days=1)).astype(int)
        m = wide.groupby(["device_id", "k"], sort=True)[metrics].mean().reset_index()
    params = {"s": ts_param(store, start), "e": ts_param(store, origin), "origin": ts_param(store, origin)}
    dev_expr = ("json_extract(context, '$.device_id')" if store.is_sqlite
                else "CAST(context AS jsonb) ->> 'device_id'")
    errs = read_frame(store, f"SELECT {dev_expr} AS public_id, {_day_index_sql(store, 'timestamp')} AS k, "
                             f"COUNT(*) AS error_logs FROM error_logs WHERE timestamp >= :s AND timestamp < :e "
                             f"GROUP BY 1, 2", params)
    hc = read_frame(store, f"SELECT device_id, {_day_index_sql(store, 'timestamp')} AS k, "
                           f"SUM(CASE WHEN is_healthy THEN 0 ELSE 1 END) AS failed_checks, COUNT(*) AS checks "
                           f"FROM health_checks WHERE timestamp >= :s AND timestamp < :e GROUP BY 1, 2", params)
    errs["device_id"] = errs["public_id"].map(dict(zip(devices["device_id"], devices["id"])))
    errs = errs.dropna(subset=["device_id"])
    panel = m.set_index(["device_id", "k"])
    for df, cols in ((errs, ["error_logs"]), (hc, ["failed_checks", "checks"])):
        if df.empty:
            for c in cols:
                panel[c] = 0.0
            continue
        df = df.astype({"device_id": int, "k": int}).groupby(["device_id", "k"])[cols].sum()
        panel = panel.join(df, how="outer")
    panel = panel.reset_index()
    panel[["error_logs", "failed_checks", "checks"]] = panel[["error_logs", "failed_checks", "checks"]].fillna(0.0)
    return panel


def _windows(a: np.ndarray, window: int) -> np.ndarray:
    """Trailing windows along axis 1 (``[..., j, :]`` = columns ``j - window + 1 .. j``), NaN-padded."""
    pad = np.full(a.shape[:-1] + (window - 1,), np.nan)
    return np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, a], axis=-1), window, axis=-1)


def _rsum(a: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing-window sum of the non-NaN values along axis 1, and how many there were."""
    v = np.where(np.isnan(a), 0.0, a)
    n = (~np.isnan(a)).astype(float)
    cs = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(v, axis=-1)], axis=-1)
    cn = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(n, axis=-1)], axis=-1)
    lo = np.maximum(np.arange(1, a.shape[-1] + 1) - window, 0)
    hi = np.arange(1, a.shape[-1] + 1)
    return cs[..., hi] - cs[..., lo], cn[..., hi] - cn[..., lo]


def _rmean(a: np.ndarray, window: int, min_periods: int = 1) -> np.ndarray:
    s, n = _rsum(a, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= min_periods, s / np.maximum(n, 1), np.nan)


def _rslope(a: np.ndarray, window: int, min_n: int) -> np.ndarray:
    """Least-squares slope (units per bin) over the trailing ``window`` bins, NaN bins skipped."""
    k = np.broadcast_to(np.arange(a.shape[-1], dtype=float), a.shape)
    kv = np.where(np.isnan(a), np.nan, k)
    n = _rsum(a, window)[1]
    sk = _rsum(kv, window)[0]
    skk = _rsum(kv * kv, window)[0]
    sx = _rsum(a, window)[0]
    skx = _rsum(kv * a, window)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = np.where(n > 0, n, np.nan)
        var_k = skk / nn - (sk / nn) ** 2
        cov = skx / nn - (sk / nn) * (sx / nn)
        return np.where((n >= min_n) & (var_k > 1e-9), cov / np.where(var_k > 1e-9, var_k, 1.0), np.nan)


def _rolling_features(panel: pd.DataFrame) -> pd.DataFrame:
    """For every (device, k): degradation features from the bins strictly before k (vectorised).

    Per metric, with ``worse`` the direction that means degradation (``DEGRADATION_METRICS``):

    - ``_level``: how far the last 3 days sit from the device's *healthiest* week in the previous
      ``REFERENCE_DAYS`` (in the worse direction), in units of the device's day-to-day noise. Wear
      shows as drift away from the device's own healthy state; the healthiest week is a baseline
      that neither a slow 30-60 day degradation nor a repair (which restores health) can spoil.
    - ``_trend`` / ``_trend_z``: slope over the last ``TREND_DAYS`` days (units/day; z: the change
      it makes over that span in noise units, signed so + = worse); ``_trend30_z`` the same over
      ``LONG_TREND_DAYS`` (slow wear: a battery losing 0.8 points a day).
    - ``_drift``: the level gap in the metric's own units (for explanations).

    The panel is laid out once as a (device x day) array per metric, so every rolling window is a
    numpy operation over the whole fleet (no per-device Python loop).
    """
    metrics = [m for m in DEGRADATION_METRICS if m in panel.columns]
    if panel.empty:
        return pd.DataFrame(columns=["device_id", "k"])
    devs = np.sort(panel["device_id"].unique())
    k0, k1 = int(panel["k"].min()), int(panel["k"].max()) + 1  # +1: the bin right after the data
    ks = np.arange(k0, k1 + 1)
    rows = np.searchsorted(devs, panel["device_id"].to_numpy())
    cols = panel["k"].to_numpy(int) - k0

    def grid(col: str, fill: float = np.nan) -> np.ndarray:
        g = np.full((len(devs), len(ks)), fill)
        g[rows, cols] = panel[col].to_numpy(float)
        # "bins before k": shift right by one
        return np.concatenate([np.full((len(devs), 1), fill), g[:, :-1]], axis=1)

    out = {"device_id": np.repeat(devs, len(ks)), "k": np.tile(ks, len(devs))}
    for m in metrics:
        sign = float(DEGRADATION_METRICS[m][1])
        prev = grid(m)
        recent = _rmean(prev, 3)
        week = _rmean(prev, 7, min_periods=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows -> NaN, as intended
            best = sign * np.nanmin(_windows(sign * week, REFERENCE_DAYS), axis=-1)
            diffs = np.abs(np.diff(prev, axis=1, prepend=np.nan))
            w = _windows(diffs, REFERENCE_DAYS)
            noise = np.nanmedian(w, axis=-1)
            noise = np.where((~np.isnan(w)).sum(axis=-1) >= 3, noise, np.nan)
        floor = 1e-3 * np.maximum(np.abs(week), 1.0)
        floor = np.where(np.isnan(floor), 1e-3, floor)
        sd = np.maximum(np.where(np.isnan(noise), floor, noise), floor)
        drift = sign * (recent - best)
        out[f"{m}_level"] = (drift / sd).ravel()
        out[f"{m}_drift"] = (recent - best).ravel()
        out[f"{m}_now"] = recent.ravel()
        slope = _rslope(prev, TREND_DAYS, 5)
        out[f"{m}_trend"] = slope.ravel()
        out[f"{m}_trend_z"] = (sign * slope * TREND_DAYS / sd).ravel()
        slope30 = _rslope(prev, LONG_TREND_DAYS, 10)
        out[f"{m}_trend30"] = slope30.ravel()
        out[f"{m}_trend30_z"] = (sign * slope30 * LONG_TREND_DAYS / sd).ravel()
    sums = {}
    for c in ("error_logs", "failed_checks", "checks"):
        prev = grid(c, 0.0) if c in panel.columns else np.zeros((len(devs), len(ks)))
        prev = np.where(np.isnan(prev), 0.0, prev)
        sums[c] = _rsum(prev, 7)[0].ravel()
        sums[c + "_30"] = _rsum(prev, LONG_TREND_DAYS)[0].ravel()
    res = pd.DataFrame(out)
    res["error_logs_7d"] = sums["error_logs"]
    # error-log trend: last week's rate against the three weeks before it (log ratio, smoothed)
    before = np.maximum(sums["error_logs_30"] - sums["error_logs"], 0) * 7.0 / (LONG_TREND_DAYS - 7)
    res["error_logs_trend"] = np.log1p(sums["error_logs"]) - np.log1p(before)
    res["failed_check_share_7d"] = np.where(sums["checks"] > 0, sums["failed_checks"] / np.maximum(sums["checks"], 1), 0.0)
    return res


def build_landmarks(store: Store, *, until: datetime, step_days: int = 2, history_days: float | None = None,
                    at_only: bool = False) -> pd.DataFrame:
    """Landmark rows with covariates and outcome (``duration_days``, ``event``) from data up to ``until``.

    ``at_only``: a single landmark per device at ``until`` (for prediction; outcomes are unknown).
    """
    until = _naive(until)
    devices = load_devices(store)
    if devices.empty:
        return pd.DataFrame()
    first = read_frame(store, "SELECT MIN(timestamp) AS t FROM device_metrics", parse_dates=["t"])["t"].iloc[0]
    if pd.isna(first):
        first = until - pd.Timedelta(days=30)
    start = max(_naive(first), until - pd.Timedelta(days=history_days)) if history_days else _naive(first)
    events = load_events(store, until=until.to_pydatetime())
    fails = events[events["event_type"] == "failure"]
    restores = events[events["event_type"].isin(["repair", "replacement"])]
    if at_only:
        lm = pd.DataFrame({"device_id": devices["id"].to_numpy(), "at": until})
    else:
        # the first landmark leaves a baseline before it; a short history (a 2-week fixture) still
        # gets landmarks from its second half, with features on the shorter baseline it has
        span_days = max((until - start) / pd.Timedelta(days=1), 0.0)
        first_lm = start + pd.Timedelta(days=min(BASELINE_DAYS, span_days / 2))
        n_steps = max(int((until - first_lm) / pd.Timedelta(days=step_days)), 0)
        times = [until - pd.Timedelta(days=step_days * j) for j in range(n_steps, -1, -1)]
        lm = pd.DataFrame([(d, t) for d in devices["id"] for t in times], columns=["device_id", "at"])
    if lm.empty:
        return lm
    # outcome: next failure after `at` (or censoring at `until`); skip landmarks inside a failure
    lm["at"] = pd.to_datetime(lm["at"]).astype("datetime64[ns]")
    lm = lm.sort_values("at").reset_index(drop=True)
    events = events.assign(timestamp=pd.to_datetime(events["timestamp"]).astype("datetime64[ns]"),
                           device_id=events["device_id"].astype(lm["device_id"].dtype))
    fails = events[events["event_type"] == "failure"]
    restores = events[events["event_type"].isin(["repair", "replacement"])]
    f = fails[["device_id", "timestamp"]].rename(columns={"timestamp": "next_failure"}).sort_values("next_failure")
    lm = pd.merge_asof(lm, f, left_on="at", right_on="next_failure", by="device_id", direction="forward",
                       allow_exact_matches=False)
    prev_f = fails[["device_id", "timestamp"]].rename(columns={"timestamp": "prev_failure"}).sort_values("prev_failure")
    lm = pd.merge_asof(lm, prev_f, left_on="at", right_on="prev_failure", by="device_id", direction="backward")
    prev_r = restores[["device_id", "timestamp"]].rename(columns={"timestamp": "prev_restore"}).sort_values("prev_restore")
    lm = pd.merge_asof(lm, prev_r, left_on="at", right_on="prev_restore", by="device_id", direction="backward")
    down = lm["prev_failure"].notna() & (lm["prev_restore"].isna() | (lm["prev_restore"] < lm["prev_failure"]))
    lm["down"] = down
    if not at_only:
        lm = lm[~down]
    end_t = lm["next_failure"].fillna(until)
    lm["event"] = lm["next_failure"].notna() & (lm["next_failure"] <= until)
    lm["duration_days"] = ((end_t - lm["at"]).dt.total_seconds() / 86400.0).clip(lower=1e-3)
    if not at_only:
        lm = lm[(lm["duration_days"] > 0.01)]
    if lm.empty:  # every landmark fell inside a failure or at the very end: nothing to learn from
        return lm.reset_index(drop=True)
    # time since the last failure/restore (a replaced unit is new)
    last_reset = lm["prev_restore"]
    dev = devices.set_index("id")
    installed = lm["device_id"].map(dev["created_at"])
    lm["age_days"] = ((lm["at"] - installed).dt.total_seconds() / 86400.0).fillna(365.0).clip(lower=0)
    lm["days_since_repair"] = ((lm["at"] - last_reset).dt.total_seconds() / 86400.0).fillna(lm["age_days"])
    lm["device_type"] = lm["device_id"].map(dev["device_type"])
    lm["firmware_version"] = lm["device_id"].map(dev["firmware_version"])
    lm["site_name"] = lm["device_id"].map(dev["site_name"]).fillna("unknown")
    lm["public_id"] = lm["device_id"].map(dev["device_id"])
    lm["name"] = lm["device_id"].map(dev["name"])
    lm["k"] = np.round((lm["at"] - until).dt.total_seconds() / 86400.0).astype(int)
    panel_start = (lm["at"].min() - pd.Timedelta(days=REFERENCE_DAYS + 10)).to_pydatetime()
    panel = daily_panel(store, devices, panel_start, until.to_pydatetime())
    feats = _rolling_features(panel)
    out = lm.drop(columns=["prev_failure", "prev_restore"]).merge(feats, on=["device_id", "k"], how="left")
    return out.reset_index(drop=True)
