"""``homepot-ai bench fleet``: event-level detection quality on simulated fleets.

Fleets are simulated with seeds the detector was never tuned on (1001, 1002) into temporary
SQLite stores; the batch detector runs over everything; findings are matched against
``ai_gt_anomalies``. An injected anomaly is found when a finding on its device starts between its
start and end (one interval of slack after the end, half an interval before the start for
device clock jitter). A finding is a false positive when it matches no injected
anomaly and no ground-truth failure (from degradation start to two days after the failure: the
degradation and the outage after a failure are real events too).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import click
import numpy as np
import pandas as pd

SEEDS = (1001, 1002)


def score_run(findings, gt: pd.DataFrame, failures: pd.DataFrame, interval: pd.Timedelta) -> dict:
    """Match findings to ground truth; return counts, delays and per-kind hits."""
    by_dev = defaultdict(list)
    for f in findings:
        by_dev[f.device_id].append(f)
    used: set[int] = set()
    hits, delays, fired, per_kind = 0, [], [], defaultdict(lambda: [0, 0])
    for g in gt.itertuples():
        per_kind[g.kind][1] += 1
        # device clocks jitter by seconds around the grid: half an interval of slack before the start
        cands = [f for f in by_dev.get(g.device_id, []) if g.start - interval / 2 <= pd.Timestamp(f.start) <= g.end + interval]
        if cands:
            first = min(cands, key=lambda f: f.start)
            hits += 1
            per_kind[g.kind][0] += 1
            delays.append((pd.Timestamp(first.start) - g.start) / interval)
            # detection delay: from the injected start to the point at which an alarm was raised
            at = min(pd.Timestamp(f.fired_at if getattr(f, "fired_at", None) is not None else f.end) for f in cands)
            fired.append(max((at - g.start) / interval, 0.0))
            used.update(id(f) for f in cands)
    real = defaultdict(list)
    for r in failures.itertuples():
        lo = r.degradation_start if pd.notna(r.degradation_start) else r.failed_at - pd.Timedelta(days=1)
        real[r.device_id].append((lo, r.failed_at + pd.Timedelta(days=2)))
    fp = 0
    for f in findings:
        if id(f) in used:
            continue
        if any(lo <= pd.Timestamp(f.start) <= hi for lo, hi in real.get(f.device_id, [])):
            continue
        fp += 1
    return {"hits": hits, "gt": len(gt), "fp": fp, "delays": delays, "fired_delays": fired, "tp_findings": len(used),
            "per_kind": {k: v for k, v in per_kind.items()}}


#: Fleets end at a fixed instant, so a seed gives the same fleet (and the same figures) on any day.
END = datetime(2025, 6, 2, 12, 0)


def run_fleet(devices: int = 40, days: float = 21, seeds=SEEDS) -> dict:
    from tools.anomaly.service import detect_anomalies
    from tools.simulator import simulate_fleet
    from tools.store.bulk import read_frame
    from tools.store.engine import open_store

    totals = {"hits": 0, "gt": 0, "fp": 0, "tp_findings": 0}
    delays: list[float] = []
    fired: list[float] = []
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    seconds = 0.0
    n_findings = 0
    for seed in seeds:
        with tempfile.TemporaryDirectory() as d:
            store = open_store(f"sqlite:///{Path(d) / 'fleet.db'}")
            click.echo(f"simulating seed {seed}: {devices} devices x {days} days ...", err=True)
            simulate_fleet(store, devices=devices, days=days, seed=seed, end=END)
            t0 = time.perf_counter()
            found = detect_anomalies(store, persist=False)
            seconds += time.perf_counter() - t0
            n_findings += len(found)
            gt = read_frame(store, "SELECT device_id, kind, start, \"end\" FROM ai_gt_anomalies",
                            parse_dates=["start", "end"])
            fails = read_frame(store, "SELECT device_id, failed_at, degradation_start FROM ai_gt_failures",
                               parse_dates=["failed_at", "degradation_start"])
            r = score_run(found, gt, fails, pd.Timedelta(minutes=5))
            store.dispose()
        for k in totals:
            totals[k] += r[k]
        delays += r["delays"]
        fired += r["fired_delays"]
        for k, (h, n) in r["per_kind"].items():
            per_kind[k][0] += h
            per_kind[k][1] += n
    recall = totals["hits"] / totals["gt"] if totals["gt"] else 0.0
    precision = totals["tp_findings"] / (totals["tp_findings"] + totals["fp"]) if totals["tp_findings"] + totals["fp"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "false_positives_per_device_day": round(totals["fp"] / (devices * days * len(seeds)), 4),
        # delay until the alarm was raised (what an operator waits for); the onset estimate's
        # offset from the injected start is reported beside it
        "median_delay_intervals": float(np.median(fired)) if fired else None,
        "median_onset_error_intervals": float(np.median(delays)) if delays else None,
        "per_kind_recall": {k: round(h / n, 3) for k, (h, n) in sorted(per_kind.items())},
        "injected": totals["gt"], "findings": n_findings, "false_positives": totals["fp"],
        "seeds": list(seeds), "devices": devices, "days": days, "seconds": round(seconds, 2),
    }


@click.command(name="fleet")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--devices", default=40, show_default=True, help="Devices per simulated fleet.")
@click.option("--days", default=21.0, show_default=True, help="Days per simulated fleet.")
def command(as_json: bool, devices: int, days: float) -> None:
    """Event-level precision / recall / F1 against the simulator's injected anomalies."""
    out = run_fleet(devices, days)
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    click.echo(f"precision {out['precision']:.3f}  recall {out['recall']:.3f}  F1 {out['f1']:.3f}  (goal F1 >= 0.95)")
    click.echo(f"false positives per device-day {out['false_positives_per_device_day']:.4f} (goal <= 0.02)")
    click.echo(f"median delay {out['median_delay_intervals']} intervals to the alarm (goal <= 2); "
               f"onset estimate {out['median_onset_error_intervals']} intervals from the injected start")
    for k, v in out["per_kind_recall"].items():
        click.echo(f"  recall {k:20s} {v:.2f}")
    click.echo(f"{out['injected']} injected anomalies, {out['findings']} findings, {out['seconds']:.1f} s detecting")
