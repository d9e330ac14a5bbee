"""``homepot-ai bench cmapss``: RUL regression on NASA C-MAPSS FD001 beside the published anchors.

Protocol: training RUL capped at 125; validation split by engine (5 engine-grouped folds, each
fold model early-stopped on its held-out engines, the fold models averaged); one prediction at the
last cycle of each of the 100 test engines; truth **not** capped (the capped-truth RMSE is printed
too, because some papers use it). The default model is LightGBM on causal trailing-window features
averaged 40/60 with a small torch MLP on the raw 70-cycle window (2 seeds per engine fold)
(see ``tools/maintenance/rul.py`` and ``rul_seq.py``); it needs no GPU. torch is optional
(``pip install .[rul]``): without it the bench runs the LightGBM-only model and says so.
"""

from __future__ import annotations

import json
import sys

import click

#: (method, paper, RMSE, PHM08 score) from shared/benchmarks/cmapss/README.md.
ANCHORS: tuple[tuple[str, str, float, float], ...] = (
    ("DCNN", "Li, Ding, Sun 2018", 12.61, 273.7),
    ("DAG network", "Li, Li, He 2019", 11.96, 229.0),
    ("DAST", "Zhang, Song, Li 2022", 11.43, 203.15),
)
GOAL_RMSE, GOAL_SCORE = 12.0, 250.0


def format_table(result: dict) -> str:
    """Our figure on top, the anchors below, one line each."""
    lines = [f"{'method':<34} {'RMSE':>7} {'PHM08':>8}  note", "-" * 72]
    lines.append(f"{'ours: ' + result['model']:<34} {result['rmse']:>7.2f} {result['phm_score']:>8.1f}  "
                 f"trained in {result['train_seconds']:.1f} s wall / {result['train_cpu_seconds']:.1f} s CPU, truth uncapped")
    lines.append(f"{'ours, engine-split 5-fold CV':<34} {result['cv_rmse']:>7.2f} {result['cv_phm_per_100']:>8.1f}  "
                 "held-out cycles with RUL <= 150 (score per 100 engines)")
    lines.append(f"{'ours, truth capped at 125':<34} {result['rmse_truth_capped']:>7.2f} {'':>8}  for papers that cap truth")
    for name, paper, r, s in ANCHORS:
        lines.append(f"{name + ' (' + paper + ')':<34} {r:>7.2f} {s:>8.1f}  published")
    ok = result["rmse"] <= GOAL_RMSE and result["phm_score"] <= GOAL_SCORE
    lines.append(f"goal RMSE <= {GOAL_RMSE}, score <= {GOAL_SCORE}: {'met' if ok else 'NOT met'}")
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


@click.command("cmapss")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fold assignment, the trees and the MLP.")
@click.option("--trees-only", is_flag=True, help="LightGBM only, without the torch window MLP.")
def command(as_json: bool, seed: int, trees_only: bool) -> None:
    """Fit RUL regression on C-MAPSS FD001 and score it at the last cycle of each test engine.

    \b
    Example:
      homepot-ai bench cmapss --json
    """
    from tools.config import load_settings
    from tools.maintenance.rul import evaluate_cmapss
    from tools.maintenance.rul_seq import torch_available

    folder = load_settings().benchmarks_dir / "cmapss"
    note = None
    if not trees_only and not torch_available():
        note = "torch is not installed, so this is the LightGBM-only model; `pip install .[rul]` adds the window MLP"
        click.echo(f"note: {note}", err=True)
    click.echo(f"fitting on {folder} ...", err=True)
    result = evaluate_cmapss(folder, seed=seed, sequence=None if trees_only else "auto")
    result["note"] = note
    result["anchors"] = {name: {"rmse": r, "phm_score": s} for name, _p, r, s in ANCHORS}
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        click.echo(format_table(result))
