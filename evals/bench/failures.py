"""``homepot-ai bench failures``: does the risk model foresee the simulator's failures 7 and 30 days out?

Protocol, per seed (101, 202 and 303 were never used while building the model; 7 and 8 were):

1. simulate a fleet (150 devices, 150 days, hourly metrics, failure hazard x3 so that a fleet this
   size has 15-30 failures in the 30 days after the cutoff) ending at the cutoff ``END``;
2. fit the model on the history up to ``END`` only (``build_landmarks(until=END)``), exactly as in
   production, and predict at ``END``;
3. compare with the ground truth the simulator drew but never wrote as data: the failures in
   ``(END, END + h]`` (``ai_gt_failures`` with ``failed_at > END``, i.e. ``details.future``).
   Devices already down at ``END`` are left out (their failure is not a prediction). "Predicted to
   fail" means P >= the threshold the model chose on its own validation (best F1 at 7 days, F-beta 0.5 at 30, on
   out-of-fold predictions of the training history), never tuned on these seeds.

Scores are pooled over seeds: precision/recall at 7 and 30 days, c-index of P(30 d) against the
time to the first future failure (censored at the simulator's 60-day horizon), Brier at 7 and 30
days. About 6% of simulated failures are sudden (no precursor), which caps the reachable recall.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import click
import pandas as pd

from tools.simulator.lifecycle import SUDDEN_CAUSES

END = datetime(2025, 6, 1)
DEFAULT_SEEDS = (101, 202, 303)
DEFAULT_DEVICES = 150
DEFAULT_DAYS = 150.0
FUTURE_HORIZON_DAYS = 60.0


def _truth(store, end: datetime) -> pd.DataFrame:
    """Each device's first failure after ``end`` and its cause (sudden causes have no precursor)."""
    from tools.maintenance.features import ts_param
    from tools.store.bulk import read_frame

    gt = read_frame(store, "SELECT device_id, failed_at, cause FROM ai_gt_failures WHERE failed_at > :e",
                    {"e": ts_param(store, end)}, parse_dates=["failed_at"])
    first = gt.sort_values("failed_at").groupby("device_id").first()
    return first.rename(columns={"failed_at": "first_failure", "cause": "first_cause"}).reset_index()


def run_seed(seed: int, *, devices: int = DEFAULT_DEVICES, days: float = DEFAULT_DAYS, failure_scale: float = 3.0,
             workdir: Path | None = None) -> dict:
    """Simulate, fit up to END, predict at END; return per-device predictions and truth."""
    from tools.maintenance.fleet import fit_fleet_model, predict_fleet
    from tools.simulator import simulate_fleet
    from tools.store.engine import open_store

    folder = Path(workdir or tempfile.mkdtemp(prefix="bench_failures_"))
    path = folder / f"fleet_{seed}.db"
    path.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{path}")
    t0 = time.perf_counter()
    simulate_fleet(store, devices=devices, days=days, interval="1h", seed=seed, end=END, failure_scale=failure_scale)
    t_sim = time.perf_counter() - t0
    t1 = time.perf_counter()
    model = fit_fleet_model(store, END)
    pred = predict_fleet(store, model, END)
    t_fit = time.perf_counter() - t1
    from tools.maintenance.features import build_landmarks

    down = build_landmarks(store, until=END, at_only=True).set_index("device_id")["down"]
    truth = _truth(store, END)
    store.dispose()
    df = pred.merge(truth, on="device_id", how="left")
    df["down"] = df["device_id"].map(down).fillna(False).astype(bool)
    df = df[~df["down"]].copy()
    df["days_to_failure"] = (df["first_failure"] - pd.Timestamp(END)).dt.total_seconds() / 86400.0
    df["seed"] = seed
    return {"frame": df, "thresholds": dict(model.thresholds_), "kind": model.kind_, "simulate_seconds": t_sim,
            "fit_predict_seconds": t_fit, "validation": model.validation_}


def score(frames: list[pd.DataFrame], thresholds: list[dict]) -> dict:
    from tools.maintenance.metrics import brier, c_index

    out: dict = {}
    rows = []
    for df, th in zip(frames, thresholds):
        for h in (7, 30):
            d = df.assign(h=h, pred=df[f"p_fail_{h}d"] >= th.get(h, 0.5),
                          actual=df["days_to_failure"].le(h).fillna(False))
            rows.append(d)
    allrows = pd.concat(rows)
    for h in (7, 30):
        r = allrows[allrows["h"] == h]
        tp = int((r.pred & r.actual).sum())
        fp = int((r.pred & ~r.actual).sum())
        fn = int((~r.pred & r.actual).sum())
        out[f"precision_{h}d"] = round(tp / (tp + fp), 4) if tp + fp else 0.0
        out[f"recall_{h}d"] = round(tp / (tp + fn), 4) if tp + fn else 0.0
        out[f"positives_{h}d"] = tp + fn
        out[f"flagged_{h}d"] = tp + fp
        out[f"brier_{h}d"] = round(brier(r[f"p_fail_{h}d"].to_numpy(), r.actual.to_numpy()), 4)
        sudden = int((r.actual & r["first_cause"].isin(SUDDEN_CAUSES)).sum())
        out[f"sudden_{h}d"] = sudden  # failures with no precursor: recall <= 1 - sudden / positives
        out[f"recall_ceiling_{h}d"] = round(1 - sudden / (tp + fn), 4) if tp + fn else 1.0
    cat = pd.concat(frames)
    dur = cat["days_to_failure"].fillna(FUTURE_HORIZON_DAYS).clip(upper=FUTURE_HORIZON_DAYS).to_numpy()
    ev = cat["days_to_failure"].notna().to_numpy() & (cat["days_to_failure"] <= FUTURE_HORIZON_DAYS).to_numpy()
    out["c_index"] = round(c_index(dur, cat["p_fail_30d"].to_numpy(), ev), 4)
    out["devices_scored"] = int(len(cat))
    return out


@click.command("failures")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), show_default=True,
              help="Comma-separated simulator seeds (never tuned on).")
@click.option("--devices", default=DEFAULT_DEVICES, show_default=True)
@click.option("--days", default=DEFAULT_DAYS, show_default=True)
def command(as_json: bool, seeds: str, devices: int, days: float) -> None:
    """Score 7- and 30-day failure predictions against the simulator's ground truth.

    \b
    Example:
      homepot-ai bench failures --json
    """
    started = time.perf_counter()
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_failures_") as tmp:
        for seed in seed_list:
            click.echo(f"seed {seed}: simulating {devices} devices x {days:g} days, fitting, predicting ...", err=True)
            runs.append(run_seed(seed, devices=devices, days=days, workdir=Path(tmp)))
    result = score([r["frame"] for r in runs], [r["thresholds"] for r in runs])
    result.update({
        "seconds": round(time.perf_counter() - started, 1),
        "fit_predict_seconds": round(sum(r["fit_predict_seconds"] for r in runs), 1),
        "simulate_seconds": round(sum(r["simulate_seconds"] for r in runs), 1),
        "seeds": seed_list, "models": [r["kind"] for r in runs],
        "thresholds": [{f"{k}d": v for k, v in r["thresholds"].items()} for r in runs],
        "goal": "precision_30d >= 0.9 and recall_30d >= 0.9",
    })
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    click.echo(f"{'horizon':<8} {'precision':>9} {'recall':>7} {'Brier':>7} {'failures':>9} {'flagged':>8}")
    for h in (7, 30):
        click.echo(f"{h:>3} days {result[f'precision_{h}d']:>9.3f} {result[f'recall_{h}d']:>7.3f} "
                   f"{result[f'brier_{h}d']:>7.4f} {result[f'positives_{h}d']:>9} {result[f'flagged_{h}d']:>8}")
    click.echo(f"c-index {result['c_index']:.3f} over {result['devices_scored']} devices; seeds {seed_list}; "
               f"{result['seconds']:.0f} s ({result['fit_predict_seconds']:.0f} s fit+predict)")
    met = result["precision_30d"] >= 0.9 and result["recall_30d"] >= 0.9
    click.echo(f"goal precision and recall >= 0.9 at 30 days: {'met' if met else 'NOT met'}")
