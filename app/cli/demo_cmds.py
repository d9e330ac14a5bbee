"""``homepot-ai demo`` (``make demo``): set up, build a demo fleet if the store is empty, chat.

The analytics steps (an initial anomaly scan, a risk fit) run when their modules exist and are
skipped with a note otherwise, so the demo works at every stage of the project. Without a TTY
(CI, a pipe) it asks three sample questions instead of opening the chat.
"""

from __future__ import annotations

import importlib
import sys
import time
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


def _optional_step(label: str, module: str, attr: str, *args: Any, **kwargs: Any) -> None:
    """Run ``module.attr(*args)`` when that module exists; one line either way."""
    started = time.perf_counter()
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        click.echo(f"  {label}: skipped ({module}.{attr} is not available yet)", err=True)
        return
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the demo goes on; the step says why it stopped
        click.echo(f"  {label}: failed ({type(exc).__name__}: {exc})", err=True)
        return
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
    if _device_count(store) == 0:
        from tools.simulator import simulate_fleet

        click.echo(f"Building a demo fleet: {devices} devices x {days} days (seed {seed})...", err=True)
        started = time.perf_counter()
        simulate_fleet(store, devices=devices, days=days, interval="5m", seed=seed, progress=True, min_failures=1)
        click.echo(f"  fleet built in {time.perf_counter() - started:.1f}s", err=True)
        _optional_step("anomaly scan", "tools.anomaly.service", "scan_new", store, settings.now())
        _optional_step("maintenance risk fit", "tools.maintenance.service", "fit_fleet_risk", store, settings.now())
    else:
        click.echo(f"Using the existing fleet ({_device_count(store)} devices).", err=True)
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
