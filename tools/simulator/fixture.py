"""The small seeded fleet that tests and evals share."""

from __future__ import annotations

from datetime import datetime

from tools.simulator.core import SimulationSummary, simulate_fleet
from tools.store.engine import Store

def populate_fixture_db(store: Store, seed: int = 42, *, devices: int = 24, days: float = 14,
                        end: datetime | None = None) -> SimulationSummary:
    """A fleet of ``devices`` over ``days`` with every anomaly kind and at least one failure.

    Anomalies are denser than the default (1.5 per device-week) so a fleet this small still
    holds every kind; one in-window failure is forced so failure tooling always has a case.
    """
    return simulate_fleet(store, devices=devices, days=days, interval="5m", seed=seed,
                          end=end, anomalies_per_device_week=1.5, min_failures=1)
