"""``homepot-ai bench store``: the store's own figures (issue 2), on SQLite and PostgreSQL.

For each backend, in a fresh store (a temporary SQLite file; a dedicated PostgreSQL schema so
parallel work never collides):

1. ``simulate``: wall time of ``simulate_fleet`` (default 200 devices x 30 days at 5 min) and the
   database size on disk afterwards. Goal: under 120 s.
2. ``status``: latency of ``fleet_status`` on that fleet (best of 3). Goal: under 1 s.
3. ``import``: throughput of ``import_files`` from a generated CSV of at least 1M rows for the
   fleet's devices, in the time before the simulated window (so every row is new). Goal:
   >= 50,000 metric values/s into SQLite, >= 100,000/s into PostgreSQL.
4. ``load``: ``load_metrics`` of the nine named metrics of the whole fleet (no goal; reported).

Figures depend on the machine and on contention; the JSON says where they were taken.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

GOALS = {
    "simulate_seconds": 120.0,
    "import_values_per_s": {"sqlite": 50_000, "postgres": 100_000},
    "status_seconds": 1.0,
}
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _log(msg: str) -> None:
    click.echo(msg, err=True)


@contextmanager
def _bench_store(backend: str, pg_url: str, workdir: Path) -> Iterator[Any]:
    """A fresh store for one backend; dropped afterwards."""
    from tools.store.engine import open_store, scratch_postgres_store

    if backend == "sqlite":
        store = open_store(f"sqlite:///{workdir / 'bench.db'}")
        try:
            yield store
        finally:
            store.dispose()
        return
    with scratch_postgres_store(pg_url, prefix="bench_store") as store:
        yield store


def _schema_size(store) -> int:
    """Bytes on disk of our tables: the SQLite file, or the PostgreSQL schema's relations."""
    if store.is_sqlite:
        return store.size_bytes()
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')")).scalar())


def write_import_file(store, path: Path, *, rows: int, before: datetime, shape: str = "long") -> dict[str, Any]:
    """A CSV of ``rows`` rows for the store's devices, ending 5 minutes before ``before``.

    ``long``: one named metric value per row. ``wide``: nine named metrics per row.
    """
    from tools.store.schema import NAMED_METRICS

    devices = pd.read_sql("SELECT device_id FROM devices ORDER BY id", store.engine)["device_id"].tolist()
    if not devices:
        raise ValueError("the store has no devices to write metrics for")
    per_step = len(devices) * (len(NAMED_METRICS) if shape == "long" else 1)
    steps = -(-rows // per_step)
    stamps = pd.date_range(end=pd.Timestamp(before) - pd.Timedelta(minutes=5), periods=steps, freq="5min")
    rng = np.random.default_rng(7)
    dev = np.repeat(np.array(devices, dtype=object), steps)
    ts = np.tile(stamps.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object), len(devices))
    if shape == "wide":
        frame = pd.DataFrame({"device_id": dev, "timestamp": ts})
        for m in NAMED_METRICS:
            frame[m] = rng.uniform(0, 100, len(frame)).round(2)
        values = frame.shape[0] * len(NAMED_METRICS)
    else:
        m = len(NAMED_METRICS)
        frame = pd.DataFrame({
            "device_id": np.repeat(dev, m),
            "timestamp": np.repeat(ts, m),
            "metric": np.tile(np.array(NAMED_METRICS, dtype=object), len(dev)),
            "value": rng.uniform(0, 100, len(dev) * m).round(2),
        })
        values = len(frame)
    frame.to_csv(path, index=False)
    return {"rows": int(len(frame)), "values": int(values), "bytes": path.stat().st_size, "shape": shape}


def run_backend(backend: str, *, devices: int, days: float, import_rows: int, shape: str, pg_url: str,
                skip_simulate: bool = False) -> dict[str, Any]:
    from tools.status import fleet_status
    from tools.store.ingest import import_files
    from tools.store.metrics_io import load_metrics
    from tools.store.schema import NAMED_METRICS

    out: dict[str, Any] = {"backend": backend}
    workdir = Path(tempfile.mkdtemp(prefix="homepot_bench_"))
    try:
        with _bench_store(backend, pg_url, workdir) as store:
            now = datetime.utcnow().replace(microsecond=0)
            if skip_simulate:
                _seed_devices(store, devices)
                out["simulate"] = None
            else:
                from tools.simulator import simulate_fleet

                _log(f"[{backend}] simulating {devices} devices x {days} days ...")
                t0 = time.perf_counter()
                try:
                    summary = simulate_fleet(store, devices=devices, days=days, interval="5m", seed=0, end=now)
                except Exception as exc:  # report it, and still measure import and status
                    _log(f"[{backend}] simulate failed: {type(exc).__name__}: {exc}")
                    out["simulate"] = {"error": f"{type(exc).__name__}: {exc}"}
                    _seed_devices(store, devices)
                else:
                    sim_s = time.perf_counter() - t0
                    out["simulate"] = {
                        "seconds": round(sim_s, 1),
                        "size_mb": round(_schema_size(store) / 1e6, 1),
                        "summary": _jsonable(summary),
                    }
            _log(f"[{backend}] status ...")
            lat = []
            for _ in range(3):
                t0 = time.perf_counter()
                fleet_status(store, now)
                lat.append(time.perf_counter() - t0)
            out["status_seconds"] = round(min(lat), 3)

            _log(f"[{backend}] loading named metrics of the fleet ...")
            t0 = time.perf_counter()
            long = load_metrics(store, metrics=list(NAMED_METRICS))
            out["load"] = {"seconds": round(time.perf_counter() - t0, 2), "values": int(len(long))}
            del long

            from sqlalchemy import text

            with store.engine.connect() as conn:
                first = conn.execute(text("SELECT MIN(timestamp) FROM device_metrics")).scalar()
            before = pd.Timestamp(first).to_pydatetime() if first is not None else now - timedelta(days=days)
            path = workdir / f"import_{shape}.csv"
            _log(f"[{backend}] writing a {import_rows:,}-row {shape} CSV ...")
            info = write_import_file(store, path, rows=import_rows, before=before, shape=shape)
            _log(f"[{backend}] importing it ...")
            t0 = time.perf_counter()
            report = import_files(store, [path], now=now, progress=sys.stderr.isatty())
            imp_s = time.perf_counter() - t0
            out["import"] = {
                **info,
                "seconds": round(imp_s, 2),
                "values_stored": report.values_stored,
                "rejected": report.n_rejected,
                "values_per_s": round(report.values_stored / imp_s) if imp_s > 0 else None,
            }
            out["size_mb_after_import"] = round(_schema_size(store) / 1e6, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _seed_devices(store, devices: int) -> None:
    """Devices only (for --skip-simulate, or when the simulator fails): enough for import and status."""
    from tools.store.bulk import insert_frame

    # Explicit ids: a half-finished simulation may have written ids without moving the sequence.
    site = int(pd.read_sql("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM sites", store.engine)["n"].iloc[0])
    first = int(pd.read_sql("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM devices", store.engine)["n"].iloc[0])
    insert_frame(store, "sites", pd.DataFrame({"id": [site], "site_id": ["SITE-BNCH-0001"], "name": ["bench"]}),
                 conflict=("site_id",))
    frame = pd.DataFrame({
        "id": np.arange(first, first + devices),
        "device_id": [f"DEVICE-BNCH-{i // 10000:04d}-{i % 10000:04d}" for i in range(devices)],
        "name": [f"bench {i}" for i in range(devices)], "device_type": "pos_terminal", "site_id": site})
    insert_frame(store, "devices", frame, conflict=("device_id",))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return json.loads(json.dumps(asdict(obj), default=str))
    return json.loads(json.dumps(obj, default=str))


def _rows_for_table(results: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in results:
        b = r["backend"]
        sim = r.get("simulate")
        if sim and "error" in sim:
            rows.append(("simulate wall time", b, "failed: " + sim["error"][:60], "< 120 s", "NO"))
        elif sim:
            ok = sim["seconds"] < GOALS["simulate_seconds"]
            rows.append(("simulate wall time", b, f"{sim['seconds']:.1f} s", "< 120 s", "yes" if ok else "NO"))
            rows.append(("database size after simulate", b, f"{sim['size_mb']:,.0f} MB", "-", ""))
        imp = r["import"]
        goal = GOALS["import_values_per_s"][b]
        ok = (imp["values_per_s"] or 0) >= goal
        rows.append((f"import ({imp['rows']:,} {imp['shape']} rows)", b, f"{imp['values_per_s']:,} values/s",
                     f">= {goal:,}/s", "yes" if ok else "NO"))
        ok = r["status_seconds"] < GOALS["status_seconds"]
        rows.append(("status latency", b, f"{r['status_seconds'] * 1000:.0f} ms", "< 1 s", "yes" if ok else "NO"))
        rows.append(("load_metrics (named, whole fleet)", b,
                     f"{r['load']['seconds']:.1f} s / {r['load']['values']:,} values", "-", ""))
    return rows


@click.command(name="store")
@click.option("--devices", default=200, show_default=True)
@click.option("--days", default=30.0, show_default=True)
@click.option("--backend", type=click.Choice(["sqlite", "postgres", "both"]), default="both", show_default=True)
@click.option("--import-rows", default=1_000_000, show_default=True, help="Rows in the generated import file.")
@click.option("--shape", type=click.Choice(["long", "wide"]), default="long", show_default=True,
              help="Shape of the generated import file.")
@click.option("--pg-url", default=lambda: os.environ.get("HOMEPOT_AI_BENCH_PG_URL", DEFAULT_PG_URL),
              show_default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
              help="PostgreSQL server for the postgres run (a schema is created and dropped).")
@click.option("--skip-simulate", is_flag=True, help="Only devices, no simulated history (import and status only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def command(devices: int, days: float, backend: str, import_rows: int, shape: str, pg_url: str,
            skip_simulate: bool, as_json: bool) -> None:
    """Store figures: simulate wall time and size, import throughput, status latency."""
    backends = ["sqlite", "postgres"] if backend == "both" else [backend]
    results = []
    for b in backends:
        try:
            results.append(run_backend(b, devices=devices, days=days, import_rows=import_rows, shape=shape,
                                       pg_url=pg_url, skip_simulate=skip_simulate))
        except Exception as exc:  # one backend down must not hide the other's figures
            if b == "postgres" and "connect" in str(exc).lower():
                _log(f"[postgres] skipped: cannot reach {pg_url}")
                continue
            raise
    meta = {"devices": devices, "days": days, "import_rows": import_rows, "shape": shape,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if as_json:
        click.echo(json.dumps({"bench": "store", **meta, "goals": GOALS, "results": results}, default=str))
        return
    rows = _rows_for_table(results)
    header = ("figure", "backend", "measured", "goal", "met")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    click.echo(f"({meta['machine']}; load average {meta['load_average']:.1f} at the end)")
