"""Device lifecycles: degradation processes that end in failures, repairs, replacements, maintenance.

Failure times come from a Weibull proportional-hazards model on device age (days), with
covariate multipliers for bad firmware, a warm site (kitchens), load and device type: the same
shape of model the maintenance team fits, so a good model can recover it. Failures are drawn
sequentially from before the window (so some devices are already degrading when data starts)
to a horizon after its end (so some devices are mid-degradation at the end and their failure
is known ground truth, ``future=True``, for scoring P(fail within 7 / 30 days)).

Most causes are wear-out: the degradation that ends in the failure starts weeks before it
(``CAUSE_DEGRADATION_DAYS``, 14 to 75 days: fan bearings, SSDs, batteries, printer and card-reader
mechanisms wear slowly, as in real fleets) and shows in the cause's metrics and error logs. A
small share (``SUDDEN_SHARE``, about 6%) are sudden, with no precursor at all (power surges,
physical damage); no model can foresee those, so they bound the recall any predictor can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tools.simulator.catalog import BAD_FIRMWARE, DeviceSpec

WEIBULL_SHAPE = 1.7
WEIBULL_SCALE_DAYS = 820.0
FUTURE_HORIZON_DAYS = 60.0
MAINTENANCE_EVERY_DAYS = 91.0
#: share of failures that are sudden (no degradation before them), and their causes
SUDDEN_SHARE = 0.06
SUDDEN_CAUSES: tuple[str, ...] = ("power_surge", "physical_damage")

#: cause -> (probability by type, metrics its degradation shows in, degradation days (lo, hi))
CAUSES: dict[str, dict[str, float]] = {
    "pos_terminal": {"fan_failure": 0.2, "disk_failure": 0.2, "card_reader_failure": 0.2,
                     "printer_failure": 0.15, "memory_leak_crash": 0.1, "battery_failure": 0.05,
                     "network_interface_failure": 0.1},
    "iot_sensor": {"battery_depletion": 0.5, "sensor_probe_fault": 0.3, "network_interface_failure": 0.2},
    "gateway": {"fan_failure": 0.3, "network_interface_failure": 0.4, "disk_failure": 0.3},
    "industrial_controller": {"fan_failure": 0.5, "controller_board_fault": 0.3, "network_interface_failure": 0.2},
    "unknown": {"disk_failure": 0.5, "network_interface_failure": 0.5},
}
CAUSE_METRICS: dict[str, list[str]] = {
    "fan_failure": ["temperature_celsius", "fan_speed_rpm", "cpu_freq_mhz", "error_rate"],
    "disk_failure": ["disk_io_wait_ms", "smart_reallocated_sectors", "error_rate", "disk_percent"],
    "card_reader_failure": ["card_reader_errors", "error_rate", "payment_auth_latency_ms"],
    "printer_failure": ["printer_errors", "printer_head_temp_celsius", "error_rate"],
    "memory_leak_crash": ["memory_percent", "memory_used_mb", "swap_used_mb", "gc_pause_ms"],
    "battery_failure": ["battery_health_percent", "battery_cycle_count"],
    "battery_depletion": ["battery_health_percent", "battery_voltage_v", "signal_strength_dbm"],
    "sensor_probe_fault": ["temperature_celsius", "humidity_percent"],
    "network_interface_failure": ["packet_loss_percent", "tcp_retransmits", "network_latency_ms", "signal_strength_dbm"],
    "controller_board_fault": ["error_rate", "cpu_percent", "uptime_hours"],
    "power_surge": [],
    "physical_damage": [],
}
CAUSE_DEGRADATION_DAYS: dict[str, tuple[float, float]] = {
    "fan_failure": (30, 60), "disk_failure": (30, 60), "card_reader_failure": (25, 50),
    "printer_failure": (20, 45), "memory_leak_crash": (14, 30), "battery_failure": (40, 75),
    "battery_depletion": (40, 75), "sensor_probe_fault": (20, 45),
    "network_interface_failure": (20, 40), "controller_board_fault": (20, 45),
    "power_surge": (0, 0), "physical_damage": (0, 0),
}
REPAIR_ACTIONS: dict[str, str] = {
    "fan_failure": "Replace fan assembly and clean heatsink",
    "disk_failure": "Replace SSD and restore image",
    "card_reader_failure": "Replace card reader (PED)",
    "printer_failure": "Replace receipt printer head",
    "memory_leak_crash": "Restart POS application and apply hotfix",
    "battery_failure": "Replace UPS battery",
    "battery_depletion": "Replace sensor battery",
    "sensor_probe_fault": "Replace temperature probe",
    "network_interface_failure": "Replace network interface / re-seat cabling",
    "controller_board_fault": "Replace controller board",
    "power_surge": "Replace power supply after surge",
    "physical_damage": "Replace damaged unit",
}
TYPE_HAZARD = {"pos_terminal": 1.0, "iot_sensor": 0.7, "gateway": 0.8, "industrial_controller": 1.2, "unknown": 1.0}


@dataclass
class Episode:
    """One degradation -> failure -> repair/replacement cycle (times as numpy datetime64[s])."""

    cause: str
    degradation_start: np.datetime64
    failed_at: np.datetime64
    repair_started: np.datetime64
    restored_at: np.datetime64
    resolution: str  # repair | replacement
    future: bool = False  # the failure happens after the window ends


@dataclass
class Maintenance:
    start: np.datetime64
    end: np.datetime64
    kind: str  # routine | firmware_update
    detail: str


@dataclass
class Lifecycle:
    device_index: int
    hazard_multiplier: float
    episodes: list[Episode] = field(default_factory=list)
    maintenance: list[Maintenance] = field(default_factory=list)
    firmware_after_update: str | None = None


def hazard_multiplier(dev: DeviceSpec, failure_scale: float) -> float:
    """Covariate multiplier of the baseline Weibull hazard: firmware, temperature, load, type."""
    m = TYPE_HAZARD[dev.device_type] * failure_scale
    if dev.firmware in BAD_FIRMWARE:
        m *= 2.2
    m *= float(np.exp(0.12 * (dev.site.ambient_c - 22.0)))  # warm kitchens wear fans and disks
    load = dev.capacity * dev.site.busyness if dev.device_type == "pos_terminal" else dev.site.busyness
    m *= float(np.exp(0.6 * (load - 1.0)))
    return m


def _next_failure_age(age: float, m: float, rng: np.random.Generator) -> float:
    """Age (days) at the next failure given survival to ``age``: inverse of the Weibull PH CDF."""
    e = rng.exponential()
    return WEIBULL_SCALE_DAYS * ((age / WEIBULL_SCALE_DAYS) ** WEIBULL_SHAPE + e / m) ** (1.0 / WEIBULL_SHAPE)


def _td(days: float) -> np.timedelta64:
    return np.timedelta64(int(round(days * 86400)), "s")


def plan_lifecycle(dev: DeviceSpec, start: np.datetime64, end: np.datetime64,
                   rng: np.random.Generator, failure_scale: float, *, force_failure: bool = False) -> Lifecycle:
    """Draw the device's failures (window plus horizon) and its routine maintenance visits."""
    m = hazard_multiplier(dev, failure_scale)
    life = Lifecycle(device_index=dev.index, hazard_multiplier=m)
    window_days = (end - start) / np.timedelta64(1, "D")
    horizon = end + _td(FUTURE_HORIZON_DAYS)
    causes = CAUSES[dev.device_type]
    names, probs = list(causes), np.array(list(causes.values()))
    probs = probs / probs.sum()
    # look back so failures just before the window (repairs in progress) are possible
    t = start - _td(20.0)
    age = dev.age_days - 20.0
    first = True
    while True:
        if force_failure and first:
            fail_age = age + 20.0 + window_days * float(rng.uniform(0.45, 0.8))
        else:
            fail_age = _next_failure_age(max(age, 0.0), m, rng)
        first = False
        failed_at = t + _td(fail_age - age)
        if failed_at > horizon:
            break
        cause = names[int(rng.choice(len(names), p=probs))]
        if rng.random() < SUDDEN_SHARE:
            cause = SUDDEN_CAUSES[int(rng.integers(len(SUDDEN_CAUSES)))]
        lo, hi = CAUSE_DEGRADATION_DAYS[cause]
        degr = float(rng.uniform(lo, hi))
        replace = rng.random() < (0.25 + 0.35 * min(1.0, fail_age / 1500.0))
        wait_h = float(rng.gamma(2.0, 3.0)) + 1.0  # technician arrives
        fix_h = float(rng.uniform(24, 60)) if replace else float(rng.uniform(0.7, 3.0))
        ep = Episode(
            cause=cause,
            degradation_start=failed_at - _td(degr),
            failed_at=failed_at,
            repair_started=failed_at + _td(wait_h / 24),
            restored_at=failed_at + _td((wait_h + fix_h) / 24),
            resolution="replacement" if replace else "repair",
            future=bool(failed_at > end),
        )
        if ep.restored_at < start:
            # entirely before the window: it shaped the device's age but left no data
            pass
        life.episodes.append(ep)
        if ep.future:
            break
        t = ep.restored_at
        age = 0.0 if replace else fail_age + (wait_h + fix_h) / 24
    life.episodes = [e for e in life.episodes if e.restored_at >= start]
    # routine maintenance at 03:00 site-local-ish (02:00-04:00 UTC), every ~quarter
    phase = float(rng.uniform(0, MAINTENANCE_EVERY_DAYS))
    day = np.datetime64(str(start)[:10]) + _td(phase)
    while day < end:
        when = day + _td(float(rng.uniform(2.0, 4.0)) / 24)
        if start <= when and not any(e.degradation_start - _td(1) <= when <= e.restored_at + _td(1) for e in life.episodes):
            dur = float(rng.uniform(20, 55)) / 1440
            kind = "firmware_update" if rng.random() < 0.35 else "routine"
            life.maintenance.append(Maintenance(when, when + _td(dur), kind,
                                                "Firmware update" if kind == "firmware_update" else "Routine maintenance: clean vents, check peripherals, apply OS patches"))
        day = day + _td(MAINTENANCE_EVERY_DAYS * float(rng.uniform(0.85, 1.15)))
    return life
