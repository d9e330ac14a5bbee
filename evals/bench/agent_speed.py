"""``homepot-ai bench agent``: how fast the agent answers on the demo fleet.

Two figures against the goals of issue 5:

- p50/p95 of one offline turn *with its tool calls* (model, tools, grounding, trust line,
  checkpoint writes) over a set of typical questions, in-process and warm; goal p95 < 300 ms;
- ``homepot-ai ask`` from process start to answer, as a user runs it (a fresh Python process,
  imports included); goal < 5 s.

The store is the configured one; when it holds no devices, the demo fleet (60 devices x 14
days, seed 42) is simulated into it first. ``--json`` prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import click

QUESTIONS = (
    "how many devices are offline?",
    "which 5 devices had the most anomalies this week?",
    "which devices need maintenance in the next 30 days?",
    "show open alerts",
    "average cpu yesterday",
    "what is the error rate over the last 7 days?",
)
TURN_GOAL_MS = 300.0
PROCESS_GOAL_S = 5.0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[k]


def _count_devices(store) -> int:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM devices")).scalar() or 0)


def ensure_demo_fleet(store, settings, devices: int, days: int, seed: int):
    """The demo fleet as ``make demo`` leaves it (fleet, anomaly scan, risk fit): returns settings."""
    from app.cli.demo_cmds import prepare_demo_store

    return prepare_demo_store(store, settings, devices=devices, days=days, seed=seed)


def time_turns(rounds: int) -> dict:
    """Offline turns in one warm process (one thread per question, so history stays short)."""
    from agent.runtime import Agent

    agent = Agent.from_settings(model="offline", surface="bench")
    try:
        agent.ask(QUESTIONS[0])  # warm-up: imports, catalog, SQLite page cache
        times: list[float] = []
        calls = 0
        for _ in range(rounds):
            for q in QUESTIONS:
                started = time.perf_counter()
                reply = agent.ask(q)
                times.append((time.perf_counter() - started) * 1000)
                calls += len(reply.tool_calls)
    finally:
        agent.close()
    return {"turns": len(times), "tool_calls": calls, "p50_ms": round(_p(times, 0.5), 1),
            "p95_ms": round(_p(times, 0.95), 1), "max_ms": round(max(times), 1)}


def time_process(runs: int) -> dict:
    """``homepot-ai ask`` as a fresh process, start to answer."""
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "ask", QUESTIONS[0], "--model", "offline"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise click.ClickException(f"homepot-ai ask failed: {proc.stderr.strip()[-300:]}")
    return {"runs": runs, "median_s": round(statistics.median(times), 2), "max_s": round(max(times), 2)}


@click.command()
@click.option("--rounds", default=5, show_default=True, help="Passes over the question set.")
@click.option("--runs", default=3, show_default=True, help="Fresh-process `ask` runs.")
@click.option("--devices", default=60, show_default=True)
@click.option("--days", default=14, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--json", "json_", is_flag=True, help="Print one JSON object.")
def command(rounds: int, runs: int, devices: int, days: int, seed: int, json_: bool) -> None:
    """p95 of an offline agent turn (goal < 300 ms) and `ask` start-to-answer (goal < 5 s)."""
    from app.context import settings_from_env, store_from_settings

    settings = settings_from_env()
    store = store_from_settings(settings)
    ensure_demo_fleet(store, settings, devices, days, seed)
    n_devices = _count_devices(store)
    store.dispose()
    turns = time_turns(rounds)
    process = time_process(runs)
    result = {"benchmark": "agent", "devices": n_devices, "turn": turns, "ask_process": process,
              "goals": {"turn_p95_ms": TURN_GOAL_MS, "ask_process_s": PROCESS_GOAL_S},
              "pass": turns["p95_ms"] < TURN_GOAL_MS and process["max_s"] < PROCESS_GOAL_S,
              "cpus": os.cpu_count()}
    if json_:
        click.echo(json.dumps(result))
        return
    click.echo(f"Agent speed on {n_devices} devices ({os.cpu_count()} CPUs)")
    click.echo(f"  offline turn   p50 {turns['p50_ms']:.0f} ms  p95 {turns['p95_ms']:.0f} ms  "
               f"(goal p95 < {TURN_GOAL_MS:.0f} ms; {turns['turns']} turns, {turns['tool_calls']} tool calls)")
    click.echo(f"  ask process    median {process['median_s']:.2f} s  max {process['max_s']:.2f} s  "
               f"(goal < {PROCESS_GOAL_S:.0f} s)")
