"""``homepot-ai bench``: benchmark commands that print our figure beside the published anchors.

Each benchmark lives in ``evals/bench/`` and exposes a click command; they load lazily.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

BENCHMARKS: dict[str, str] = {
    "nab": "evals.bench.nab:command",
    "fleet": "evals.bench.fleet_anomaly:command",
    "anomaly-speed": "evals.bench.anomaly_speed:command",
    "cmapss": "evals.bench.cmapss:command",
    "pdm": "evals.bench.pdm:command",
    "failures": "evals.bench.failures:command",
    "store": "evals.bench.store_perf:command",
    "agent": "evals.bench.agent_speed:command",
}


class _BenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = []
        for name in BENCHMARKS:
            if importlib.util.find_spec(BENCHMARKS[name].split(":")[0]) is not None:
                names.append(name)
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = BENCHMARKS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        if importlib.util.find_spec(module_name) is None:
            return None
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Run a benchmark and print our figure beside the published anchors.

    \b
    Examples:
      homepot-ai bench nab --json
      homepot-ai bench cmapss
    """
