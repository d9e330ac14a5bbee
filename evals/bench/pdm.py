"""``homepot-ai bench pdm``: component time-to-failure on the Azure PdM sample, with censoring.

What is measured: spells between consecutive replacements of each (machine, component) pair
(743 failure-ended spells, the rest right-censored by scheduled replacements or the end of data);
covariates known at the spell start (machine model, age, component, errors by type in the previous
30 days, the machine's training-period error rate). Split by time: fit on spells started before
2015-08-01 (censored there), test on spells started from then on. Scores: Harrell's c-index of the
predicted risk and the IPCW integrated Brier score over 5..120 days, for a Kaplan–Meier baseline,
a covariate-free Weibull, a Weibull AFT and a Cox PH model.

Comparability with Microsoft's published classifier (the modelling guide's recall 0.89-1.00 per
component): **not comparable**. That model answers "which component fails in the next 24 hours"
every 3 hours, and its strongest features are hourly telemetry (voltage, rotation, pressure,
vibration) that the stored sample does not contain. What *is* shared: the same machines, failures,
maintenance log and error log, the same first time split (2015-08-01), and the same non-telemetry
covariates (model, age, error counts, time since replacement, which is our duration axis). Our
figures answer a different question (how long until this component fails, with censoring) and
are scored with survival metrics.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import click
import numpy as np
import pandas as pd

CUTOFF = pd.Timestamp("2015-08-01")
TIMES = np.arange(5.0, 121.0, 5.0)
COMPARABILITY = (
    "Not comparable with Microsoft's published 24-hour classifier (recall 0.89-1.00 per component): it used "
    "hourly telemetry that this sample lacks and answers a different question. Shared: machines, failure, "
    "maintenance and error logs, the 2015-08-01 split, the non-telemetry covariates.")


def _covariate_columns(df: pd.DataFrame) -> list[str]:
    base = ["age", "errors_per_30d_train"] + [c for c in df.columns if c.endswith("_30d")]
    return base + [c for c in df.columns if c.startswith(("model_", "comp_"))]


def evaluate_pdm(folder, cutoff: pd.Timestamp = CUTOFF) -> dict:
    """Fit the four models on spells before ``cutoff`` and score them on spells after it."""
    from lifelines import CoxPHFitter, KaplanMeierFitter, WeibullAFTFitter, WeibullFitter

    from tools.maintenance.metrics import c_index, censoring_survival, integrated_brier
    from tools.maintenance.pdm import build_spells, load_pdm, spell_covariates, time_split

    started = time.perf_counter()
    data = load_pdm(folder)
    spells = build_spells(data)
    train, test = time_split(spells, cutoff)
    train = spell_covariates(train, data, cutoff)
    test = spell_covariates(test, data, cutoff)
    cols = _covariate_columns(train)
    for c in cols:
        if c not in test:
            test[c] = 0.0
    d_tr, e_tr = train["duration_days"].to_numpy(), train["event"].to_numpy(bool)
    d_te, e_te = test["duration_days"].to_numpy(), test["event"].to_numpy(bool)
    G = censoring_survival(d_tr, e_tr)
    results: dict[str, dict] = {}

    km = KaplanMeierFitter().fit(d_tr, e_tr)
    s_km = km.survival_function_at_times(TIMES).to_numpy()
    results["kaplan_meier"] = {"c_index": 0.5, "integrated_brier": integrated_brier(
        np.tile(s_km, (len(test), 1)), TIMES, d_te, e_te, G)}

    wf = WeibullFitter().fit(d_tr, e_tr)
    s_w = wf.survival_function_at_times(TIMES).to_numpy()
    results["weibull"] = {"c_index": 0.5, "integrated_brier": integrated_brier(
        np.tile(s_w, (len(test), 1)), TIMES, d_te, e_te, G),
        "shape": float(wf.rho_), "scale_days": float(wf.lambda_)}

    frame_tr = train[cols + ["duration_days", "event"]].astype(float)
    frame_te = test[cols].astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aft = WeibullAFTFitter(penalizer=0.01).fit(frame_tr, "duration_days", "event")
        cox = CoxPHFitter(penalizer=0.01).fit(frame_tr, "duration_days", "event")
    s_aft = aft.predict_survival_function(frame_te, times=TIMES).to_numpy().T
    results["weibull_aft"] = {
        "c_index": c_index(d_te, -aft.predict_median(frame_te).to_numpy(), e_te),
        "integrated_brier": integrated_brier(s_aft, TIMES, d_te, e_te, G)}
    s_cox = cox.predict_survival_function(frame_te, times=TIMES).to_numpy().T
    results["cox_ph"] = {
        "c_index": c_index(d_te, cox.predict_partial_hazard(frame_te).to_numpy(), e_te),
        "integrated_brier": integrated_brier(s_cox, TIMES, d_te, e_te, G)}
    best = "cox_ph"  # the headline is fixed in advance, not picked on the test spells; all are shown
    for r in results.values():
        for k in ("c_index", "integrated_brier"):
            r[k] = round(float(r[k]), 4)
    return {
        "c_index": results[best]["c_index"],
        "integrated_brier": results[best]["integrated_brier"],
        "model": best,
        "models": results,
        "n_train_spells": int(len(train)), "n_train_events": int(e_tr.sum()),
        "n_test_spells": int(len(test)), "n_test_events": int(e_te.sum()),
        "cutoff": str(cutoff.date()), "brier_times_days": [float(TIMES[0]), float(TIMES[-1])],
        "covariates": cols,
        "seconds": round(time.perf_counter() - started, 2),
        "comparability": COMPARABILITY,
    }


def format_table(r: dict) -> str:
    lines = [f"Azure PdM spells: train {r['n_train_spells']} ({r['n_train_events']} failures) before "
             f"{r['cutoff']}, test {r['n_test_spells']} ({r['n_test_events']} failures) after",
             f"{'model':<16} {'c-index':>8} {'IBS':>8}   (IBS over {r['brier_times_days'][0]:.0f}-"
             f"{r['brier_times_days'][1]:.0f} days, lower is better)", "-" * 60]
    for name, m in r["models"].items():
        mark = "  <- headline" if name == r["model"] else ""
        lines.append(f"{name:<16} {m['c_index']:>8.3f} {m['integrated_brier']:>8.4f}{mark}")
    lines.append("Microsoft guide, GBM 24 h classifier with telemetry: recall 0.89-1.00 per component (not comparable)")
    lines.append(r["comparability"])
    return "\n".join(lines)


@click.command("pdm")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def command(as_json: bool) -> None:
    """Survival models of component failure on the Azure PdM sample, split by time.

    \b
    Example:
      homepot-ai bench pdm --json
    """
    from tools.config import load_settings

    folder = load_settings().benchmarks_dir / "azure_pdm"
    click.echo(f"fitting on {folder} ...", err=True)
    result = evaluate_pdm(folder)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        click.echo(format_table(result))
