"""The operational records around the metrics: health checks, error logs, alerts, state history,
jobs and device events, all consistent with the same lifecycle and anomalies as the metrics.

Rows are plain dicts (tens of thousands at most, except health checks which are built from
column arrays); ``core`` turns them into frames for the bulk writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tools.simulator.anomalies import InjectedAnomaly
from tools.simulator.catalog import DeviceSpec
from tools.simulator.lifecycle import REPAIR_ACTIONS, Lifecycle
from tools.simulator.signals import DeviceSignals

ENGINEERS = ("eng.priya.shah", "eng.tom.walker", "eng.aoife.byrne", "eng.marc.dubois", "ops.sam.hughes", "ops.lena.kowalski")
HEALTH_CHECK_EVERY_S = 1800
NAMED_USED = ("cpu_percent", "memory_percent", "disk_percent", "network_latency_ms", "transaction_count",
              "error_rate", "active_connections")

#: cause -> (error_code, category, message template) for error logs during degradation.
CAUSE_ERRORS: dict[str, tuple[str, str, str]] = {
    "fan_failure": ("HW_THERMAL_THROTTLE", "api", "CPU thermal throttling engaged at {temp:.0f}C; fan at {fan:.0f} rpm"),
    "disk_failure": ("DB_IO_ERROR", "database", "SQLite write failed: disk I/O error (SMART reallocated sectors rising)"),
    "card_reader_failure": ("PED_TIMEOUT", "external_service", "Card reader did not respond within 15000 ms (EMV kernel error 0x6F00)"),
    "printer_failure": ("PRINTER_PAPER_JAM", "external_service", "Receipt printer reported head error / paper jam"),
    "memory_leak_crash": ("APP_OOM_WARNING", "api", "POS application heap near limit; GC pauses {gc:.0f} ms"),
    "battery_failure": ("UPS_BATTERY_WEAK", "external_service", "UPS self-test failed: battery capacity low"),
    "battery_depletion": ("SENSOR_LOW_BATTERY", "validation", "Sensor battery voltage low; readings may be dropped"),
    "sensor_probe_fault": ("PROBE_OUT_OF_RANGE", "validation", "Temperature probe reading rejected: implausible jump"),
    "network_interface_failure": ("NET_UPSTREAM_TIMEOUT", "external_service", "Upstream request timed out after 3 retries (packet loss {loss:.1f}%)"),
    "controller_board_fault": ("CTRL_WATCHDOG_RESET", "api", "Controller watchdog reset: firmware task overrun"),
    "power_surge": ("PSU_FAULT", "api", "Power supply fault: input over-voltage"),
    "physical_damage": ("HW_FAULT", "api", "Hardware fault: device damaged"),
}
#: cause -> what the last log lines before a failure say.
FAILURE_MESSAGES: dict[str, str] = {
    "fan_failure": "Thermal shutdown: CPU temperature above critical limit, fan not spinning",
    "disk_failure": "Filesystem remounted read-only after repeated I/O errors",
    "card_reader_failure": "Card reader (PED) not detected on USB bus",
    "printer_failure": "Receipt printer offline: head fault",
    "memory_leak_crash": "POS application killed by OOM killer",
    "battery_failure": "UPS battery failed; unit lost power during mains dip",
    "battery_depletion": "Sensor battery exhausted",
    "sensor_probe_fault": "Temperature probe open circuit",
    "network_interface_failure": "Network interface down: link lost",
    "controller_board_fault": "Controller board fault: repeated watchdog resets",
    "power_surge": "Power supply blown by a mains surge",
    "physical_damage": "Device physically damaged (dropped or liquid spill)",
}
ROUTINE_ERRORS: tuple[tuple[str, str, str, str], ...] = (
    ("API_TIMEOUT", "api", "warning", "Request to /api/v1/sync timed out after 5000 ms"),
    ("PAYMENT_DECLINED_RETRY", "external_service", "info", "Payment gateway returned 502; retried successfully"),
    ("VALIDATION_FAILED", "validation", "warning", "Rejected basket: item SKU not in price list"),
    ("DB_LOCKED", "database", "warning", "database is locked; retrying write"),
    ("CERT_REFRESH", "external_service", "info", "TLS session renegotiated with payment host"),
)


@dataclass
class DeviceRecords:
    health: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "device_id", "is_healthy", "response_time_ms", "status_code", "endpoint", "response_data", "error_message", "timestamp")})
    error_logs: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    states: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


def _job_id(rng: np.random.Generator, when: np.datetime64) -> str:
    return f"JOB-{str(when)[:10].replace('-', '')}-{int(rng.integers(0, 16**6)):06X}"


def _status_for(resolved_at: np.datetime64 | None, end: np.datetime64, rng: np.random.Generator) -> tuple[str, np.datetime64 | None]:
    if resolved_at is not None and resolved_at <= end:
        return "resolved", resolved_at
    return ("acknowledged" if rng.random() < 0.4 else "active"), None


def build_records(dev: DeviceSpec, db_id: int, site_db_id: int, grid: np.ndarray, keep: np.ndarray,
                  sig: DeviceSignals, life: Lifecycle, anomalies: list[InjectedAnomaly], offline_from: int | None,
                  start: np.datetime64, end: np.datetime64, dt_s: int, rng: np.random.Generator) -> DeviceRecords:
    rec = DeviceRecords()
    n = len(grid)
    named, ex = sig.named, sig.extras
    outage = np.zeros(n, bool)
    for a in anomalies:
        if a.kind == "outage":
            outage[a.start_idx : a.end_idx + 1] = True
    if offline_from is not None:
        outage[offline_from:] = True

    # ---------------------------------------------------------------- health checks
    step = max(1, int(round(HEALTH_CHECK_EVERY_S / dt_s)))
    idx = np.arange(int(rng.integers(0, step)), n, step)
    t_hc = grid[idx] + np.timedelta64(int(rng.integers(3, 40)), "s")
    ok_idx = ~(sig.down[idx] | outage[idx] | sig.maintenance[idx])
    degraded = (sig.degradation[idx] > 0.85) & (rng.random(len(idx)) < 0.5) & ok_idx
    rt = np.round(rng.lognormal(np.log(45 + 60 * np.minimum(sig.util[idx], 2)), 0.3)).astype(int)
    temp = ex["temperature_celsius"][0]
    hum = ex["humidity_percent"][0]
    mem_total = dev.memory_total_mb
    disk_total = dev.disk_total_gb
    up = ex["uptime_hours"][0]
    cols = {name: named[name][idx].tolist() for name in NAMED_USED}
    temp_l, hum_l, up_l = temp[idx].tolist(), hum[idx].tolist(), up[idx].tolist()
    rx_l = (ex["net_rx_kbps"][0][idx] * 125 * dt_s).astype(np.int64).tolist()
    tx_l = (ex["net_tx_kbps"][0][idx] * 125 * dt_s).astype(np.int64).tolist()
    warn_l = rng.poisson(1, size=len(idx)).tolist()
    maint_l = sig.maintenance[idx].tolist()
    ok_l, degraded_l, rt_l = ok_idx.tolist(), degraded.tolist(), rt.tolist()
    h = rec.health
    fw = dev.firmware
    for k in range(len(idx)):
        h["device_id"].append(db_id)
        h["timestamp"].append(t_hc[k])
        h["endpoint"].append("/health")
        if maint_l[k]:
            h["is_healthy"].append(False)
            h["response_time_ms"].append(rt_l[k])
            h["status_code"].append(503)
            h["response_data"].append('{"status":"maintenance"}')
            h["error_message"].append("Device in maintenance mode")
            continue
        if not ok_l[k]:
            h["is_healthy"].append(False)
            h["response_time_ms"].append(5000)
            h["status_code"].append(504)
            h["response_data"].append(None)
            h["error_message"].append("Health check timed out after 5000 ms (no response from device)")
            continue
        mem = cols["memory_percent"][k]
        dsk = cols["disk_percent"][k]
        lat = cols["network_latency_ms"][k]
        quality = "good" if lat < 80 else ("fair" if lat < 200 else "poor")
        h["response_data"].append(
            f'{{"system":{{"cpu_percent":{cols["cpu_percent"][k]:.1f},"memory_percent":{mem:.1f},'
            f'"memory_used_mb":{mem * mem_total / 100:.0f},"memory_total_mb":{mem_total},"disk_percent":{dsk:.1f},'
            f'"disk_used_gb":{dsk * disk_total / 100:.1f},"disk_total_gb":{disk_total},'
            f'"uptime_seconds":{int(up_l[k] * 3600)}}},'
            f'"app_metrics":{{"app_version":"{fw}","transactions_count":{int(cols["transaction_count"][k])},'
            f'"errors_count":{int(round(cols["error_rate"][k] * 100))},"warnings_count":{warn_l[k]},'
            f'"avg_response_time_ms":{rt_l[k]},"active_connections":{int(cols["active_connections"][k])}}},'
            f'"network":{{"latency_ms":{lat:.1f},"rx_bytes":{rx_l[k]},"tx_bytes":{tx_l[k]},"connection_quality":"{quality}"}},'
            f'"environmental":{{"temperature_celsius":{temp_l[k]:.1f},"humidity_percent":{hum_l[k]:.1f}}}}}'
        )
        if degraded_l[k]:
            h["is_healthy"].append(False)
            h["response_time_ms"].append(rt_l[k] * 6)
            h["status_code"].append(500)
            h["error_message"].append("Self-test reported degraded hardware")
        else:
            h["is_healthy"].append(True)
            h["response_time_ms"].append(rt_l[k])
            h["status_code"].append(200)
            h["error_message"].append(None)

    ctx_base = {"device_id": dev.device_id, "site_id": dev.site.site_id, "device_type": dev.device_type,
                "firmware_version": dev.firmware}

    def log(when: np.datetime64, code: str, category: str, severity: str, message: str, resolved_at=None, **extra) -> None:
        rec.error_logs.append({
            "timestamp": when, "category": category, "severity": severity, "error_code": code,
            "error_message": message, "stack_trace": None, "endpoint": f"/devices/{dev.device_id}",
            "user_id": None, "context": {**ctx_base, **extra}, "resolved": resolved_at is not None,
            "resolved_at": resolved_at, "provenance": "simulated"})

    def alert(when: np.datetime64, title: str, description: str, severity: str, category: str,
              resolved_at: np.datetime64 | None, by: str | None = None) -> None:
        status, res = _status_for(resolved_at, end, rng)
        rec.alerts.append({
            "timestamp": when, "device_id": dev.device_id, "site_id": site_db_id, "title": title[:255],
            "description": description, "severity": severity, "category": category, "status": status,
            "resolved_at": res, "resolved_by": (by or str(rng.choice(ENGINEERS))) if res is not None else None,
            "resolution_notes": None, "ai_recommendation": None, "ai_confidence": None})

    def state(when: np.datetime64, prev: str, new: str, by: str, reason: str, **extra) -> None:
        if start <= when <= end:
            rec.states.append({"timestamp": when, "device_id": db_id, "previous_state": prev, "new_state": new,
                               "changed_by": by, "reason": reason[:500], "extra_data": extra or None,
                               "provenance": "simulated"})

    # ---------------------------------------------------------------- routine error logs
    err = named["error_rate"]
    lam = 0.0008 + 1.5 * np.maximum(err - 0.012, 0) + 0.35 * sig.degradation ** 2
    lam = np.where(keep, lam, 0.0)
    counts = rng.poisson(lam)
    for gi in np.flatnonzero(counts).tolist():
        when = grid[gi] + np.timedelta64(int(rng.integers(0, dt_s)), "s")
        ep = sig.episode_of[gi]
        if ep >= 0 and sig.degradation[gi] > 0.05 and rng.random() < 0.5 + 0.5 * sig.degradation[gi]:
            cause = life.episodes[ep].cause
            code, cat, tmpl = CAUSE_ERRORS[cause]
            msg = tmpl.format(temp=temp[gi], fan=ex.get("fan_speed_rpm", (np.zeros(n),))[0][gi],
                              gc=ex.get("gc_pause_ms", (np.zeros(n),))[0][gi],
                              loss=ex["packet_loss_percent"][0][gi])
            sev = "error" if sig.degradation[gi] > 0.6 else "warning"
            log(when, code, cat, sev, msg)
        else:
            code, cat, sev, msg = ROUTINE_ERRORS[int(rng.integers(len(ROUTINE_ERRORS)))]
            log(when, code, cat, sev, msg, resolved_at=when + np.timedelta64(int(rng.integers(5, 600)), "s"))

    # ---------------------------------------------------------------- failures, repairs, replacements
    for ep in life.episodes:
        if ep.future:
            continue
        restored = ep.restored_at if ep.restored_at <= end else None
        cause_txt = ep.cause.replace("_", " ")
        # the symptoms were seen before the failure: one warning alert when degradation is well under way
        warn_at = ep.degradation_start + (ep.failed_at - ep.degradation_start) * 0.65
        warn_at = warn_at.astype("datetime64[s]")
        if start <= warn_at <= end and ep.degradation_start < ep.failed_at:  # sudden failures give no warning
            k = min(max(int(np.searchsorted(grid, warn_at)), 0), n - 1)
            title = _degradation_title(ep.cause, sig, k)
            alert(warn_at, title, f"{dev.name}: {title}. Pattern consistent with {cause_txt}.",
                  "medium" if dev.device_type == "iot_sensor" else "high", "hardware",
                  ep.failed_at if ep.failed_at <= end else None, by="ops.sam.hughes")
            state(warn_at, "healthy", "warning", "monitoring", f"Degradation detected: {title}")
        if start <= ep.failed_at <= end:
            alert(ep.failed_at + np.timedelta64(int(rng.integers(90, 300)), "s"), f"Device offline: {dev.name}",
                  f"No heartbeat from {dev.device_id} for over 2 minutes; last errors point to {cause_txt}.",
                  "critical", "hardware", restored)
            for j in range(int(rng.integers(3, 7))):
                code, cat, tmpl = CAUSE_ERRORS[ep.cause]
                log(ep.failed_at - np.timedelta64(int(rng.integers(0, 1200)), "s"), code, cat, "critical",
                    f"{FAILURE_MESSAGES[ep.cause]}; device stopped responding",
                    resolved_at=restored)
            log(ep.failed_at + np.timedelta64(150, "s"), "HEARTBEAT_LOST", "api", "critical",
                "Heartbeat lost: device unreachable", resolved_at=restored)
            state(ep.failed_at, "warning", "error", "monitoring", f"Device failure: {cause_txt}", cause=ep.cause)
            rec.events.append({"device_id": db_id, "event_type": "failure", "timestamp": ep.failed_at,
                               "cause": ep.cause, "details": {"degradation_start": str(ep.degradation_start)},
                               "provenance": "simulated"})
        elif ep.failed_at < start:
            rec.events.append({"device_id": db_id, "event_type": "failure", "timestamp": ep.failed_at,
                               "cause": ep.cause, "details": {"before_window": True}, "provenance": "simulated"})
        if ep.failed_at <= end:
            action = "Replace device" if ep.resolution == "replacement" else REPAIR_ACTIONS[ep.cause]
            sched = ep.failed_at + np.timedelta64(int(rng.integers(600, 2400)), "s")
            done = ep.restored_at <= end
            started = ep.repair_started <= end
            rec.jobs.append({
                "job_id": _job_id(rng, ep.failed_at), "action": action,
                "description": f"{action} on {dev.name} after {cause_txt}",
                "priority": "critical" if dev.device_type in ("pos_terminal", "gateway") else "high",
                "status": "completed" if done else ("acknowledged" if started else "queued"),
                "site_id": site_db_id, "device_id": db_id, "segment": dev.site.name,
                "payload": {"cause": ep.cause, "resolution": ep.resolution},
                "scheduled_at": sched, "started_at": ep.repair_started if started else None,
                "completed_at": ep.restored_at if done else None,
                "result": {"outcome": ep.resolution, "parts": action} if done else None,
                "error_message": None, "created_by": str(rng.choice(ENGINEERS)), "created_at": sched})
            state(ep.repair_started, "error", "maintenance", str(rng.choice(ENGINEERS)), f"Technician on site: {action}")
            if done:
                state(ep.restored_at, "maintenance", "healthy", str(rng.choice(ENGINEERS)),
                      "Unit replaced" if ep.resolution == "replacement" else f"Repaired: {action}")
                rec.events.append({"device_id": db_id, "event_type": ep.resolution, "timestamp": ep.restored_at,
                                   "cause": ep.cause, "details": {"action": action}, "provenance": "simulated"})

    # ---------------------------------------------------------------- maintenance
    for mt in life.maintenance:
        if mt.start > end:
            continue
        action = mt.detail if mt.kind == "routine" else f"Firmware update to {dev.firmware}"
        rec.jobs.append({
            "job_id": _job_id(rng, mt.start), "action": action.split(":")[0],
            "description": action, "priority": "low" if mt.kind == "routine" else "normal",
            "status": "completed", "site_id": site_db_id, "device_id": db_id, "segment": dev.site.name,
            "payload": {"kind": mt.kind}, "scheduled_at": mt.start - np.timedelta64(3, "D"),
            "started_at": mt.start, "completed_at": mt.end, "result": {"outcome": "ok"},
            "error_message": None, "created_by": "scheduler", "created_at": mt.start - np.timedelta64(3, "D")})
        state(mt.start, "healthy", "maintenance", "scheduler", action)
        state(mt.end, "maintenance", "healthy", "scheduler", "Maintenance completed")
        rec.events.append({"device_id": db_id, "event_type": "maintenance", "timestamp": mt.start,
                           "cause": mt.kind, "details": {"action": action}, "provenance": "simulated"})

    # ---------------------------------------------------------------- outages and threshold alerts
    for a in anomalies:
        if a.kind == "outage" and (a.end_idx - a.start_idx + 1) * dt_s >= 1800:
            t0 = grid[a.start_idx]
            t1 = grid[min(a.end_idx + 1, n - 1)]
            alert(t0 + np.timedelta64(150, "s"), f"Device offline: {dev.name}",
                  f"No heartbeat from {dev.device_id} for over 2 minutes.", "high", "network",
                  t1 if a.end_idx + 1 < n else None, by="ai_auto_resolve")
            log(t0 + np.timedelta64(150, "s"), "HEARTBEAT_LOST", "api", "error", "Heartbeat lost: device unreachable",
                resolved_at=t1 if a.end_idx + 1 < n else None)
    if offline_from is not None:
        t0 = grid[offline_from]
        alert(t0 + np.timedelta64(150, "s"), f"Device offline: {dev.name}",
              f"No heartbeat from {dev.device_id} for over 2 minutes.", "high", "network", None)
    _threshold_alerts(dev, sig, grid, keep, dt_s, alert)
    return rec


def _degradation_title(cause: str, sig: DeviceSignals, k: int) -> str:
    ex, named = sig.extras, sig.named

    def v(name: str) -> float:
        return float(ex[name][0][k]) if name in ex else float(named.get(name, np.zeros(k + 1))[k])

    return {
        "fan_failure": f"High temperature: {v('temperature_celsius'):.1f}°C",
        "disk_failure": f"High disk I/O wait: {v('disk_io_wait_ms'):.0f} ms",
        "card_reader_failure": f"Card reader errors rising: error rate {v('error_rate') * 100:.1f}%",
        "printer_failure": "Receipt printer errors",
        "memory_leak_crash": f"High memory: {v('memory_percent'):.1f}%",
        "battery_failure": f"Low battery health: {v('battery_health_percent'):.0f}%",
        "battery_depletion": f"Low battery health: {v('battery_health_percent'):.0f}%",
        "sensor_probe_fault": "Temperature probe readings unstable",
        "network_interface_failure": f"High packet loss: {v('packet_loss_percent'):.1f}%",
        "controller_board_fault": f"High error rate: {v('error_rate') * 100:.1f}%",
    }[cause]


def _threshold_alerts(dev: DeviceSpec, sig: DeviceSignals, grid: np.ndarray, keep: np.ndarray, dt_s: int, alert) -> None:
    """HOMEPOT's fixed-threshold rules (cpu > 90, latency > 200 ms, error rate > 5%), one alert a run."""
    n = len(grid)
    rules = [
        ("cpu_percent", 90.0, "High CPU: {v:.1f}%", "high", "software"),
        ("network_latency_ms", 200.0, "High latency: {v:.0f} ms", "medium", "network"),
        ("error_rate", 0.05, "High error rate: {p:.1f}%", "medium", "software"),
    ]
    if dev.device_type == "iot_sensor" and dev.setpoint_c < 10:
        # 8 C is the UK legal limit for chilled food; freezers alarm around -12 C
        rules.append(("temperature_celsius", 8.0 if dev.setpoint_c > 0 else -12.0,
                      "Fridge temperature high: {v:.1f}°C" if dev.setpoint_c > 0 else "Freezer temperature high: {v:.1f}°C",
                      "high", "hardware"))
    cooldown = int(6 * 3600 / dt_s)
    for metric, thr, title, sev, cat in rules:
        x = sig.named[metric] if metric in sig.named else sig.extras[metric][0]
        over = (x > thr) & keep
        starts = np.flatnonzero(over & ~np.r_[False, over[:-1]])
        last = -cooldown
        for i in starts.tolist():
            if i - last < cooldown:
                continue
            last = i
            j = i
            while j + 1 < n and over[j + 1]:
                j += 1
            val = float(x[i])
            text = title.format(v=val, p=val * 100)
            resolved = grid[j + 1] if j + 1 < n else None
            alert(grid[i] + np.timedelta64(30, "s"), text, f"{dev.name}: {metric} crossed {thr:g}.", sev, cat,
                  resolved, by="ai_auto_resolve")
