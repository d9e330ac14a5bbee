"""``homepot-ai bench nab``: our streaming detector on the Numenta Anomaly Benchmark v1.1.

Rules kept (SCORING.md): every file is scored row by row from its past only, with the same
settings everywhere (no labels, no per-file tuning); one threshold per cost profile is chosen by
NAB's exhaustive sweep over the pooled corpus; scores are normalised (null 0, perfect 100).
The windowed-Gaussian reference detector is re-run and re-scored as a check on the scorer.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import click
import numpy as np

ANCHORS: list[tuple[str, float, float, float]] = [
    ("ARTime", 74.9, 65.1, 80.4),
    ("Numenta HTM", 70.5, 62.6, 75.2),
    ("CAD OSE", 69.9, 67.0, 73.2),
    ("Relative Entropy", 54.6, 47.6, 58.8),
    ("Windowed Gaussian (posted)", 39.6, 20.9, 47.4),
]
# our CAD OSE port run NAB's way (file min/max range = look-ahead), scored here: 68.7/66.2/71.8
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def run_nab(root: Path, *, verify: bool = True, workers: int = 2) -> dict:
    """Score our detector (and optionally the windowed-Gaussian check) on the whole corpus."""
    from tools.anomaly import nab_detector
    from tools.anomaly.nab_baselines import windowed_gaussian
    from tools.anomaly.nab_scoring import load_corpus, score_corpus

    files = load_corpus(root)
    t0 = time.perf_counter()
    # files are independent: spread them over the cores (largest first for balance)
    order = sorted(range(len(files)), key=lambda k: -files[k].n)
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(files)))) as pool:
        got = list(pool.map(nab_detector.score_ensemble, [files[k].values for k in order]))
    ours = [np.zeros(0)] * len(files)
    for k, s in zip(order, got):
        ours[k] = s
    seconds = time.perf_counter() - t0
    res = score_corpus(files, ours)
    out: dict = {p: round(res[p].score, 2) for p in PROFILE_NAMES}
    out["thresholds"] = {p: res[p].threshold for p in PROFILE_NAMES}
    out["raw"] = {p: round(res[p].raw, 3) for p in PROFILE_NAMES}
    out["seconds"] = round(seconds, 2)
    out["files"] = len(files)
    out["rows"] = int(sum(f.n for f in files))
    out["windows"] = int(sum(len(f.windows) for f in files))
    if verify:
        wg = score_corpus(files, [windowed_gaussian(f.values) for f in files])
        out["windowed_gaussian_rescored"] = {p: round(wg[p].score, 2) for p in PROFILE_NAMES}
    return out


@click.command(name="nab")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--no-verify", is_flag=True, help="Skip re-running the windowed-Gaussian check.")
def command(as_json: bool, no_verify: bool) -> None:
    """NAB v1.1: our detector's standard / low-FP / low-FN scores beside the published ones."""
    from app.errors import UserError
    from tools.anomaly.nab_scoring import NabDataError
    from tools.config import load_settings

    root = load_settings().benchmarks_dir / "nab"
    click.echo(f"scoring 58 NAB files from {root} ...", err=True)
    try:
        out = run_nab(root, verify=not no_verify)
    except NabDataError as exc:
        raise UserError(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    rows = [("HOMEPOT AI (ours)", out["standard"], out["reward_low_FP_rate"], out["reward_low_FN_rate"])]
    rows += ANCHORS
    if "windowed_gaussian_rescored" in out:
        w = out["windowed_gaussian_rescored"]
        rows.append(("Windowed Gaussian (re-run here)", w["standard"], w["reward_low_FP_rate"], w["reward_low_FN_rate"]))
    click.echo(f"{'detector':34s} {'standard':>9s} {'low FP':>8s} {'low FN':>8s}")
    for name, a, b, c in rows:
        click.echo(f"{name:34s} {a:9.1f} {b:8.1f} {c:8.1f}")
    click.echo(f"\n{out['files']} files, {out['rows']:,} rows, {out['windows']} windows; "
               f"our detector took {out['seconds']:.1f} s")
