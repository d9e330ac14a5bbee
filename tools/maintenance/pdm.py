"""Azure PdM sample (events only) as survival data: component-replacement spells with censoring.

Each (machine, component) pair is a sequence of replacements (``PdM_maint``, plus the 18 failures
at 03:00 that ``PdM_maint`` lacks). A spell runs from one replacement to the next; it is an
**event** when the replacement that ends it was caused by a failure (``PdM_failures``), and
right-censored when it ended in a scheduled replacement or at the end of the data. The first
replacement of each pair only opens a spell (nothing is known before it).

Covariates are what is known when a spell starts: machine model and age, the component, the
machine's error counts by type in the 30 days before the spell started, and the machine's error
rate over the *training* period. Telemetry is not available (see the folder's README).

Split by time: training spells start before ``cutoff`` and are censored at it (nothing after the
cutoff is used for fitting); test spells start at or after it and are followed to the end of data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

END_OF_DATA = pd.Timestamp("2016-01-01 06:00:00")
ERROR_TYPES: tuple[str, ...] = ("error1", "error2", "error3", "error4", "error5")


@dataclass(frozen=True)
class PdMData:
    machines: pd.DataFrame
    errors: pd.DataFrame
    maint: pd.DataFrame
    failures: pd.DataFrame


def load_pdm(folder: Path) -> PdMData:
    folder = Path(folder)
    names = ("machines", "errors", "maint", "failures")
    missing = [n for n in names if not (folder / f"PdM_{n}.csv").is_file()]
    if missing:
        raise FileNotFoundError(f"Azure PdM files missing in {folder}: {missing}; set HOMEPOT_AI_BENCHMARKS_DIR "
                                "to the folder that holds azure_pdm/")
    frames = {n: pd.read_csv(folder / f"PdM_{n}.csv") for n in names}
    for n in ("errors", "maint", "failures"):
        frames[n]["datetime"] = pd.to_datetime(frames[n]["datetime"])
    return PdMData(**frames)


def build_spells(data: PdMData, end: pd.Timestamp = END_OF_DATA) -> pd.DataFrame:
    """One row per spell: machineID, comp, start, stop, duration_days, event."""
    repl = pd.concat([
        data.maint.rename(columns={"comp": "comp"})[["datetime", "machineID", "comp"]],
        data.failures.rename(columns={"failure": "comp"})[["datetime", "machineID", "comp"]],
    ]).drop_duplicates()
    fail_keys = set(zip(data.failures["machineID"], data.failures["failure"], data.failures["datetime"]))
    repl = repl.sort_values(["machineID", "comp", "datetime"], kind="stable")
    repl["failure"] = [k in fail_keys for k in zip(repl["machineID"], repl["comp"], repl["datetime"])]
    g = repl.groupby(["machineID", "comp"], sort=False)
    repl["stop"] = g["datetime"].shift(-1)
    repl["event"] = g["failure"].shift(-1).astype("boolean").fillna(False).astype(bool)
    repl["stop"] = repl["stop"].fillna(end)
    spells = repl.rename(columns={"datetime": "start"})[["machineID", "comp", "start", "stop", "event"]]
    spells = spells[spells["stop"] > spells["start"]].reset_index(drop=True)
    spells["duration_days"] = (spells["stop"] - spells["start"]).dt.total_seconds() / 86400.0
    return spells


def spell_covariates(spells: pd.DataFrame, data: PdMData, train_end: pd.Timestamp,
                     lookback_days: int = 30) -> pd.DataFrame:
    """Covariates known at each spell's start (no look-ahead past the start or the training end)."""
    out = spells.merge(data.machines, on="machineID", how="left")
    err = data.errors
    # errors by type in the lookback window before each spell start (merge_asof-free: per machine cumsum)
    for etype in ERROR_TYPES:
        e = err[err["errorID"] == etype]
        counts = np.zeros(len(out))
        times = {m: np.sort(grp["datetime"].to_numpy()) for m, grp in e.groupby("machineID")}
        starts = out["start"].to_numpy()
        lo = starts - np.timedelta64(lookback_days, "D")
        for m, idx in out.groupby("machineID").indices.items():
            t = times.get(m)
            if t is None:
                continue
            counts[idx] = np.searchsorted(t, starts[idx], side="left") - np.searchsorted(t, lo[idx], side="left")
        out[f"{etype}_{lookback_days}d"] = counts
    # machine error rate per 30 days over the training period only
    train_err = err[err["datetime"] < train_end]
    span_days = max((train_end - err["datetime"].min()).days, 1)
    rate = train_err.groupby("machineID").size() / span_days * 30.0
    out["errors_per_30d_train"] = out["machineID"].map(rate).fillna(0.0)
    dummies = pd.get_dummies(out[["model", "comp"]], drop_first=True, dtype=float)
    return pd.concat([out, dummies], axis=1)


def time_split(spells: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train: spells started before ``cutoff``, censored there. Test: spells started at/after it."""
    train = spells[spells["start"] < cutoff].copy()
    late = train["stop"] > cutoff
    train.loc[late, "event"] = False
    train.loc[late, "stop"] = cutoff
    train["duration_days"] = (train["stop"] - train["start"]).dt.total_seconds() / 86400.0
    train = train[train["duration_days"] > 0]
    test = spells[spells["start"] >= cutoff].copy()
    return train.reset_index(drop=True), test.reset_index(drop=True)
