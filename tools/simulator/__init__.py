"""The fleet simulator: a realistic HOMEPOT fleet with recorded ground truth.

``simulate_fleet`` writes sites, devices, metrics (nine named + 40-odd ``extra_metrics``),
health checks, error logs, alerts, state history, jobs and device events, plus the ground truth
(``ai_gt_anomalies``, ``ai_gt_failures``, ``ai_simulation_runs``) that detection and prediction
are scored against. ``populate_fixture_db`` is the small seeded fleet tests and evals share.
"""

from __future__ import annotations

from tools.simulator.core import SimulationSummary, parse_interval, simulate_fleet
from tools.simulator.fixture import populate_fixture_db

__all__ = ["SimulationSummary", "parse_interval", "populate_fixture_db", "simulate_fleet"]
