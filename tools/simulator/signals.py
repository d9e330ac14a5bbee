"""Per-device metric signals on the time grid, vectorised with numpy.

Everything starts from the site's trading load: a smooth daily curve with lunch and dinner
peaks inside the site's local opening hours, a weekend lift, a day-to-day wobble and nothing
when the site is closed. Transactions are Poisson in that load; CPU, queue depth, latency,
active connections and network traffic follow the transactions; temperatures follow CPU and
the room; slow metrics (disk, uptime, battery, SSD wear) drift or reset at reboots. Noise is
AR(1), so neighbouring samples look like a real sensor, not white noise.

Each metric has a sampling rate (every collection, every 15 minutes, hourly); on the other rows
it is absent from ``extra_metrics``, as it would be from a real agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tools.simulator.catalog import SITE_FORMATS, DeviceSpec, SiteSpec
from tools.simulator.lifecycle import Lifecycle

EVERY = 0  # sampled on every collection
M15 = 900
H1 = 3600


@dataclass
class SiteClock:
    """The site's local calendar on the grid: hour of day, weekday, open flag, trading load."""

    hour: np.ndarray
    dow: np.ndarray
    open: np.ndarray
    load: np.ndarray  # 0 closed, ~1 at a normal peak


def site_clock(site: SiteSpec, grid: np.ndarray, rng: np.random.Generator) -> SiteClock:
    local = pd.DatetimeIndex(grid).tz_localize("UTC").tz_convert(site.tz)
    hour = (local.hour + local.minute / 60.0 + local.second / 3600.0).to_numpy(dtype=float)
    dow = local.dayofweek.to_numpy()
    # late-night hours belong to the previous trading day (a bar open till 00:30)
    fmt = SITE_FORMATS[site.format]
    sched = site.schedule
    open_h = np.array([s["open_h"] for s in sched])[dow]
    close_h = np.array([s["close_h"] for s in sched])[dow]
    is_open = (hour >= open_h) & (hour < close_h)
    ramp_in = np.clip((hour - open_h) / 0.4, 0, 1)
    ramp_out = np.clip((close_h - hour) / 0.6, 0, 1)
    shape = 0.22 + sum(a * np.exp(-0.5 * ((hour - c) / w) ** 2) for c, w, a in fmt["peaks"])
    weekend = np.where(np.isin(dow, (4, 5, 6)), fmt["weekend"], 1.0)
    dates = local.normalize().tz_localize(None).to_numpy()
    uniq, inv = np.unique(dates, return_inverse=True)
    day_factor = rng.lognormal(0.0, 0.12, size=len(uniq))[inv]
    load = np.where(is_open, shape * ramp_in * ramp_out * weekend * day_factor * site.busyness, 0.0)
    return SiteClock(hour=hour, dow=dow, open=is_open, load=load)


def decay_filter(x: np.ndarray, gain: float, phi: float) -> np.ndarray:
    """``y[t] = gain * x[t] + phi * y[t-1]`` as a truncated convolution (no scipy import)."""
    length = max(1, int(np.ceil(np.log(1e-4) / np.log(phi)))) if 0 < phi < 1 else 1
    kernel = gain * phi ** np.arange(min(length, len(x)))
    return np.convolve(x, kernel)[: len(x)]


def ar1(n: int, phi: float, sigma: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation ``sigma`` (a scalar or per sample)."""
    length = max(1, int(np.ceil(np.log(1e-4) / np.log(phi)))) if 0 < phi < 1 else 1
    eps = rng.normal(0.0, np.sqrt(1 - phi * phi), size=n + length)
    return decay_filter(eps, 1.0, phi)[length:] * sigma


@dataclass
class DeviceSignals:
    """All metric arrays of one device on the full grid (NaN where a row will be dropped)."""

    named: dict[str, np.ndarray]
    extras: dict[str, tuple[np.ndarray, int, int]]  # name -> (values, rate_s, decimals)
    util: np.ndarray
    degradation: np.ndarray  # 0..1 ramp towards the current failure
    down: np.ndarray  # True while failed (no data)
    maintenance: np.ndarray  # True during a maintenance visit (no data)
    boots: np.ndarray  # grid indices of reboots
    episode_of: np.ndarray  # index of the episode each row belongs to (-1 none)
    extra_meta: dict = field(default_factory=dict)


def _mask_between(grid: np.ndarray, a: np.datetime64, b: np.datetime64) -> np.ndarray:
    return (grid >= a) & (grid < b)


def lifecycle_arrays(grid: np.ndarray, life: Lifecycle) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Degradation ramp, downtime mask, maintenance mask, reboot indices, episode index, replaced."""
    n = len(grid)
    degr = np.zeros(n)
    down = np.zeros(n, bool)
    maint = np.zeros(n, bool)
    episode_of = np.full(n, -1)
    since_replace = np.zeros(n, bool)
    boots: list[int] = []
    for i, ep in enumerate(life.episodes):
        span = (ep.failed_at - ep.degradation_start) / np.timedelta64(1, "s")
        m = _mask_between(grid, ep.degradation_start, ep.failed_at)
        frac = ((grid[m] - ep.degradation_start) / np.timedelta64(1, "s")) / span
        degr[m] = np.maximum(degr[m], frac)
        episode_of[m] = i
        dm = _mask_between(grid, ep.failed_at, ep.restored_at)
        down |= dm
        episode_of[dm] = i
        k = np.searchsorted(grid, ep.restored_at)
        if k < n:
            boots.append(int(k))
            if ep.resolution == "replacement":
                since_replace[k:] = True
    for mt in life.maintenance:
        mm = _mask_between(grid, mt.start, mt.end)
        maint |= mm
        k = np.searchsorted(grid, mt.end)
        if k < n:
            boots.append(int(k))
    return degr, down, maint, np.array(sorted(set(boots)), dtype=int), episode_of, since_replace


def _hours_since(n: int, boots: np.ndarray, dt_h: float, initial_h: float) -> np.ndarray:
    """Hours since the last reboot at each grid index (uptime counters)."""
    idx = np.arange(n)
    last = np.full(n, -1)
    if len(boots):
        last[boots] = boots
        last = np.maximum.accumulate(last)
    return np.where(last >= 0, (idx - last) * dt_h, initial_h + idx * dt_h)


def generate(dev: DeviceSpec, clock: SiteClock, grid: np.ndarray, dt_s: int, life: Lifecycle,
             rng: np.random.Generator) -> DeviceSignals:
    """The device's metrics (before anomalies and sampling) on the full grid."""
    n = len(grid)
    dt_min = dt_s / 60.0
    dt_h = dt_s / 3600.0
    site = dev.site
    degr, down, maint, boots_lc, episode_of, replaced = lifecycle_arrays(grid, life)
    # weekly automatic reboot (Sunday ~04:00 local) on top of repairs and maintenance
    weekly = np.flatnonzero((clock.dow == 6) & (clock.hour >= 4.0) & (np.roll(clock.hour, 1) < 4.0))
    boots = np.union1d(boots_lc, weekly[weekly > 0]).astype(int)
    causes = {i: ep.cause for i, ep in enumerate(life.episodes)}
    cause_arr = np.array([causes.get(i, "") for i in episode_of]) if len(causes) else np.full(n, "")
    r = degr

    def r_for(*names: str) -> np.ndarray:
        return np.where(np.isin(cause_arr, names), r, 0.0)

    dtype = dev.device_type
    load = clock.load
    if dtype == "pos_terminal":
        util = load * dev.capacity
        rate = 1.4 * dt_min  # transactions per collection at a normal peak
        tx = rng.poisson(util * rate).astype(float)
        basket = SITE_FORMATS[site.format]["basket"]
        volume = np.where(tx > 0, rng.gamma(np.maximum(tx, 1e-9) * 2.0, basket / 2.0), 0.0)
        txn = tx / rate
        nightly = ((clock.hour >= 2.5) & (clock.hour < 2.5 + max(dt_h, 0.25))).astype(float)  # backup job
        # CPU saturates: a till at twice its normal peak is busy, not pegged at 100%
        cpu = 5.0 + rng.uniform(0, 4) + 62.0 * (1 - np.exp(-0.8 * txn)) + 22.0 * nightly + ar1(n, 0.6, 2.2, rng)
        queue = rng.poisson(0.15 + 0.55 * tx * np.minimum(util, 2.0)).astype(float)
        conns = rng.poisson(2.0 + 0.9 * tx).astype(float)
    elif dtype == "gateway":
        util = load
        n_pos = 4.0
        rate = 1.4 * dt_min * n_pos
        tx = rng.poisson(util * rate).astype(float)
        volume = np.zeros(n)
        txn = tx / rate
        cpu = 7.0 + 24.0 * txn + ar1(n, 0.7, 1.5, rng)
        queue = rng.poisson(0.05 + 0.6 * txn).astype(float)
        conns = 6.0 + rng.poisson(1.0 + 5.0 * util).astype(float)
    elif dtype == "industrial_controller":
        util = np.where(clock.open, 0.35 + load * 0.8, 0.05)
        rate = 0.8 * dt_min
        tx = rng.poisson(np.where(clock.open, load, 0) * rate).astype(float)  # machine cycles
        volume = np.zeros(n)
        txn = util
        cpu = 9.0 + 30.0 * util + ar1(n, 0.8, 2.0, rng)
        queue = rng.poisson(0.3 * tx).astype(float)
        conns = 1.0 + rng.poisson(0.3, size=n).astype(float)
    else:  # iot_sensor, unknown
        util = np.where(clock.open, 0.2 + 0.2 * load, 0.08)
        tx = np.zeros(n)
        volume = np.zeros(n)
        txn = util
        cpu = (3.0 if dtype == "iot_sensor" else 11.0) + 6.0 * util + ar1(n, 0.5, 0.8, rng)
        queue = rng.poisson(0.03, size=n).astype(float)
        conns = 1.0 + (rng.random(n) < 0.05)

    r_fan = r_for("fan_failure")
    r_disk = r_for("disk_failure")
    r_card = r_for("card_reader_failure")
    r_prn = r_for("printer_failure")
    r_mem = r_for("memory_leak_crash")
    r_bat = r_for("battery_failure", "battery_depletion")
    r_net = r_for("network_interface_failure")
    r_probe = r_for("sensor_probe_fault")
    r_board = r_for("controller_board_fault")

    cpu = cpu + 8.0 * r_board * rng.random(n) + 6.0 * r_fan ** 3
    cpu = np.clip(cpu, 0.3, 100.0)
    uptime = _hours_since(n, boots, dt_h, float(rng.uniform(2, 160)))
    mem_base = rng.uniform(28, 48) if dtype == "pos_terminal" else rng.uniform(18, 40)
    mem = mem_base + 9.0 * txn + 0.09 * np.minimum(uptime, 168) + 48.0 * r_mem ** 1.5 + ar1(n, 0.9, 0.7, rng)
    mem = np.clip(mem, 5.0, 99.5)
    days = np.arange(n) * dt_h / 24.0
    disk0 = rng.uniform(32, 74)
    disk = disk0 + 0.045 * days - 0.6 * ((days % 7) / 7.0) + 0.3 * ((days % 7) > 6.9) + ar1(n, 0.95, 0.05, rng) + 4.0 * r_disk
    disk = np.clip(disk, 1.0, 99.0)
    lat = site.latency_ms * (1.0 + 0.35 * np.minimum(txn, 2)) * np.exp(ar1(n, 0.7, 0.12, rng))
    lat = lat + rng.gamma(0.3, 10.0, size=n) + 120.0 * r_net ** 2 * rng.random(n)
    if dtype == "iot_sensor":
        lat = lat * 1.6 + 15.0
    err = 0.004 + 0.006 * np.minimum(txn, 2) + np.abs(ar1(n, 0.5, 0.002, rng))
    err = err + 0.06 * r_card ** 2 + 0.03 * r_disk ** 2 + 0.025 * r_board ** 1.5 + 0.02 * r_fan ** 3 + 0.015 * r_prn ** 2
    err = np.clip(err, 0.0, 1.0)

    named = {
        "cpu_percent": cpu,
        "memory_percent": mem,
        "disk_percent": disk,
        "network_latency_ms": lat,
        "transaction_count": tx,
        "transaction_volume": volume,
        "error_rate": err,
        "active_connections": conns,
        "queue_depth": queue,
    }

    ex: dict[str, tuple[np.ndarray, int, int]] = {}

    def add(name: str, values: np.ndarray, rate_s: int, decimals: int) -> None:
        ex[name] = (np.asarray(values, dtype=float), rate_s, decimals)

    # --- temperature first: it heads every extra_metrics object (present on every row)
    if dtype == "iot_sensor":
        setp = dev.setpoint_c
        door = rng.poisson(np.where(clock.open, 0.4 + 1.2 * load, 0.02) * dt_min / 5.0)
        defrost = ((clock.hour % 8) < 0.4).astype(float) if setp < 0 else np.zeros(n)
        warm = decay_filter(door * (0.8 if setp > 0 else 0.5) * (1 if setp < 30 else -1.5), 0.35, 0.65)
        temp = setp + warm + 3.5 * defrost + ar1(n, 0.85, 0.35 * (1 + 4 * r_probe), rng) + 3.5 * r_probe ** 2
        if setp > 30:
            temp = np.where(clock.open, temp, site.ambient_c + ar1(n, 0.9, 0.4, rng))
        humid = np.clip(55 + 6.0 * warm + 8 * defrost + ar1(n, 0.9, 2.0, rng) - (10 if setp < 0 else 0), 5, 99)
        add("temperature_celsius", temp, EVERY, 1)
        add("humidity_percent", humid, EVERY, 1)
        add("door_open_count", door, EVERY, 0)
        add("setpoint_celsius", np.full(n, setp), H1, 1)
        add("compressor_duty_percent", np.clip(35 + 12 * warm + 8 * defrost + ar1(n, 0.8, 4, rng), 0, 100) if setp < 30 else np.zeros(n), M15, 1)
        add("defrost_active", defrost, M15, 0)
        bat = np.clip(96 - 0.02 * days * 24 / 24 - 75 * r_bat ** 1.3 + ar1(n, 0.99, 0.3, rng), 1, 100)
        add("battery_health_percent", bat, H1, 1)
        add("battery_voltage_v", 3.0 + 0.6 * bat / 100 + ar1(n, 0.9, 0.01, rng), M15, 3)
        add("probe_resistance_ohm", 1000 + 3.85 * temp + ar1(n, 0.5, 0.4 + 6 * r_probe, rng), M15, 1)
        add("temp_rate_c_per_min", np.gradient(temp) / dt_min, EVERY, 2)
        add("sample_count", np.full(n, max(1, int(dt_s // 10))), M15, 0)
        add("calibration_offset_c", np.full(n, round(float(rng.normal(0, 0.2)), 2)), H1, 2)
    else:
        room = site.ambient_c + 1.5 * np.sin(2 * np.pi * (clock.hour - 9) / 24) + 2.5 * (clock.open & (site.format != "retail"))
        temp = room + 14.0 + 0.28 * cpu + ar1(n, 0.9, 0.6, rng) + 22.0 * r_fan ** 1.5
        add("temperature_celsius", temp, EVERY, 1)
        add("humidity_percent", np.clip(45 + 6 * clock.open + ar1(n, 0.97, 3, rng), 10, 95), H1, 1)

    # the gateway's own baseline (site traffic, cameras, music streaming) is noisy too: a flat
    # 400 kbps floor every night was the first thing that looked synthetic in a week's plot
    rx = (20 + 260 * np.minimum(txn, 2) + (0 if dtype != "gateway" else 400 + 900 * load)) * np.exp(ar1(n, 0.5, 0.25, rng))
    add("memory_used_mb", mem / 100.0 * dev.memory_total_mb, EVERY, 0)
    add("load_avg_1m", np.maximum(cpu / 100 * 4 * np.exp(ar1(n, 0.3, 0.15, rng)), 0.0), EVERY, 2)
    add("net_rx_kbps", rx, EVERY, 1)
    add("net_tx_kbps", rx * rng.uniform(0.3, 0.6) * np.exp(ar1(n, 0.5, 0.2, rng)), EVERY, 1)
    loss = np.clip(rng.gamma(0.4, 0.08, size=n) + 9.0 * r_net ** 2 * rng.random(n), 0, 100)
    add("packet_loss_percent", loss, EVERY, 2)
    add("tcp_retransmits", rng.poisson(0.3 + 3 * np.minimum(txn, 2) * (1 + 20 * loss / 100) + 25 * r_net ** 2), EVERY, 0)
    iowait = (1.2 + 2.5 * np.minimum(txn, 2)) * np.exp(ar1(n, 0.6, 0.35, rng)) * (1 + 14 * r_disk ** 2) + 3 * (named["cpu_percent"] > 25) * 0
    add("disk_io_wait_ms", iowait, EVERY, 2)

    # 15-minute system metrics
    swap = np.maximum(0, (mem - 70) * 0.02 * dev.memory_total_mb) + 8 * rng.random(n)
    add("swap_used_mb", swap, M15, 0)
    procs = np.round(140 + 30 * (dtype == "pos_terminal") + 6 * txn + rng.normal(0, 3, n))
    add("process_count", procs, M15, 0)
    add("thread_count", np.round(procs * rng.uniform(5, 9) + rng.normal(0, 15, n)), M15, 0)
    add("open_files", np.round(900 + 400 * txn + 10 * np.minimum(uptime, 168) + rng.normal(0, 30, n)), M15, 0)
    add("load_avg_5m", pd.Series(ex["load_avg_1m"][0]).rolling(max(1, int(300 // dt_s)), min_periods=1).mean().to_numpy(), M15, 2)
    add("load_avg_15m", pd.Series(ex["load_avg_1m"][0]).rolling(max(1, int(900 // dt_s)), min_periods=1).mean().to_numpy(), M15, 2)
    add("disk_read_kbps", (40 + 300 * txn) * np.exp(ar1(n, 0.5, 0.4, rng)), M15, 1)
    add("disk_write_kbps", (60 + 500 * txn) * np.exp(ar1(n, 0.5, 0.4, rng)), M15, 1)
    base_sig = rng.uniform(-72, -48)
    add("signal_strength_dbm", base_sig + ar1(n, 0.95, 2.0, rng) - 14 * r_net - 10 * r_bat ** 2, M15, 0)
    add("context_switches_per_s", (900 + 5000 * txn) * np.exp(ar1(n, 0.5, 0.15, rng)), M15, 0)

    # hourly system metrics
    add("uptime_hours", uptime, H1, 1)
    disk_total = float(dev.disk_total_gb)
    add("disk_free_gb", disk_total * (1 - disk / 100), H1, 2)
    add("ntp_offset_ms", ar1(n, 0.99, 4.0, rng), H1, 1)
    add("cert_days_to_expiry", np.maximum(0, rng.integers(40, 380) - days), H1, 0)
    add("os_patch_age_days", (rng.integers(3, 60) + days) % 45, H1, 0)
    add("inode_usage_percent", np.clip(disk * 0.6 + ar1(n, 0.99, 0.2, rng), 1, 100), H1, 1)
    fmax = 2400.0 if dtype == "pos_terminal" else 1200.0
    add("cpu_freq_mhz", fmax * np.where(temp > 82, 0.6, 1.0) * (0.7 + 0.3 * np.minimum(cpu / 60, 1)), H1, 0)
    add("power_draw_watts", (12 if dtype == "pos_terminal" else 4) * (1 + 0.8 * cpu / 100) + ar1(n, 0.8, 0.3, rng), H1, 1)

    if dtype in ("pos_terminal", "gateway", "industrial_controller"):
        fan_base = 1650 + 22 * np.maximum(temp - 40, 0)
        # a failing fan first labours (faster, noisier), then slows as bearings seize
        fan = fan_base * (1 + 0.35 * r_fan - 0.9 * np.clip(r_fan - 0.75, 0, 1) * 4) + ar1(n, 0.7, 35 + 300 * r_fan, rng)
        add("fan_speed_rpm", np.maximum(fan, 0), EVERY, 0)
    if dtype == "pos_terminal":
        add("payment_auth_latency_ms", (320 + 140 * np.minimum(txn, 2)) * np.exp(ar1(n, 0.5, 0.18, rng)) * (1 + 1.5 * r_card ** 2), EVERY, 0)
        add("card_reader_errors", rng.poisson(0.004 * tx + 3.0 * r_card ** 2 * np.minimum(txn + 0.1, 2)), EVERY, 0)
        add("printer_errors", rng.poisson(0.002 * tx + 2.0 * r_prn ** 2 * np.minimum(txn + 0.1, 2)), EVERY, 0)
        add("app_heap_mb", 180 + 0.8 * np.minimum(uptime, 168) + 300 * r_mem ** 1.5 + ar1(n, 0.8, 6, rng), M15, 0)
        add("gc_pause_ms", (8 + 6 * txn) * np.exp(ar1(n, 0.5, 0.3, rng)) * (1 + 6 * r_mem ** 2), M15, 1)
        add("cache_hit_ratio", np.clip(0.94 - 0.03 * txn + ar1(n, 0.8, 0.01, rng), 0, 1), M15, 3)
        add("db_query_ms", (3 + 4 * txn) * np.exp(ar1(n, 0.5, 0.3, rng)) * (1 + 4 * r_disk ** 2), M15, 1)
        add("sync_backlog", rng.poisson(0.2 + 2 * txn * (loss > 1)), M15, 0)
        add("screen_brightness_percent", np.where(clock.open, 80, 30) + 0 * r, M15, 0)
        bat0 = rng.uniform(70, 99)
        bat = np.where(replaced, 99.0, bat0) - 0.01 * days - 70 * r_bat ** 1.4 + ar1(n, 0.99, 0.2, rng)
        add("battery_health_percent", np.clip(bat, 1, 100), H1, 1)
        add("battery_cycle_count", np.round(rng.integers(50, 900) + days * 0.3 + 30 * r_bat), H1, 0)
        sectors = np.cumsum(rng.poisson(0.002 + 2.0 * r_disk ** 2))
        add("smart_reallocated_sectors", np.where(replaced, 0, sectors), H1, 0)
        poh0 = dev.age_days * 24 * 0.75
        add("disk_power_on_hours", np.where(replaced, days * 24, poh0 + days * 24), H1, 0)
        add("ssd_wear_percent", np.where(replaced, 1.0, min(95.0, dev.age_days / 30)) + 0.01 * days, H1, 1)
        paper = 100 - (np.cumsum(tx) * 0.35) % 100
        add("receipt_paper_percent", paper, H1, 0)
        add("printer_head_temp_celsius", room + 8 + 2.5 * txn + 16 * r_prn + ar1(n, 0.8, 0.5, rng), H1, 1)
        add("cash_drawer_opens", rng.poisson(0.3 * tx * 12 * dt_h * 0 + 0.3 * tx), H1, 0)
        add("touchscreen_errors", rng.poisson(0.001 + 0.0005 * tx), H1, 0)
    elif dtype == "gateway":
        add("connected_devices", conns, EVERY, 0)
        add("wan_throughput_mbps", rx * 8 / 1000 * 3, EVERY, 2)
        add("firewall_drops", rng.poisson(2 + 3 * load), M15, 0)
        add("dhcp_leases", np.round(conns + 4 + rng.integers(0, 3, n)), M15, 0)
        add("wifi_clients", rng.poisson(3 + 25 * load), M15, 0)
        add("vpn_tunnel_up", (rng.random(n) > 0.001 + 0.2 * r_net).astype(float), M15, 0)
        add("lte_backup_active", (loss > 5).astype(float), M15, 0)
    elif dtype == "industrial_controller":
        add("motor_temp_celsius", room + 18 + 30 * util + 20 * r_fan ** 1.5 + ar1(n, 0.9, 0.8, rng), EVERY, 1)
        add("vibration_mm_s", (0.8 + 2.5 * util) * np.exp(ar1(n, 0.6, 0.15, rng)) * (1 + 2 * r_fan ** 2), EVERY, 2)
        add("cycle_count", np.cumsum(tx), M15, 0)
        add("heater_duty_percent", np.clip(20 + 60 * util + ar1(n, 0.8, 4, rng), 0, 100), M15, 1)
        add("water_pressure_bar", 2.4 + 0.3 * util + ar1(n, 0.9, 0.05, rng), M15, 2)
        add("relay_switch_count", np.cumsum(rng.poisson(0.5 + 3 * util)), H1, 0)

    return DeviceSignals(named=named, extras=ex, util=np.asarray(util, dtype=float), degradation=degr, down=down,
                         maintenance=maint, boots=boots, episode_of=episode_of)
