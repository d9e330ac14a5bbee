"""``homepot-ai demo`` (``make demo``): set up, build a demo fleet if the store is empty, chat.

The analytics steps (an initial anomaly scan, a risk fit) run when their modules exist and are
skipped with a note otherwise, so the demo works at every stage of the project. Without a TTY
(CI, a pipe) it asks three sample questions instead of opening the chat.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

import click

SAMPLE_QUESTIONS = (
    "how many devices are offline?",
    "which 5 devices had the most anomalies this week?",
    "which devices need maintenance in the next 30 days?",
)


def _device_count(store: Any) -> int:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM devices")).scalar() or 0)


def _pin_clock(settings: Any, store: Any) -> Any:
    """The demo replays a simulated fleet: unless HOMEPOT_AI_NOW is set, its clock is the fleet's
    newest heartbeat, so devices read as online and "yesterday" means the fleet's yesterday.
    The pin goes into this process's environment, which the chat's agent reads."""
    import os

    from sqlalchemy import text

    from tools.connectivity import parse_ts

    if settings.get("HOMEPOT_AI_NOW"):
        return settings
    with store.engine.connect() as conn:
        newest = parse_ts(conn.execute(text("SELECT MAX(last_heartbeat_at) FROM devices")).scalar())
    if newest is None:
        return settings
    pinned = (newest + timedelta(seconds=5)).replace(microsecond=0).isoformat()
    os.environ["HOMEPOT_AI_NOW"] = pinned
    click.echo(f"  demo clock pinned to the fleet's end: {pinned} UTC (set HOMEPOT_AI_NOW to change)", err=True)
    return settings.replace(HOMEPOT_AI_NOW=pinned)


def prepare_demo_store(store: Any, settings: Any, *, devices: int, days: int, seed: int) -> Any:
    """Build the seeded demo fleet when the store is empty, then do what the scheduler would:
    score the recent data for anomalies and fit the failure-risk model, so that questions read
    persisted results instead of computing them on the hot path. Returns settings whose clock is
    pinned to the fleet's end (simulated data ends at the moment it was built)."""
    from tools.simulator import populate_fixture_db

    if _device_count(store) > 0:
        click.echo(f"Using the existing fleet ({_device_count(store)} devices).", err=True)
        return _pin_clock(settings, store)
    click.echo(f"Building a demo fleet: {devices} devices x {days} days (seed {seed})...", err=True)
    started = time.perf_counter()
    summary = populate_fixture_db(store, seed=seed, devices=devices, days=days)
    click.echo(f"  fleet built in {time.perf_counter() - started:.1f}s: {summary.devices} devices, "
               f"{summary.metric_rows:,} metric rows, {summary.anomalies} injected anomalies", err=True)
    settings = _pin_clock(settings, store)
    now = settings.now()
    from tools.anomaly.service import detect_anomalies
    from tools.maintenance.fleet import current_predictions

    # The scan learns each series' daily pattern on its first day: give it 8 days for "this week".
    _step("anomaly scan", detect_anomalies, store, scope="fleet", start=now - timedelta(days=min(days, 8)), end=now)
    _step("maintenance risk fit", current_predictions, store, now, refit=True)
    return settings


def _step(label: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    """Run one set-up step and say how it went in one line; a failure does not stop the demo."""
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the demo goes on; the step says why it stopped
        click.echo(f"  {label}: failed ({type(exc).__name__}: {exc})", err=True)
        return
    if isinstance(result, tuple):  # (predictions, source)
        result = result[0]
    size = len(result) if hasattr(result, "__len__") else None
    click.echo(f"  {label}: done in {time.perf_counter() - started:.1f}s"
               + (f" ({size} results)" if size is not None else ""), err=True)


@click.command()
@click.option("--devices", default=60, show_default=True, help="Devices in the demo fleet.")
@click.option("--days", default=14, show_default=True, help="Days of history in the demo fleet.")
@click.option("--seed", default=42, show_default=True, help="Simulator seed.")
@click.option("--model", default=None, metavar="offline|ollama[:NAME]|auto", help="Model provider for the chat.")
def demo(devices: int, days: int, seed: int, model: str | None) -> None:
    """Set up the store, build a demo fleet if it is empty, then open the chat.

    \b
    Example:
      homepot-ai demo --model offline
    """
    from app.cli.agent_cmds import _open_agent, run_chat
    from app.context import settings_from_env, store_from_settings

    settings = settings_from_env()
    store = store_from_settings(settings)  # creates and migrates the store (init)
    click.echo(f"Store: {store.url}", err=True)
    total = time.perf_counter()
    settings = prepare_demo_store(store, settings, devices=devices, days=days, seed=seed)
    from app.cli.store_cmds import index_runbooks

    click.echo(f"  runbooks: {index_runbooks(settings)}", err=True)
    click.echo(f"Set-up done in {time.perf_counter() - total:.1f}s.", err=True)
    store.dispose()
    agent = _open_agent(model, "demo")
    try:
        if sys.stdin.isatty():
            run_chat(agent)
            return
        if agent.provider.notice:
            click.echo(agent.provider.notice, err=True)
        for question in SAMPLE_QUESTIONS:
            reply = agent.ask(question)
            click.echo(f"\nyou> {question}\nai> {reply.answer}")
    finally:
        agent.close()
