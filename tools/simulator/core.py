"""``simulate_fleet``: build a realistic HOMEPOT fleet with ground truth, fast, through the bulk path.

Order of work: plan everything that needs the global random stream (fleet, anomaly kinds, which
devices are offline or stale at the end), write sites and devices, then for each device draw its
lifecycle, signals, anomalies and records from its own random stream (so results do not depend
on chunking), encode the metric rows and bulk-insert them in chunks of ~150k rows, and finally
write the records and ground truth. Same seed and ``end`` => identical rows.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy import insert, text

from tools.simulator import anomalies as anom
from tools.simulator.catalog import DeviceSpec, SiteSpec, build_fleet
from tools.simulator.encode import FragmentCache, encode_json_rows, timestamp_strings
from tools.simulator.lifecycle import CAUSE_METRICS, REPAIR_ACTIONS, plan_lifecycle
from tools.simulator.records import build_records
from tools.simulator.signals import EVERY, SiteClock, generate, site_clock
from tools.store.bulk import insert_frame
from tools.store.engine import Store
from tools.store.schema import NAMED_METRICS, AiSimulationRun

NAMED_DECIMALS = {"cpu_percent": 1, "memory_percent": 1, "disk_percent": 2, "network_latency_ms": 1,
                  "transaction_count": 0, "transaction_volume": 2, "error_rate": 4, "active_connections": 0,
                  "queue_depth": 0}
INT_NAMED = ("transaction_count", "active_connections", "queue_depth")
DEFAULT_ANOMALIES_PER_DEVICE_WEEK = 0.75
FLUSH_ROWS = 150_000


class SimulationSummary(BaseModel):
    """What a simulation wrote (counts per table) and how long it took."""

    run_id: int
    seed: int
    sites: int
    devices: int
    metric_rows: int
    metric_values: int
    health_checks: int
    error_logs: int
    alerts: int
    state_changes: int
    jobs: int
    events: int
    anomalies: int
    failures: int
    future_failures: int
    seconds: float
    start: datetime
    end: datetime
    interval_seconds: int


def parse_interval(interval: str) -> int:
    """``"30s"``, ``"5m"``, ``"1h"`` -> seconds; one clear sentence for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", str(interval).lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"interval {interval!r} is not a duration like 30s, 5m or 1h")
    seconds = int(m.group(1)) * {"s": 1, "": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 10 <= seconds <= 6 * 3600:
        raise ValueError(f"interval {interval!r} must be between 10 seconds and 6 hours")
    return seconds


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _default_end() -> datetime:
    """Now, as the agent sees it (HOMEPOT_AI_NOW pins it), so "offline now" means what users expect."""
    from tools.config import load_settings

    return load_settings().now()


def _floor(value: datetime, seconds: int) -> datetime:
    epoch = datetime(1970, 1, 1)
    return epoch + timedelta(seconds=(int((value - epoch).total_seconds()) // seconds) * seconds)


class _Writer:
    """Buffers frames per table and writes them through ``insert_frame``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.aware_suffix = "+00:00" if store.is_postgres else ""

    def ts(self, values, aware: bool = False) -> np.ndarray:
        arr = np.array(values, dtype="datetime64[s]")
        return timestamp_strings(arr, tz_suffix=self.aware_suffix if aware else "")

    def ts_nullable(self, values: list, aware: bool = False) -> list:
        out: list = [None] * len(values)
        idx = [i for i, v in enumerate(values) if v is not None and not pd.isna(v)]
        if idx:
            strs = self.ts([np.datetime64(values[i], "s") for i in idx], aware)
            for i, s in zip(idx, strs):
                out[i] = s
        return out

    def write(self, table: str, df: pd.DataFrame, conflict=None, json_cols=()) -> int:
        if df.empty:
            return 0
        # The simulator refuses to write a seed twice and offsets ids per run, so bulk metric
        # tables are new rows: on PostgreSQL they can be COPYed straight in.
        expect_new = table in {"device_metrics", "health_checks"}
        return insert_frame(self.store, table, df, conflict=conflict, json_cols=json_cols, expect_new=expect_new)


def simulate_fleet(
    store: Store,
    *,
    devices: int,
    days: float,
    interval: str = "5m",
    seed: int = 0,
    end: datetime | None = None,
    progress: bool = False,
    anomalies_per_device_week: float = DEFAULT_ANOMALIES_PER_DEVICE_WEEK,
    failure_scale: float = 1.0,
    min_failures: int = 0,
) -> SimulationSummary:
    """Simulate ``devices`` devices for ``days`` days ending at ``end`` and write everything.

    ``failure_scale`` multiplies every device's failure hazard; ``min_failures`` forces at least
    that many in-window failures (fixtures use it so a small fleet always has one).
    """
    t0 = time.perf_counter()
    if devices < 1:
        raise ValueError("--devices must be at least 1")
    if not 0 < days <= 3650:
        raise ValueError("--days must be more than 0 and at most 3650")
    if anomalies_per_device_week < 0 or failure_scale < 0:
        raise ValueError("anomaly rate and failure scale must not be negative")
    dt_s = parse_interval(interval)
    end_dt = _floor(_naive_utc(end) if end is not None else _default_end(), dt_s)
    n = int(days * 86400 // dt_s) + 1
    if n < 3:
        raise ValueError("the simulated period must cover at least three intervals")
    end64 = np.datetime64(end_dt, "s")
    base_grid = end64 - np.arange(n - 1, -1, -1) * np.timedelta64(dt_s, "s")
    start64 = base_grid[0]
    start_dt = start64.astype(datetime)

    rng = np.random.default_rng(seed)
    sites, devs = build_fleet(rng, devices)
    _refuse_collisions(store, devs)
    weeks = n * dt_s / (7 * 86400)
    kinds = anom.plan_kinds(rng, [d.device_type for d in devs], weeks, anomalies_per_device_week)
    n_off = max(1 if devices >= 10 else 0, int(round(devices * 0.02)))
    n_stale = max(1 if devices >= 10 else 0, int(round(devices * 0.02)))
    chosen = rng.permutation(len(devs))
    offline_set = set(chosen[:n_off].tolist())
    stale_set = set(chosen[n_off : n_off + n_stale].tolist())
    lag_set = set(chosen[n_off + n_stale : n_off + n_stale + int(round(devices * 0.08))].tolist())
    forced = set()
    if min_failures > 0:
        pos_first = sorted(range(len(devs)), key=lambda i: (devs[i].device_type != "pos_terminal", i))
        forced = set(rng.permutation(pos_first[: max(min_failures * 3, min_failures)])[:min_failures].tolist())

    w = _Writer(store)
    params = {"devices": devices, "days": days, "interval": interval, "interval_seconds": dt_s,
              "anomalies_per_device_week": anomalies_per_device_week, "failure_scale": failure_scale,
              "min_failures": min_failures, "generator": "tools.simulator v1"}
    run_id = _insert_run(store, seed, params, start_dt, end_dt)
    site_base, dev_base = _next_ids(store)
    site_db = {s.index: site_base + s.index for s in sites}
    dev_db = {d.index: dev_base + d.index for d in devs}

    lives = [plan_lifecycle(d, start64, end64, np.random.default_rng([seed, 11, d.index]), failure_scale,
                            force_failure=d.index in forced) for d in devs]
    offline_from: dict[int, int] = {}
    stale_cut: dict[int, int] = {}
    orng = np.random.default_rng([seed, 13])
    for i in sorted(offline_set):
        offline_from[i] = n - 1 - int(orng.integers(max(2, 900 // dt_s), max(3, 8 * 3600 // dt_s)))
    for i in sorted(stale_set):
        stale_cut[i] = n - 1 - int(orng.integers(max(2, 1200 // dt_s), max(3, 5400 // dt_s)))
    for i in sorted(lag_set):
        stale_cut[i] = n - 1 - int(orng.integers(1, 3))

    _write_sites(w, sites, site_db, devs, start_dt, end_dt)
    _write_devices(w, devs, lives, site_db, dev_db, offline_from, stale_cut, base_grid, dt_s, end64, seed)

    cache = FragmentCache()
    clocks: dict[int, SiteClock] = {}
    buf: list[pd.DataFrame] = []
    buf_rows = 0
    totals = {"metric_rows": 0, "metric_values": 0}
    health: list[pd.DataFrame] = []
    logs: list[dict] = []
    alerts: list[dict] = []
    states: list[dict] = []
    jobs: list[dict] = []
    events: list[dict] = []
    gt_anoms: list[dict] = []
    gt_fail: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(devs), desc="simulating", unit="device", file=__import__("sys").stderr)

    for dev in devs:
        drng = np.random.default_rng([seed, 17, dev.index])
        clock = clocks.get(dev.site.index)
        if clock is None:
            clock = clocks[dev.site.index] = site_clock(dev.site, base_grid, np.random.default_rng([seed, 19, dev.site.index]))
        phase = int(drng.integers(0, min(dt_s, 40)))
        grid = base_grid - np.timedelta64(phase, "s") - drng.integers(0, 3, size=n).astype("timedelta64[s]")
        life = lives[dev.index]
        sig = generate(dev, clock, grid, dt_s, life, drng)
        occupied = sig.down | sig.maintenance
        off = offline_from.get(dev.index)
        if off is not None:
            occupied[max(0, off - int(6 * 3600 / dt_s)) :] = True
        injected = anom.inject(dev.device_type, sig, clock, kinds[dev.index], dt_s, drng, occupied)
        keep = ~(sig.down | sig.maintenance)
        for a in injected:
            if a.kind == "outage":
                keep[a.start_idx : a.end_idx + 1] = False
        if off is not None:
            keep[off:] = False
            injected.append(anom.InjectedAnomaly("outage", list(NAMED_METRICS), off, n - 1,
                                                 round((n - off) * dt_s / 3600, 3), {"ongoing": True, "cause": "network"}))
        # missed samples: isolated drops and short bursts (under 20 minutes)
        keep &= drng.random(n) > 0.002
        for _ in range(int(drng.poisson(max(weeks, 0.01)))):
            b = int(drng.integers(0, n))
            keep[b : b + int(drng.integers(1, max(2, 1200 // dt_s)))] = False
        cut = stale_cut.get(dev.index)
        if cut is not None:
            keep[cut + 1 :] = False
        keep[0] = keep[0] and not sig.down[0]

        rec = build_records(dev, dev_db[dev.index], site_db[dev.site.index], grid, keep, sig, life, injected,
                            off, start64, end64, dt_s, drng)
        frame, values = _metric_frame(dev_db[dev.index], grid, keep, sig, dt_s, drng, cache, w)
        buf.append(frame)
        buf_rows += len(frame)
        totals["metric_rows"] += len(frame)
        totals["metric_values"] += values
        health.append(pd.DataFrame(rec.health))
        logs += rec.error_logs
        alerts += rec.alerts
        states += rec.states
        jobs += rec.jobs
        events += rec.events
        for a in injected:
            gt_anoms.append({"run_id": run_id, "device_id": dev_db[dev.index], "kind": a.kind, "metrics": a.metrics,
                             "start": grid[a.start_idx], "end": grid[a.end_idx], "magnitude": float(a.magnitude),
                             "details": {**a.details, "device": dev.device_id}})
        for ep in life.episodes:
            gt_fail.append({"run_id": run_id, "device_id": dev_db[dev.index], "failed_at": ep.failed_at,
                            "cause": ep.cause, "degradation_start": ep.degradation_start,
                            "metrics": CAUSE_METRICS[ep.cause], "resolution": None if ep.future else ep.resolution,
                            "details": {"future": ep.future, "ongoing": bool(ep.failed_at <= end64 < ep.restored_at),
                                        "restored_at": None if ep.future else str(ep.restored_at),
                                        "action": None if ep.future else (
                                            "Replace device" if ep.resolution == "replacement" else REPAIR_ACTIONS[ep.cause]),
                                        "hazard_multiplier": round(life.hazard_multiplier, 4),
                                        "device": dev.device_id}})
        if buf_rows >= FLUSH_ROWS:
            _flush_metrics(w, buf)
            buf, buf_rows = [], 0
        if bar is not None:
            bar.update(1)
    if buf:
        _flush_metrics(w, buf)
    if bar is not None:
        bar.set_description("writing records")

    hc = pd.concat(health, ignore_index=True) if health else pd.DataFrame()
    if not hc.empty:
        hc["timestamp"] = w.ts(hc["timestamp"].to_numpy(), aware=True)
        w.write("health_checks", hc, conflict=("device_id", "timestamp"), json_cols=("response_data",))
    _write_dicts(w, "error_logs", logs, ts_cols={"timestamp": False, "resolved_at": False}, json_cols=("context",))
    _write_dicts(w, "alerts", alerts, ts_cols={"timestamp": False, "resolved_at": False})
    _write_dicts(w, "device_state_history", states, ts_cols={"timestamp": True}, json_cols=("extra_data",))
    _write_dicts(w, "jobs", jobs, ts_cols={k: True for k in ("scheduled_at", "started_at", "completed_at", "created_at")},
                 json_cols=("payload", "result"), conflict=("job_id",))
    _write_dicts(w, "ai_device_events", events, ts_cols={"timestamp": False}, json_cols=("details",),
                 conflict=("device_id", "event_type", "timestamp"))
    _write_dicts(w, "ai_gt_anomalies", gt_anoms, ts_cols={"start": False, "end": False}, json_cols=("metrics", "details"))
    _write_dicts(w, "ai_gt_failures", gt_fail, ts_cols={"failed_at": False, "degradation_start": False},
                 json_cols=("metrics", "details"))
    if bar is not None:
        bar.close()
    in_window = [f for f in gt_fail if start64 <= f["failed_at"] <= end64]
    return SimulationSummary(
        run_id=run_id, seed=seed, sites=len(sites), devices=len(devs),
        metric_rows=totals["metric_rows"], metric_values=totals["metric_values"],
        health_checks=len(hc), error_logs=len(logs), alerts=len(alerts), state_changes=len(states),
        jobs=len(jobs), events=len(events), anomalies=len(gt_anoms), failures=len(in_window),
        future_failures=sum(1 for f in gt_fail if f["details"]["future"]),
        seconds=round(time.perf_counter() - t0, 3), start=start_dt, end=end_dt, interval_seconds=dt_s)


# --------------------------------------------------------------------------- helpers


def _refuse_collisions(store: Store, devs: list[DeviceSpec]) -> None:
    ids = [d.device_id for d in devs]
    with store.engine.connect() as conn:
        found = conn.execute(text("SELECT device_id FROM devices WHERE device_id IN (" +
                                  ",".join(f":p{i}" for i in range(min(len(ids), 500))) + ")"),
                             {f"p{i}": v for i, v in enumerate(ids[:500])}).first()
    if found is not None:
        raise ValueError("this store already holds a simulated fleet made with this seed; "
                         "use another --seed or a fresh store")


def _insert_run(store: Store, seed: int, params: dict, start: datetime, end: datetime) -> int:
    with store.engine.begin() as conn:
        res = conn.execute(insert(AiSimulationRun).values(
            seed=seed, params=params, start=start, end=end, created_at=datetime.now(timezone.utc).replace(tzinfo=None)))
        return int(res.inserted_primary_key[0])


def _next_ids(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        s = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM sites")).scalar_one()
        d = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM devices")).scalar_one()
    return int(s) + 1, int(d) + 1


def _write_sites(w: _Writer, sites: list[SiteSpec], site_db: dict[int, int], devs: list[DeviceSpec],
                 start: datetime, end: datetime) -> None:
    oldest: dict[int, float] = {}
    for d in devs:
        oldest[d.site.index] = max(oldest.get(d.site.index, 0.0), d.age_days)
    rows = [{"id": site_db[s.index], "site_id": s.site_id, "name": s.name,
             "description": f"{s.format.replace('_', ' ').title()} - {s.name}", "location": s.location,
             "latitude": s.latitude, "longitude": s.longitude, "tenant_id": 1, "is_active": True,
             "is_monitored": True, "lifecycle_state": "active",
             "created_at": np.datetime64(start - timedelta(days=oldest.get(s.index, 0.0) + 30), "s"),
             "updated_at": np.datetime64(end, "s")} for s in sites]
    _write_dicts(w, "sites", rows, ts_cols={"created_at": True, "updated_at": True})
    sched = [{"site_id": site_db[s.index], **{k: v for k, v in r.items() if k not in ("open_h", "close_h")}}
             for s in sites for r in s.schedule]
    _write_dicts(w, "site_operating_schedules", sched, ts_cols={})


def _write_devices(w: _Writer, devs: list[DeviceSpec], lives, site_db, dev_db, offline_from, stale_cut,
                   grid: np.ndarray, dt_s: int, end64: np.datetime64, seed: int) -> None:
    rng = np.random.default_rng([seed, 23])
    rows = []
    start64 = grid[0]
    for d in devs:
        life = lives[d.index]
        health, status = "healthy", "online"
        heartbeat = end64 - np.timedelta64(int(rng.integers(2, 60)), "s")
        last_seen = heartbeat
        for ep in life.episodes:
            if ep.failed_at <= end64 < ep.restored_at:
                health, status = ("maintenance" if ep.repair_started <= end64 else "error"), "offline"
                heartbeat = last_seen = ep.failed_at
            elif not ep.future and ep.degradation_start <= end64 < ep.failed_at:
                frac = (end64 - ep.degradation_start) / (ep.failed_at - ep.degradation_start)
                if frac > 0.65:
                    health = "warning"
            elif ep.future and ep.degradation_start <= end64:
                frac = (end64 - ep.degradation_start) / (ep.failed_at - ep.degradation_start)
                if frac > 0.65:
                    health = "warning"
        for mt in life.maintenance:
            if mt.start <= end64 < mt.end:
                health, status = "maintenance", "maintenance"
        if d.index in offline_from:
            health, status = "unknown", "offline"
            heartbeat = last_seen = grid[offline_from[d.index]]
        elif d.index in stale_cut:
            last_seen = grid[stale_cut[d.index]]
        created = start64 - np.timedelta64(int(d.age_days * 86400), "s")
        peripherals = ({"card_reader": "Ingenico Lane/3000", "printer": "Epson TM-m30III", "cash_drawer": True,
                        "scanner": "Honeywell Voyager 1470g"} if d.device_type == "pos_terminal" else None)
        rows.append({
            "id": dev_db[d.index], "device_id": d.device_id, "name": d.name, "device_type": d.device_type,
            "status": status, "lifecycle_state": "active", "health_state": health, "site_id": site_db[d.site.index],
            "enrollment_method": "qr_code" if d.device_type == "pos_terminal" else "auto_discovery",
            "ip_address": d.ip, "mac_address": d.mac, "os_details": d.os, "firmware_version": d.firmware,
            "last_seen": last_seen, "last_heartbeat_at": heartbeat, "peripherals": peripherals,
            "capabilities": {"remote_reboot": d.device_type != "iot_sensor", "metrics": True,
                             "firmware_ota": d.device_type != "unknown"},
            "config": {"device_source": "simulation", "collection_interval_seconds": dt_s, "role": d.role,
                       **({"setpoint_celsius": d.setpoint_c} if d.device_type == "iot_sensor" else {})},
            "is_active": True, "is_monitored": d.device_type != "unknown", "is_simulated": True,
            "created_at": created, "updated_at": end64})
    _write_dicts(w, "devices", rows, ts_cols={"last_seen": True, "last_heartbeat_at": True, "created_at": True,
                                              "updated_at": True},
                 json_cols=("peripherals", "capabilities", "config"))


def _write_dicts(w: _Writer, table: str, rows: list[dict], *, ts_cols: dict[str, bool], json_cols=(), conflict=None) -> None:
    if not rows:
        return
    df = pd.DataFrame(rows)
    for col, aware in ts_cols.items():
        if col in df.columns:
            df[col] = w.ts_nullable(df[col].tolist(), aware)
    w.write(table, df, conflict=conflict, json_cols=json_cols)


def _metric_frame(db_id: int, grid: np.ndarray, keep: np.ndarray, sig, dt_s: int, rng: np.random.Generator,
                  cache: FragmentCache, w: _Writer) -> tuple[pd.DataFrame, int]:
    """The device's kept rows as a frame: named columns plus the ``extra_metrics`` JSON text."""
    idx = np.flatnonzero(keep)
    m = len(idx)
    cols: dict[str, Any] = {"timestamp": w.ts(grid[idx]), "device_id": np.full(m, db_id, dtype=np.int64)}
    values = 0
    for name in NAMED_METRICS:
        v = sig.named[name][idx]
        if name in INT_NAMED:
            cols[name] = np.maximum(np.round(v), 0).astype(np.int64)
        else:
            cols[name] = np.round(v, NAMED_DECIMALS[name])
        values += m
    phases = {}
    json_cols = []
    for name, (arr, rate_s, dec) in sig.extras.items():
        v = arr[idx]
        if rate_s != EVERY and rate_s > dt_s:
            step = int(round(rate_s / dt_s))
            ph = phases.setdefault(rate_s, int(rng.integers(0, step)))
            v = np.where((idx + ph) % step == 0, v, np.nan)
        json_cols.append((name, v.astype(float), dec))
        values += int(np.count_nonzero(~np.isnan(v)))
    cols["extra_metrics"] = encode_json_rows(json_cols, m, cache) if m else []
    cols["provenance"] = "simulated"
    cols["collection_interval_seconds"] = dt_s
    return pd.DataFrame(cols), values


def _flush_metrics(w: _Writer, frames: list[pd.DataFrame]) -> None:
    df = pd.concat(frames, ignore_index=True)
    w.write("device_metrics", df, conflict=("device_id", "timestamp"), json_cols=("extra_metrics",))
