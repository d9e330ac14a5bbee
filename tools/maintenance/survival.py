"""The fleet failure-risk model: Weibull AFT vs Cox PH (lifelines), chosen on a time split, calibrated.

Input is a landmark frame (``tools/maintenance/features.build_landmarks``): one row per
(device, time), covariates known at that time, and the outcome ``duration_days`` / ``event``.

``fit`` (returns self):

1. builds the design matrix: degradation z-scores and trends, recent error-log counts, failed
   health-check share, age, days since the last repair, device type, and a firmware *rate ratio*
   (smoothed failures per device-day of that firmware / fleet), so that "firmware 2.0.3 fails 3x as
   often" is both a covariate and an explanation; constant columns are dropped with a warning;
2. splits landmarks by time (the last ``max(horizons) + val_days`` days), censoring training outcomes at the split
   so nothing after it leaks into the fit, fits each candidate and picks the best validation
   c-index (integrated Brier breaks ties);
3. calibrates P(fail within 7 / 30 days) with isotonic regression on the validation landmarks whose
   label is known, and reports Brier scores (raw and calibrated) and a reliability table on
   validation devices the calibrator was not fitted on (``validation_["30d"]["heldout"]``); the
   decision threshold for "fails within h days" (best F1 at 7 days; F-beta 0.5, precision first, at 30) is chosen
   on these validation rows too (on the horizon heads' out-of-fold predictions when those answer);
4. refits the chosen model on all landmarks.

When the data cannot support covariates it says so and falls back, never crashes: no failures at
all -> Kaplan–Meier (every risk 0, "no evidence" rather than "safe"); fewer than ``min_events``
failures or no usable covariate -> a covariate-free Weibull (or exponential) fleet rate.
P(7 days) <= P(30 days) is enforced after calibration, and the RUL percentiles are made to agree
with the calibrated probabilities (``coherent_percentile``).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from tools.maintenance.features import DEGRADATION_METRICS
from tools.maintenance.metrics import brier, c_index, censoring_survival, integrated_brier, reliability_table

HORIZONS: tuple[int, int] = (7, 30)
RUL_CAP_DAYS = 3650.0


class RiskInputError(ValueError):
    """The survival frame cannot be used; the message says how to fix it."""


class RiskModelWarning(UserWarning):
    """The model fell back to a simpler one (too few failures, no usable covariates)."""


REQUIRED = ("device_id", "at", "duration_days", "event")


def _check_input(df: pd.DataFrame, *, outcome: bool) -> None:
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise RiskInputError("No device rows to work with; simulate or import data first "
                             "(homepot-ai simulate --devices 50 --days 60).")
    need = REQUIRED if outcome else REQUIRED[:2]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RiskInputError(f"Columns missing: {missing}; build the frame with "
                             "tools.maintenance.features.build_landmarks(store, until=...).")
    if outcome:
        d = pd.to_numeric(df["duration_days"], errors="coerce")
        if d.isna().any() or np.isinf(d).any() or (d <= 0).any():
            raise RiskInputError("duration_days must be positive and finite; find the bad rows with "
                                 "df[~(df.duration_days > 0) | df.duration_days.isna()].")


def _numeric_columns(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c.endswith(("_level", "_trend_z", "_trend30_z"))]
    return cols + [c for c in ("error_logs_7d", "error_logs_trend", "failed_check_share_7d", "age_days",
                               "days_since_repair") if c in df.columns]


def _fmt(v: float) -> str:
    """A number as an engineer would say it: 3 significant figures, no exponent for normal sizes."""
    v = float(v)
    if v == 0 or 0.01 <= abs(v) < 1e5:
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return f"{v:.2g}"


def _u(unit: str) -> str:
    return "" if not unit else (unit if unit in ("%", "°C") else f" {unit}")


_NAMES = {"temperature_celsius": "temperature", "fan_speed_rpm": "fan speed", "disk_io_wait_ms": "disk I/O wait",
          "smart_reallocated_sectors": "reallocated disk sectors", "battery_health_percent": "battery health",
          "battery_voltage_v": "battery voltage", "packet_loss_percent": "packet loss",
          "tcp_retransmits": "TCP retransmits", "network_latency_ms": "network latency",
          "card_reader_errors": "card-reader errors", "printer_errors": "printer errors",
          "printer_head_temp_celsius": "printer head temperature", "humidity_percent": "humidity",
          "signal_strength_dbm": "signal strength", "disk_percent": "disk use", "app_heap_mb": "app heap",
          "db_query_ms": "database query time", "motor_temp_celsius": "motor temperature",
          "vibration_mm_s": "vibration",
          "payment_auth_latency_ms": "payment auth latency", "memory_percent": "memory use",
          "swap_used_mb": "swap use", "gc_pause_ms": "GC pauses", "error_rate": "error rate"}


def _words(metric: str) -> str:
    return _NAMES.get(metric, metric.replace("_", " "))


#: F-beta of the decision threshold: below 1 weighs precision above recall. Best F1 picked the
#: lowest step of the isotonic curve on some fleets (0.21) and flagged devices due in 5-6 weeks;
#: beta 0.5 on tuning seeds 7/8 cut false 30-day calls from 14 to 6 for 2 of 44 failures missed,
#: with steadier cuts (0.60 and 0.62 where F1 chose 0.24 and 0.30).
THRESHOLD_BETA = 0.5


def _best_f1_threshold(p: np.ndarray, y: np.ndarray, beta: float | None = None) -> float:
    """The probability cut with the best F-beta (``THRESHOLD_BETA``) for "fails within h days"
    (ties: the lower cut)."""
    b2 = float(THRESHOLD_BETA if beta is None else beta) ** 2
    p, y = np.asarray(p, float), np.asarray(y) == 1
    best, best_t = -1.0, 0.5
    for t in np.unique(np.round(p, 4)):
        if t <= 0:
            continue
        pred = p >= t
        tp = float((pred & y).sum())
        f = (1 + b2) * tp / max(b2 * y.sum() + pred.sum(), 1)
        if f > best:
            best, best_t = f, float(t)
    return best_t


def learn_failure_levels(df: pd.DataFrame, *, near_days: float = 4.0, min_z: float = 3.0,
                         min_n: int = 3) -> dict[tuple[str, str], float]:
    """(device type, metric) -> the drift from the healthy level (own units, worse direction) seen
    in the last ``near_days`` before training failures, where that metric had clearly moved.

    Wear in a fleet ends at a similar level per cause (fans fail near the same rpm loss), so how
    far a device has drifted *towards that level*, and how fast, says how close it is to failing.
    """
    if "event" not in df or "duration_days" not in df:
        return {}
    near = df[df["event"].astype(bool) & (df["duration_days"] <= near_days)]
    out: dict[tuple[str, str], float] = {}
    for m, (_unit, sign) in DEGRADATION_METRICS.items():
        if f"{m}_drift" not in near or f"{m}_level" not in near:
            continue
        drift = sign * pd.to_numeric(near[f"{m}_drift"], errors="coerce")
        moved = near[(pd.to_numeric(near[f"{m}_level"], errors="coerce") > min_z) & (drift > 0)]
        for t, g in moved.groupby(moved["device_type"].astype(str)):
            if len(g) >= min_n:
                out[(str(t), m)] = float(np.median(sign * pd.to_numeric(g[f"{m}_drift"], errors="coerce")))
    return out


def wear_projection(df: pd.DataFrame, levels: dict[tuple[str, str], float],
                    cap_days: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the largest share of the way to a failure level any metric has drifted (0-1.5), and
    the fewest days until one reaches it at its 14-day slope (``cap_days`` when none is heading there)."""
    n = len(df)
    frac, proj = np.zeros(n), np.full(n, cap_days)
    types = (df["device_type"].astype(str) if "device_type" in df else pd.Series("unknown", index=df.index)).to_numpy()

    def col(name: str) -> np.ndarray:
        return pd.to_numeric(df[name], errors="coerce").to_numpy(float) if name in df else np.full(n, np.nan)

    for (t, m), level in levels.items():
        sel = types == t
        if not sel.any() or level <= 0:
            continue
        sign = DEGRADATION_METRICS[m][1]
        z, drift = col(f"{m}_level"), sign * col(f"{m}_drift")
        slope, slope_z = sign * col(f"{m}_trend"), col(f"{m}_trend_z")
        moving = sel & (z > 2.0) & np.isfinite(drift)
        frac = np.maximum(frac, np.where(moving, np.clip(drift / level, 0.0, 1.5), 0.0))
        heading = moving & (slope_z > 1.0) & (slope > 0)
        days = np.clip((level - drift) / np.where(heading, slope, 1.0), 0.0, cap_days)
        proj = np.minimum(proj, np.where(heading, days, cap_days))
    return frac, proj


def coherent_percentile(t_model: np.ndarray, p_short: np.ndarray, p_long: np.ndarray, q: float,
                        h_short: float, h_long: float, cap: float = RUL_CAP_DAYS) -> np.ndarray:
    """Days until survival falls to ``q``, made to agree with the calibrated horizon probabilities.

    Why: P(h days) comes from a calibrated classifier and the RUL from the survival curve; they can
    disagree (P(30 d) 0.98 with a median RUL of 10 years). The probabilities are the better
    calibrated numbers, so they fix the bracket the percentile must lie in (S(h) = 1 - P(h) <= q
    means it is reached by day h); the survival model's value is kept when it lies inside, else
    a Weibull curve through the two calibrated points S(h_short), S(h_long) gives it, clipped into
    the bracket.
    """
    t_model = np.asarray(t_model, float)
    s_short = 1.0 - np.clip(np.asarray(p_short, float), 1e-6, 1 - 1e-6)
    s_long = np.minimum(1.0 - np.clip(np.asarray(p_long, float), 1e-6, 1 - 1e-6), s_short)
    H_short = -np.log(s_short)
    H_long = np.maximum(-np.log(s_long), H_short * 1.0001)
    k = np.clip(np.log(H_long / H_short) / np.log(h_long / h_short), 0.3, 5.0)
    # past h_long, a shape below 1 would extrapolate a falling hazard for years: hold it at 1
    k = np.where(s_long > q, np.maximum(k, 1.0), k)
    t_curve = h_long * (-np.log(q) / H_long) ** (1.0 / k)
    lo = np.where(s_short <= q, 0.0, np.where(s_long <= q, h_short, h_long))
    hi = np.where(s_short <= q, h_short, np.where(s_long <= q, h_long, cap))
    inside = np.isfinite(t_model) & (t_model > lo) & (t_model <= hi)
    return np.where(inside, t_model, np.clip(t_curve, np.maximum(lo, 0.1), hi))


class FailureRiskModel:
    """P(failure within 7 / 30 days), median RUL with an interval, and the reasons, per device.

    Parameters
    ----------
    candidates : model names to try, from ``"weibull_aft"`` and ``"cox_ph"``.
    penalizer : L2 penalty of the lifelines fitters (many correlated degradation features).
    min_events : fewer failures than this -> covariate-free fallback.
    val_fraction : share of the landmark time range held out when the history is too short for
        ``max(horizons) + val_days`` days of validation with complete follow-up.
    boundary_weight : weight of horizon-head training landmarks whose outcome falls between 0.7
        and 1.5 horizons away (fails on day 25 or 40 of a 30-day call): the calls the head gets
        wrong most; 3 cut false 30-day calls at the F1 cut by 30% on tuning seeds 7/8.
    """

    def __init__(self, *, candidates: Sequence[str] = ("weibull_aft", "cox_ph"), penalizer: float = 0.05,
                 min_events: int = 8, val_fraction: float = 0.3, val_days: int = 21, horizons: tuple[int, int] = HORIZONS,
                 horizon_head: str = "gbm", boundary_weight: float = 3.0) -> None:
        self.candidates = tuple(candidates)
        self.penalizer = penalizer
        self.min_events = min_events
        self.val_fraction = val_fraction
        self.val_days = val_days
        self.horizons = horizons
        self.horizon_head = horizon_head
        self.boundary_weight = boundary_weight

    def __repr__(self) -> str:
        if not hasattr(self, "kind_"):
            return "<FailureRiskModel: unfitted>"
        return (f"<FailureRiskModel: {self.kind_}, fitted on {self.n_rows_} landmarks of {self.n_devices_} devices, "
                f"{self.n_events_} failures, {self.n_rows_ - self.n_events_} censored>")

    def _threshold_beta(self, h: int) -> float:
        """Precision-first (``THRESHOLD_BETA``) for the longest horizon, the 30-day call that
        over-flagged; best F1 for the shorter one, whose few positives leave recall fragile."""
        return THRESHOLD_BETA if h == max(self.horizons) else 1.0

    # ------------------------------------------------------------------ design matrix
    def _design(self, df: pd.DataFrame) -> pd.DataFrame:
        X = pd.DataFrame(index=df.index)
        for c in self.numeric_cols_:
            v = pd.to_numeric(df[c], errors="coerce") if c in df else pd.Series(0.0, index=df.index)
            v = v.fillna(self.fill_.get(c, 0.0))
            if c.endswith("_level"):
                v = v.clip(-5, 25)
            elif c.endswith(("_trend_z", "_trend30_z")):
                v = v.clip(-10, 10)
            if c in ("age_days", "days_since_repair"):
                v = v / 365.0
            if c == "error_logs_7d":
                v = np.log1p(v.clip(lower=0))
            X[c] = v.astype(float)
        types = df["device_type"].astype(str) if "device_type" in df else pd.Series("unknown", index=df.index)
        for t in self.type_levels_:
            X[f"type_{t}"] = (types == t).astype(float)
        fw = df["firmware_version"].astype(str) if "firmware_version" in df else pd.Series("unknown", index=df.index)
        X["firmware_log_rate_ratio"] = np.log(fw.map(self.firmware_ratio_).fillna(1.0).astype(float))
        return X[self.columns_] if hasattr(self, "columns_") else X

    def _learn_encodings(self, df: pd.DataFrame) -> None:
        self.numeric_cols_ = _numeric_columns(df)
        self.fill_ = {c: float(pd.to_numeric(df[c], errors="coerce").median()) if c in ("age_days", "days_since_repair")
                      else 0.0 for c in self.numeric_cols_}
        types = df["device_type"].astype(str) if "device_type" in df else pd.Series("unknown", index=df.index)
        counts = types.value_counts()
        self.type_levels_ = [t for t in counts.index[1:] if counts[t] >= 5]  # most common type is the reference
        # firmware failure-rate ratio, smoothed towards the fleet (10 device-equivalents of prior)
        fw = df["firmware_version"].astype(str) if "firmware_version" in df else pd.Series("unknown", index=df.index)
        dev_fw = df.assign(fw=fw).groupby("device_id").agg(fw=("fw", "last"))
        ev = (df.groupby("device_id")["event"].max() if "event" in df else pd.Series(0, index=dev_fw.index))
        per = dev_fw.assign(fail=ev.reindex(dev_fw.index).fillna(0).astype(float)).groupby("fw")["fail"].agg(["sum", "size"])
        fleet = per["sum"].sum() / max(per["size"].sum(), 1)
        prior = 10.0
        rate = (per["sum"] + prior * fleet) / (per["size"] + prior)
        self.firmware_ratio_ = (rate / fleet).to_dict() if fleet > 0 else {k: 1.0 for k in per.index}
        self.firmware_devices_ = per["size"].to_dict()

    # ------------------------------------------------------------------ fitting
    def _fit_one(self, name: str, X: pd.DataFrame, d: np.ndarray, e: np.ndarray):
        from lifelines import CoxPHFitter, WeibullAFTFitter

        frame = X.assign(duration_days=d, event=e.astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "weibull_aft":
                return WeibullAFTFitter(penalizer=self.penalizer).fit(frame, "duration_days", "event")
            if name == "cox_ph":
                return CoxPHFitter(penalizer=self.penalizer).fit(frame, "duration_days", "event")
        raise RiskInputError(f"Unknown candidate {name!r}; choose from 'weibull_aft', 'cox_ph'.")

    def _fit_fallback(self, d: np.ndarray, e: np.ndarray, reason: str) -> None:
        from lifelines import ExponentialFitter, KaplanMeierFitter, WeibullFitter

        self.warning_ = reason
        warnings.warn(reason, RiskModelWarning, stacklevel=3)
        self.columns_ = []
        if e.sum() == 0:
            self.kind_ = "kaplan_meier"
            self.model_ = KaplanMeierFitter().fit(d, e)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.model_ = WeibullFitter().fit(d, e)
                self.kind_ = "weibull"
                if not (0.05 < self.model_.rho_ < 20):
                    raise ValueError("implausible shape")
            except Exception:
                self.model_ = ExponentialFitter().fit(d, e)
                self.kind_ = "exponential"

    def fit(self, df: pd.DataFrame) -> "FailureRiskModel":
        """Fit on a landmark frame with ``duration_days`` and ``event``; returns self."""
        _check_input(df, outcome=True)
        df = df.reset_index(drop=True)
        d = df["duration_days"].to_numpy(float)
        e = df["event"].to_numpy(bool)
        self.n_rows_, self.n_events_ = int(len(df)), int(e.sum())
        self.n_devices_ = int(df["device_id"].nunique())
        self.warning_ = None
        self.validation_ = {}
        self.calibrators_ = {}
        self.thresholds_ = {h: 0.5 for h in self.horizons}
        self.reliability_ = {}
        self.heads_ = {}
        self.failure_levels_ = {}
        self._val_cache_: dict = {}
        self._split_ = None
        self._learn_encodings(df)
        X = self._design(df)
        var = X.var()
        constant = list(var[var < 1e-10].index)
        if constant:
            warnings.warn(f"Dropped {len(constant)} constant covariate(s): {', '.join(constant[:6])}"
                          f"{'...' if len(constant) > 6 else ''}.", RiskModelWarning, stacklevel=2)
        self.columns_ = [c for c in X.columns if c not in constant]
        self.means_ = X[self.columns_].mean()
        if self.n_events_ == 0:
            self._fit_fallback(d, e, "No failures in the history: risk cannot be estimated, so every device "
                                     "shows 0% - read that as 'no evidence', not 'safe'.")
            return self
        if self.n_events_ < self.min_events or not self.columns_:
            why = (f"only {self.n_events_} failure(s), fewer than {self.min_events}" if self.columns_
                   else "every covariate is constant")
            self._fit_fallback(d, e, f"Using a covariate-free Weibull fleet rate because {why}; every device gets "
                                     "the same risk.")
            return self
        self._choose_and_calibrate(df, X[self.columns_], d, e)
        self.model_ = self._fit_one(self.kind_, X[self.columns_], d, e)
        if self.horizon_head == "gbm":
            self._fit_horizon_heads(df, X[self.columns_], d, e)
        self._val_cache_ = {}  # validation scratch: not part of the saved model
        return self

    # ------------------------------------------------------------------ horizon heads
    def _head_features(self, df: pd.DataFrame, X: pd.DataFrame) -> pd.DataFrame:
        """The design matrix plus how far wear has gone towards the level failures were seen at."""
        frac, proj = wear_projection(df, self.failure_levels_)
        return X.assign(wear_fraction=frac, projected_days=proj)

    def _fit_horizon_heads(self, df: pd.DataFrame, X: pd.DataFrame, d: np.ndarray, e: np.ndarray) -> None:
        """P(failure within h days) from a gradient-boosted classifier per horizon, calibrated out of fold.

        Why: a proportional-hazards or AFT model ranks devices well (one linear risk score) but
        cannot say "fan speed has dropped 80% of the way to where fans fail, at this rate that is
        3 weeks away": the 30-day line needs thresholds and interactions. The classifier learns
        them from landmarks whose h-day outcome is known (failed within h days, or followed for h
        days). Calibration and the decision threshold come from out-of-fold predictions (devices
        split in 5 groups, never a device's own rows), so they describe models like the one kept,
        not a model fitted on less data; the reported Brier/reliability is on devices the
        calibrator was not fitted on. Skipped (the survival model answers) when lightgbm is missing
        or a horizon has fewer than ``min_events`` positive landmarks.
        """
        try:
            import lightgbm as lgb
        except ImportError:
            return
        from sklearn.isotonic import IsotonicRegression

        self.failure_levels_ = learn_failure_levels(df)
        F = self._head_features(df, X)
        dev = df["device_id"].to_numpy().astype("int64")
        params = dict(n_estimators=150, learning_rate=0.06, num_leaves=15, min_child_samples=20, subsample=0.8,
                      subsample_freq=1, colsample_bytree=0.5, reg_lambda=1.0, verbose=-1, n_jobs=1,
                      random_state=0)
        for h in self.horizons:
            known = (e & (d <= h)) | (d >= h)
            y = (e & (d <= h))[known].astype(int)
            Fk, gk = F[known], dev[known]
            if y.sum() < self.min_events or (1 - y).sum() < self.min_events or len(np.unique(gk)) < 5:
                continue
            # chosen by validation, like the survival candidates: on the time split, the head must rank
            # the validation landmarks' h-day outcomes at least as well as the survival curve does
            cache = self._val_cache_.get(h)
            if cache is not None and self._split_ is not None:
                from sklearn.metrics import roc_auc_score

                at = pd.to_datetime(df["at"])
                room = ((self._split_ - at).dt.total_seconds() / 86400.0).to_numpy()
                tr_known = (at < self._split_).to_numpy() & ((e & (d <= np.minimum(h, room))) | (room >= h))
                idx, p_surv, y_va = cache
                y_tr = (e & (d <= h))[tr_known].astype(int)
                if 0 < y_va.sum() < len(y_va) and 0 < y_tr.sum() < len(y_tr):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        trial = lgb.LGBMClassifier(**params).fit(F[tr_known], y_tr)
                    auc_head = roc_auc_score(y_va, trial.predict_proba(F.iloc[idx])[:, 1])
                    auc_surv = roc_auc_score(y_va, p_surv)
                    self.validation_.setdefault(f"{h}d", {})["auc"] = {"gbm": round(float(auc_head), 4),
                                                                       self.kind_: round(float(auc_surv), 4)}
                    if auc_head < auc_surv:
                        continue
            folds = gk % 5
            oof = np.zeros(len(y))
            # landmarks whose failure (or its absence) falls near the horizon are the hard calls
            dk = d[known]
            near = (dk > 0.7 * h) & (dk < 1.5 * h)
            w = np.where(near, getattr(self, "boundary_weight", 1.0), 1.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for f in range(5):
                    tr = folds != f
                    if y[tr].sum() == 0 or y[tr].sum() == tr.sum():
                        oof[~tr] = y[tr].mean()
                        continue
                    oof[~tr] = lgb.LGBMClassifier(**params).fit(Fk[tr], y[tr], sample_weight=w[tr]).predict_proba(Fk[~tr])[:, 1]
                head = lgb.LGBMClassifier(**params).fit(Fk, y, sample_weight=w)
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, y)
            pc = iso.predict(oof)
            entry = {"head": "gbm", "n": int(len(y)), "positives": int(y.sum()), "brier_raw": round(brier(oof, y), 4),
                     "brier_calibrated_in_sample": round(brier(pc, y), 4),
                     "c_index": round(c_index(np.minimum(d[known], h + 1.0), oof, y.astype(bool)), 4)}
            if "auc" in self.validation_.get(f"{h}d", {}):
                entry["auc_time_split"] = self.validation_[f"{h}d"]["auc"]
            half = gk % 2 == 0
            if y[half].sum() >= 2 and y[~half].sum() >= 2:
                held = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof[half], y[half]).predict(oof[~half])
                entry["heldout"] = {"n": int((~half).sum()), "positives": int(y[~half].sum()),
                                    "brier_raw": round(brier(oof[~half], y[~half]), 4),
                                    "brier_calibrated": round(brier(held, y[~half]), 4),
                                    "reliability": reliability_table(held, y[~half]).round(4).to_dict("records")}
            self.thresholds_[h] = entry["threshold"] = _best_f1_threshold(pc, y, self._threshold_beta(h))
            self.heads_[h] = (head, iso)
            self.calibrators_.pop(h, None)
            self.reliability_[h] = (entry["heldout"]["reliability"] if "heldout" in entry
                                    else reliability_table(pc, y).round(4).to_dict("records"))
            self.validation_[f"{h}d"] = entry

    def _choose_and_calibrate(self, df: pd.DataFrame, X: pd.DataFrame, d: np.ndarray, e: np.ndarray) -> None:
        at = pd.to_datetime(df["at"])
        # Validation must see complete follow-up at the longest horizon, or calibration only sees
        # the failures (censored non-failures drop out) and inflates P(30 d): so the split sits
        # max(horizons) + val_days before the end, and horizon-h labels come from landmarks with
        # at + h <= end only.
        end = at.max()
        split = end - pd.Timedelta(days=max(self.horizons) + self.val_days)
        if split <= at.min() + (end - at.min()) * 0.3:
            split = at.min() + (end - at.min()) * (1 - self.val_fraction)
        tr = (at < split).to_numpy()
        va = ~tr
        self._split_ = split
        # censor training outcomes at the split: nothing after it may inform the fit
        room = ((split - at[tr]).dt.total_seconds() / 86400.0).to_numpy()
        d_tr = np.minimum(d[tr], room)
        e_tr = e[tr] & (d[tr] <= room)
        keep = d_tr > 1e-3
        self.kind_ = self.candidates[0]
        if e_tr[keep].sum() < 3 or va.sum() < 5 or e[va].sum() < 1:
            return  # too little to validate: keep the first candidate, no calibration
        times = np.arange(1.0, float(max(self.horizons)) + 1)
        G = censoring_survival(d_tr[keep], e_tr[keep])
        scores = {}
        fitted = {}
        for name in self.candidates:
            try:
                m = self._fit_one(name, X[tr][keep], d_tr[keep], e_tr[keep])
            except Exception as exc:  # a candidate that does not converge is skipped, not fatal
                scores[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            S = m.predict_survival_function(X[va], times=times).to_numpy().T
            scores[name] = {"c_index": round(c_index(d[va], 1 - S[:, -1], e[va]), 4),
                            "integrated_brier": round(integrated_brier(S, times, d[va], e[va], G), 4)}
            fitted[name] = S
        ok = {k: v for k, v in scores.items() if "c_index" in v}
        if not ok:
            return
        # Cox PH must beat the Weibull AFT clearly: with many correlated wear features its partial
        # likelihood can wander (validation c-index 0.38 on a tuning fleet) where AFT stays stable
        margin = {k: (0.0 if k == "weibull_aft" else 0.01) for k in ok}
        self.kind_ = max(ok, key=lambda k: (ok[k]["c_index"] - margin[k], -ok[k]["integrated_brier"]))
        self.validation_ = {"split_at": str(split), "n_train": int(tr.sum()), "n_validation": int(va.sum()),
                            "validation_failures": int(e[va].sum()), "models": scores, "chosen": self.kind_}
        from sklearn.isotonic import IsotonicRegression

        S = fitted[self.kind_]
        for h in self.horizons:
            p_raw = 1 - S[:, int(h) - 1]
            complete = (at[va] + pd.Timedelta(days=h) <= end).to_numpy()
            known = complete & ((d[va] >= h) | (e[va] & (d[va] <= h)))
            y = (e[va] & (d[va] <= h))[known].astype(float)
            p = p_raw[known]
            self._val_cache_[h] = (np.flatnonzero(va)[known], p, y)
            entry = {"n": int(known.sum()), "positives": int(y.sum()), "brier_raw": round(brier(p, y), 4)}
            if y.sum() >= 3 and (1 - y).sum() >= 3:
                # calibration is *reported* on devices the calibrator never saw: fit it on half the
                # validation devices, score it on the other half; the one kept is fitted on all
                half = (df["device_id"].to_numpy()[va][known].astype("int64") % 2 == 0)
                if y[half].sum() >= 2 and y[~half].sum() >= 2:
                    iso_half = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[half], y[half])
                    held = iso_half.predict(p[~half])
                    entry["heldout"] = {"n": int((~half).sum()), "positives": int(y[~half].sum()),
                                        "brier_raw": round(brier(p[~half], y[~half]), 4),
                                        "brier_calibrated": round(brier(held, y[~half]), 4),
                                        "reliability": reliability_table(held, y[~half]).round(4).to_dict("records")}
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
                self.calibrators_[h] = iso
                pc = iso.predict(p)
                entry["brier_calibrated_in_sample"] = round(brier(pc, y), 4)
                # the decision threshold: best F-beta (THRESHOLD_BETA) on the validation landmarks
                best_t = _best_f1_threshold(pc, y, self._threshold_beta(h))
                self.thresholds_[h] = best_t
                entry["threshold"] = best_t
                self.reliability_[h] = (entry["heldout"]["reliability"] if "heldout" in entry
                                        else reliability_table(pc, y).round(4).to_dict("records"))
            else:
                self.reliability_[h] = reliability_table(p, y).round(4).to_dict("records")
            entry["c_index"] = round(c_index(d[va], p_raw, e[va]), 4)
            self.validation_[f"{h}d"] = entry

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "kind_"):
            raise RiskInputError("This FailureRiskModel is not fitted yet; call .fit(landmarks) first.")

    def predict_survival_function(self, df: pd.DataFrame, *, times: Sequence[float]) -> np.ndarray:
        """S(t | x) as an array (rows = devices, columns = ``times``), uncalibrated."""
        self._check_fitted()
        times = np.asarray(times, float)
        if self.kind_ in ("kaplan_meier", "weibull", "exponential"):
            if self.kind_ == "kaplan_meier":
                s = self.model_.survival_function_at_times(times).to_numpy()
            else:
                s = self.model_.survival_function_at_times(times).to_numpy()
            return np.tile(s, (len(df), 1))
        X = self._design(df)
        return self.model_.predict_survival_function(X, times=times).to_numpy().T

    def predict_proba(self, df: pd.DataFrame, *, horizon: int) -> np.ndarray:
        """Calibrated P(failure within ``horizon`` days): the horizon head when fitted, else the survival curve."""
        head = getattr(self, "heads_", {}).get(horizon)
        if head is not None:
            clf, iso = head
            raw = clf.predict_proba(self._head_features(df, self._design(df)))[:, 1]
            return np.clip(iso.predict(raw), 0.0, 1.0)
        p = 1 - self.predict_survival_function(df, times=[float(horizon)])[:, 0]
        iso = getattr(self, "calibrators_", {}).get(horizon)
        return np.clip(iso.predict(p) if iso is not None else p, 0.0, 1.0)

    def predict_percentile(self, df: pd.DataFrame, *, p: float = 0.5) -> np.ndarray:
        """Days until survival falls to ``p`` (``p=0.5``: the median RUL), capped at 10 years."""
        self._check_fitted()
        if self.kind_ == "kaplan_meier":
            return np.full(len(df), np.inf)
        if self.kind_ in ("weibull", "exponential"):
            m = self.model_
            lam = float(getattr(m, "lambda_", 1.0))
            rho = float(getattr(m, "rho_", 1.0))
            return np.full(len(df), min(lam * (-np.log(p)) ** (1 / rho), RUL_CAP_DAYS))
        X = self._design(df)
        out = np.asarray(self.model_.predict_percentile(X, p=p), float).ravel()
        return np.minimum(np.where(np.isfinite(out), out, RUL_CAP_DAYS), RUL_CAP_DAYS)

    def predict_median(self, df: pd.DataFrame) -> np.ndarray:
        return self.predict_percentile(df, p=0.5)

    def predict_risk(self, df: pd.DataFrame, *, top_factors: int = 3) -> pd.DataFrame:
        """Per row: p_fail_7d <= p_fail_30d, rul_median_days with an 80% interval, and factors."""
        _check_input(df, outcome=False)
        h7, h30 = self.horizons
        p7 = self.predict_proba(df, horizon=h7)
        p30 = np.maximum(self.predict_proba(df, horizon=h30), p7)
        med = self.predict_median(df)
        low = self.predict_percentile(df, p=0.9)
        high = self.predict_percentile(df, p=0.1)
        if self.kind_ != "kaplan_meier":  # no failures seen: P = 0 and RUL unknown agree already
            med = coherent_percentile(med, p7, p30, 0.5, h7, h30)
            low = np.minimum(coherent_percentile(low, p7, p30, 0.9, h7, h30), med)
            high = np.maximum(coherent_percentile(high, p7, p30, 0.1, h7, h30), med)
        out = pd.DataFrame({
            "device_id": df["device_id"].to_numpy(),
            f"p_fail_{h7}d": p7.round(4), f"p_fail_{h30}d": p30.round(4),
            "rul_median_days": med.round(1), "rul_low_days": low.round(1), "rul_high_days": high.round(1),
        }, index=df.index)
        for col in ("public_id", "name", "device_type", "site_name"):
            if col in df:
                out[col] = df[col].to_numpy()
        out["factors"] = self.explain(df, top=top_factors)
        out["model"] = self.kind_
        return out

    # ------------------------------------------------------------------ explanation
    def contributions(self, df: pd.DataFrame) -> pd.DataFrame:
        """Each covariate's contribution to the log hazard relative to the fleet average (+ = riskier)."""
        self._check_fitted()
        if not self.columns_:
            return pd.DataFrame(index=df.index)
        X = self._design(df) - self.means_
        if self.kind_ == "cox_ph":
            beta = self.model_.params_
        else:  # Weibull AFT: log hazard = -rho * log(lambda) + ..., lambda = exp(x beta)
            rho = float(np.exp(self.model_.params_.loc["rho_"].iloc[0]))
            beta = -rho * self.model_.params_.loc["lambda_"].drop("Intercept", errors="ignore")
        beta = beta.reindex(self.columns_).fillna(0.0)
        return X[self.columns_] * beta.to_numpy()

    def explain(self, df: pd.DataFrame, *, top: int = 3) -> list[list[str]]:
        """Top contributing factors per row, in words an engineer understands."""
        self._check_fitted()
        if not self.columns_:
            reason = self.warning_ or "covariate-free model"
            return [[reason] for _ in range(len(df))]
        contrib = self.contributions(df)
        out = []
        for i, (idx, row) in enumerate(contrib.iterrows()):
            pos = row[row > 0.05].sort_values(ascending=False)
            words = [w for w in (self._describe(c, df.loc[idx], float(v)) for c, v in pos.items()) if w][:top]
            out.append(words or ["no risk factor stands out: at or below the fleet's usual risk"])
        return out

    def _describe(self, col: str, row: pd.Series, contrib: float) -> str | None:
        x = np.exp(contrib)
        tail = f" (x{x:.1f} risk)"
        for suffix, days, slope_col in (("_trend_z", 14, "_trend"), ("_trend30_z", 30, "_trend30")):
            if col.endswith(suffix):
                m = col[: -len(suffix)]
                unit, _sign = DEGRADATION_METRICS.get(m, ("", 1))
                slope = row.get(f"{m}{slope_col}")
                if slope is None or pd.isna(slope):
                    return None
                level = row.get(f"{m}_now")
                now = f"{_fmt(level)}{_u(unit)} and " if level is not None and pd.notna(level) else ""
                verb = "rising" if slope > 0 else "falling"
                return f"{_words(m)} {now}{verb} {_fmt(abs(slope))}{_u(unit)}/day over {days} days{tail}"
        if col.endswith("_level"):
            m = col[: -len("_level")]
            z = row.get(col)
            gap = row.get(f"{m}_drift")
            if z is None or pd.isna(z):
                return None
            unit, _sign = DEGRADATION_METRICS.get(m, ("", 1))
            level = row.get(f"{m}_now")
            now = f" at {_fmt(level)}{_u(unit)}" if level is not None and pd.notna(level) else ""
            if gap is not None and pd.notna(gap):
                where = "above" if gap > 0 else "below"
                return (f"{_words(m)}{now}, {_fmt(abs(gap))}{_u(unit)} {where} its healthy level of the last "
                        f"2 months ({abs(z):.0f}x its day-to-day noise){tail}")
            where = "above" if z > 0 else "below"
            return f"{_words(m)} {abs(z):.1f} standard deviations {where} this device's healthy baseline{tail}"
        if col == "error_logs_trend":
            return f"{int(row.get('error_logs_7d', 0))} error-log entries in the last 7 days, more than the weeks before{tail}"
        if col == "firmware_log_rate_ratio":
            fw = row.get("firmware_version", "?")
            ratio = self.firmware_ratio_.get(str(fw), 1.0)
            return f"firmware {fw} has {ratio:.1f}x the fleet failure rate{tail}"
        if col == "error_logs_7d":
            return f"{int(row.get(col, 0))} error-log entries in the last 7 days{tail}"
        if col == "failed_check_share_7d":
            return f"{100 * float(row.get(col, 0)):.0f}% of health checks failed in the last 7 days{tail}"
        if col == "age_days":
            return f"age {float(row.get(col, 0)) / 365:.1f} years{tail}"
        if col == "days_since_repair":
            return f"{float(row.get(col, 0)):.0f} days since the last repair or replacement{tail}"
        if col.startswith("type_"):
            return f"device type {col[5:]} fails more often than the fleet's most common type{tail}"
        return None

    # ------------------------------------------------------------------ lifelines-style reporting
    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients (hazard-ratio scale) of the chosen model, or the fallback's parameters."""
        self._check_fitted()
        if self.kind_ == "cox_ph":
            s = self.model_.summary[["coef", "exp(coef)", "p"]].copy()
            s.columns = ["log_hazard_ratio", "hazard_ratio", "p"]
            return s.sort_values("p")
        if self.kind_ == "weibull_aft":
            s = self.model_.summary[["coef", "exp(coef)", "p"]].copy()
            s.columns = ["log_time_ratio", "time_ratio", "p"]
            return s.sort_values("p")
        if self.kind_ == "kaplan_meier":
            return pd.DataFrame({"value": [self.n_events_]}, index=["failures"])
        return self.model_.summary[["coef"]].rename(columns={"coef": "value"})

    def print_summary(self, decimals: int = 3, top: int = 12) -> None:
        print(repr(self))
        if self.warning_:
            print("warning:", self.warning_)
        if self.validation_:
            print("validation:", {k: v for k, v in self.validation_.items() if k != "models"})
            print("candidates:", self.validation_.get("models"))
        print(self.summary.head(top).round(decimals).to_string())

    def report(self) -> dict:
        """Calibration and validation figures as plain data (for the CLI, the bench, ai_models)."""
        self._check_fitted()
        return {"kind": self.kind_, "rows": self.n_rows_, "devices": self.n_devices_, "failures": self.n_events_,
                "warning": self.warning_, "validation": self.validation_,
                "reliability": {f"{h}d": r for h, r in self.reliability_.items()},
                "thresholds": {f"{h}d": t for h, t in self.thresholds_.items()}}
