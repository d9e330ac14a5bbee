"""``homepot-ai simulate``: build a realistic simulated fleet (with ground truth) in the store."""

from __future__ import annotations

import json
from datetime import datetime

import click


def _parse_end(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.ClickException(f"--end {value!r} is not an ISO-8601 time such as 2025-03-14T12:00") from exc


@click.command()
@click.option("--devices", type=int, default=50, show_default=True, help="Number of devices.")
@click.option("--days", type=float, default=14.0, show_default=True, help="Days of history, ending at --end.")
@click.option("--interval", default="5m", show_default=True, help="Collection interval, e.g. 30s, 5m, 1h.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same data.")
@click.option("--end", "end", default=None, help="End of the simulated period (ISO-8601, UTC). Default: now.")
@click.option("--anomalies-per-week", type=float, default=None, help="Injected anomalies per device-week.")
@click.option("--failure-scale", type=float, default=1.0, show_default=True, help="Multiplier of the failure hazard.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def simulate(devices: int, days: float, interval: str, seed: int, end: str | None,
             anomalies_per_week: float | None, failure_scale: float, as_json: bool) -> None:
    """Simulate a fleet of sites and devices, with anomalies, failures and their ground truth."""
    from app.context import settings_from_env, store_from_settings
    from tools.simulator import simulate_fleet
    from tools.simulator.core import DEFAULT_ANOMALIES_PER_DEVICE_WEEK
    from tools.store.engine import StoreError

    end_dt = _parse_end(end)
    try:
        store = store_from_settings(settings_from_env())
        summary = simulate_fleet(
            store, devices=devices, days=days, interval=interval, seed=seed, end=end_dt, progress=True,
            anomalies_per_device_week=DEFAULT_ANOMALIES_PER_DEVICE_WEEK if anomalies_per_week is None else anomalies_per_week,
            failure_scale=failure_scale)
        size = store.size_bytes()
    except (ValueError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    data = summary.model_dump(mode="json") | {"store": store.url, "size_bytes": size}
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(
        f"Simulated {summary.devices} device{'s' * (summary.devices != 1)} at {summary.sites} "
        f"site{'s' * (summary.sites != 1)}, {summary.start:%Y-%m-%d %H:%M} to "
        f"{summary.end:%Y-%m-%d %H:%M} UTC every {summary.interval_seconds}s (seed {summary.seed}, run {summary.run_id})."
    )
    click.echo(f"  metric rows      {summary.metric_rows:>12,}  ({summary.metric_values:,} values)")
    click.echo(f"  health checks    {summary.health_checks:>12,}")
    click.echo(f"  error logs       {summary.error_logs:>12,}")
    click.echo(f"  alerts           {summary.alerts:>12,}")
    click.echo(f"  jobs             {summary.jobs:>12,}")
    click.echo(f"  ground truth     {summary.anomalies:>12,} anomalies, {summary.failures} failures in the window, "
               f"{summary.future_failures} scheduled after it")
    click.echo(f"  took {summary.seconds:.1f}s; store {store.url} is {size / 1e6:,.1f} MB")
