"""``homepot-ai bench anomaly-speed``: how fast the fleet detector scores.

Two figures (issue 3 goals): scoring every metric of a 200-device x 30-day fleet at 5-minute
intervals (< 60 s), and one incremental pass over a new 5-minute interval for 2,000 devices
(< 5 s). The data is synthetic (daily pattern + noise) and built in memory, so the figure is the
detector's own cost; reading from the store is measured by the store benchmark.
"""

from __future__ import annotations

import json
import sys
import time

import click
import numpy as np
import pandas as pd

from tools.store.schema import NAMED_METRICS


def _panel(devices: int, steps: int, seed: int = 0):
    from tools.anomaly.engine import Panel

    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=steps, freq="5min")
    hour = times.hour.to_numpy() + times.minute.to_numpy() / 60
    busy = np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None)[:, None, None]
    level = rng.uniform(10, 60, (1, devices, len(NAMED_METRICS)))
    vals = level * (1 + 0.5 * busy) + rng.normal(0, 1, (steps, devices, len(NAMED_METRICS)))
    return Panel(times.to_numpy(), list(range(1, devices + 1)), list(NAMED_METRICS), vals, pd.Timedelta(minutes=5))


def run_speed(batch_devices: int = 200, days: int = 30, inc_devices: int = 2000) -> dict:
    from tools.anomaly.engine import FleetDetector

    batch = _panel(batch_devices, days * 288)
    t0 = time.perf_counter()
    FleetDetector(batch.device_ids, batch.metrics).run(batch)
    batch_s = time.perf_counter() - t0
    warm = _panel(inc_devices, 288 * 2, seed=1)
    det = FleetDetector(warm.device_ids, warm.metrics)
    det.run(warm, flush=False)
    one = _panel(inc_devices, 1, seed=2)
    one.times = np.asarray([warm.times[-1] + np.timedelta64(5, "m")])
    t0 = time.perf_counter()
    det.run(one, flush=False)
    inc_s = time.perf_counter() - t0
    return {"batch_devices": batch_devices, "batch_days": days,
            "batch_points": int(batch.values.size), "batch_seconds": round(batch_s, 2),
            "incremental_devices": inc_devices, "incremental_seconds": round(inc_s, 4),
            "goal_batch_seconds": 60, "goal_incremental_seconds": 5}


@click.command(name="anomaly-speed")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def command(as_json: bool) -> None:
    """Detector speed: 200 devices x 30 days batch, and one 5-minute pass over 2,000 devices."""
    click.echo("timing the detector ...", err=True)
    out = run_speed()
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    click.echo(f"batch: {out['batch_devices']} devices x {out['batch_days']} days x 9 metrics "
               f"({out['batch_points']:,} points): {out['batch_seconds']:.1f} s (goal < 60 s)")
    click.echo(f"incremental: one 5-minute interval, {out['incremental_devices']} devices: "
               f"{out['incremental_seconds']:.3f} s (goal < 5 s)")
