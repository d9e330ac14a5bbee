"""Anomaly detection over the store: batch (``detect_anomalies``), incremental (``scan_new``),
persistence to ``ai_anomalies`` and HOMEPOT-style ``alerts`` (``raise_alerts``).

Metrics are read through ``tools.store.metrics_io`` (filtering in SQL). Devices are processed in
chunks so memory stays bounded on big fleets. The incremental path keeps one state blob per
device in ``ai_detector_state`` (key ``anomaly:device:<id>``) so each run only reads and scores
the points that arrived since the last one.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import text

from tools.anomaly.engine import REBOOT_METRICS, UPTIME_METRIC, Finding, FleetDetector, panel_from_wide
from tools.store.bulk import insert_frame, read_frame
from tools.store.engine import Store
from tools.store.metrics_io import list_metric_names, load_metrics_wide
from tools.store.schema import NAMED_METRICS

#: Extra metrics (from ``extra_metrics`` JSON) that carry most real incidents (temperatures,
#: humidity, payment latency, disk wait, gateway traffic). Kept for callers that want a small set;
#: ``metrics="all"`` scores every metric (named and extra), each against its own calibrated tail.
KEY_EXTRAS: tuple[str, ...] = ("temperature_celsius", "humidity_percent", "payment_auth_latency_ms",
                               "disk_io_wait_ms", "net_rx_kbps", "motor_temp_celsius")
DEFAULT_METRICS: tuple[str, ...] = (*NAMED_METRICS, *KEY_EXTRAS)
STATE_PREFIX = "anomaly:device:"
CHUNK_DEVICES = 500
CATEGORY = "anomaly"
def _with_uptime(metric_list: list[str] | None) -> list[str] | None:
    """The metrics to load: the scored ones plus the uptime counter, read (not scored) as the
    reboot marker whenever a reboot-reset metric such as memory is scored."""
    if metric_list is None or UPTIME_METRIC in metric_list or not REBOOT_METRICS & set(metric_list):
        return metric_list
    return [*metric_list, UPTIME_METRIC]


#: How long after planned maintenance ends a device is still settling (restarted services, a
#: reboot's fresh counters): findings starting this soon after it are the maintenance itself.
MAINTENANCE_SETTLE = timedelta(minutes=15)


def maintenance_windows(store: Store, device_ids: Sequence[int] | None = None) -> dict[int, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Planned maintenance per device (devices.id): from entering the ``maintenance`` state in
    ``device_state_history`` until the next state change (two hours if none was recorded)."""
    df = read_frame(store, "SELECT device_id, timestamp, new_state FROM device_state_history ORDER BY device_id, timestamp",
                    parse_dates=["timestamp"])
    if df.empty:
        return {}
    if device_ids is not None:
        df = df[df["device_id"].isin(list(device_ids))]
    df = df.assign(ts=pd.to_datetime(df["timestamp"], utc=True).dt.tz_localize(None))
    nxt = df.groupby("device_id")["ts"].shift(-1)
    m = df["new_state"].eq("maintenance")
    out: dict[int, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for dev, lo, hi in zip(df.loc[m, "device_id"], df.loc[m, "ts"], nxt[m]):
        hi = hi if pd.notna(hi) else lo + pd.Timedelta(hours=2)
        out.setdefault(int(dev), []).append((lo, hi))
    return out


def drop_planned(findings: list[Finding], windows: dict[int, list[tuple[pd.Timestamp, pd.Timestamp]]]) -> list[Finding]:
    """Findings that do not start during planned maintenance (or while the device settles after
    it): a device that stops reporting or restarts during a scheduled visit is not an anomaly."""
    if not windows:
        return findings
    settle = pd.Timedelta(MAINTENANCE_SETTLE)

    def planned(f: Finding) -> bool:
        t = pd.Timestamp(f.start)
        return any(lo - pd.Timedelta(minutes=5) <= t <= hi + settle for lo, hi in windows.get(f.device_id, ()))

    return [f for f in findings if not planned(f)]


SEVERITY_TO_ALERT = {"critical": "critical", "high": "high", "medium": "medium", "low": "low"}


def _device_rows(store: Store, device_ids: Sequence[int] | None = None) -> pd.DataFrame:
    df = read_frame(store, "SELECT id, device_id, site_id FROM devices ORDER BY id")
    if device_ids is not None:
        df = df[df["id"].isin(list(device_ids))]
    return df


def resolve_devices(store: Store, scope: str, ids: Sequence[int | str] | None) -> list[int] | None:
    """devices.id integers for a scope (None: the whole fleet)."""
    if scope == "fleet" or not ids:
        return None
    if scope == "device" and all(isinstance(i, (int, np.integer)) for i in ids):
        return [int(i) for i in ids]
    from tools.scopes import resolve_scope

    out: set[int] = set()
    for target in ids:
        out.update(resolve_scope(store, scope, str(target)).device_ids)
    return sorted(out)


def detect_anomalies(store: Store, *, scope: str = "fleet", ids: Sequence[int | str] | None = None,
                     start: datetime | None = None, end: datetime | None = None,
                     metrics: Sequence[str] | None = None, persist: bool = True) -> list[Finding]:
    """Score every point of the chosen devices in ``[start, end)`` and return the findings.

    ``metrics=None`` scores ``DEFAULT_METRICS`` (named + key extras); ``metrics="all"`` scores every
    metric present (the nine named ones and every extra key).

    Each series starts from an empty state at ``start`` (the first day is spent learning the
    daily pattern), so give a window that includes some history before the period you care about.
    """
    device_ids = resolve_devices(store, scope, ids)
    devices = _device_rows(store, device_ids)
    metric_list = None if metrics == "all" else (list(metrics) if metrics else list(DEFAULT_METRICS))
    findings: list[Finding] = []
    all_ids = devices["id"].astype(int).tolist()
    for k in range(0, len(all_ids), CHUNK_DEVICES):
        chunk = all_ids[k:k + CHUNK_DEVICES]
        wide = load_metrics_wide(store, device_ids=chunk, start=start, end=end, metrics=_with_uptime(metric_list))
        if wide.empty:
            continue
        names = metric_list or [c for c in wide.columns if c not in ("device_id", "timestamp")]
        used = [m for m in names if m in wide.columns and wide[m].notna().any()]
        aux = [UPTIME_METRIC] if UPTIME_METRIC in wide.columns and UPTIME_METRIC not in used else []
        panel = panel_from_wide(wide, used + aux)
        det = FleetDetector(panel.device_ids, used)
        findings.extend(drop_planned(det.run(panel), maintenance_windows(store, chunk)))
    _attach_public_ids(store, findings, devices)
    if persist and findings:
        persist_findings(store, findings)
    findings.sort(key=lambda f: (-f.score, f.start))
    return findings


def _attach_public_ids(store: Store, findings: list[Finding], devices: pd.DataFrame | None = None) -> None:
    if not findings:
        return
    devices = devices if devices is not None else _device_rows(store)
    pub = dict(zip(devices["id"].astype(int), devices["device_id"]))
    for f in findings:
        f.public_id = pub.get(f.device_id)


def persist_findings(store: Store, findings: list[Finding], detected_at: datetime | None = None) -> None:
    """Write findings to ``ai_anomalies`` (idempotent on device, metric, start) and set their ids."""
    now = detected_at or datetime.utcnow().replace(microsecond=0)
    df = pd.DataFrame([{
        "device_id": f.device_id, "metric": f.metric, "metrics": f.metrics, "kind": f.kind,
        "score": f.score, "severity": f.severity, "start": f.start, "end": f.end,
        "observed": f.observed, "expected_low": f.expected_low, "expected_high": f.expected_high,
        "signals": f.signals, "explanation": f.explanation, "detected_at": now,
    } for f in findings])
    insert_frame(store, "ai_anomalies", df, conflict=("device_id", "metric", "start"), json_cols=("metrics", "signals"))
    with store.engine.begin() as conn:
        for f in findings:
            conn.execute(text('UPDATE ai_anomalies SET "end" = :e, score = :s, severity = :sev WHERE device_id = :d '
                              'AND metric = :m AND start = :st AND ("end" IS NULL OR "end" < :e)'),
                         {"e": f.end, "s": f.score, "sev": f.severity, "d": f.device_id, "m": f.metric, "st": f.start})
    # read back after the write transaction has committed (the reader may be another connection)
    ids = read_frame(store, "SELECT id, device_id, metric, start FROM ai_anomalies WHERE start >= :lo",
                     {"lo": min(f.start for f in findings)}, parse_dates=["start"])
    key = {(int(r.device_id), r.metric, pd.Timestamp(r.start).to_pydatetime()): int(r.id) for r in ids.itertuples()}
    for f in findings:
        f.id = key.get((f.device_id, f.metric, f.start))


def raise_alerts(store: Store, findings: Sequence[Finding], min_severity: str = "medium") -> int:
    """Write one HOMEPOT ``alerts`` row per finding at or above ``min_severity``; returns the count.

    ``alerts.device_id`` holds the public id; the title reads like
    "Anomaly: cpu_percent 97.2 (expected 20-45)"; the AI fields carry the explanation and score.
    """
    order = ["low", "medium", "high", "critical"]
    keep = [f for f in findings if order.index(f.severity) >= order.index(min_severity)]
    if not keep:
        return 0
    devices = _device_rows(store)
    pub = dict(zip(devices["id"].astype(int), devices["device_id"]))
    site = dict(zip(devices["id"].astype(int), devices["site_id"]))
    rows = []
    for f in keep:
        if f.observed is not None and f.expected_low is not None:
            title = f"Anomaly: {f.metric} {f.observed:.4g} (expected {f.expected_low:.4g}-{f.expected_high:.4g})"
        else:
            title = f"Anomaly: {f.kind.replace('_', ' ')} on {f.metric}"
        rows.append({"timestamp": f.start, "device_id": pub.get(f.device_id, f.public_id),
                     "site_id": site.get(f.device_id), "title": title[:255], "description": f.explanation,
                     "severity": SEVERITY_TO_ALERT[f.severity], "category": CATEGORY, "status": "active",
                     "ai_recommendation": f"Check {f.metric} on this device ({f.kind.replace('_', ' ')}).",
                     "ai_confidence": f.score})
    n = insert_frame(store, "alerts", pd.DataFrame(rows))
    return n


# ---------------------------------------------------------------------------------- incremental
def _load_states(store: Store) -> dict[int, dict[str, Any]]:
    df = read_frame(store, "SELECT key, last_timestamp, state FROM ai_detector_state WHERE key LIKE :p",
                    {"p": STATE_PREFIX + "%"}, parse_dates=["last_timestamp"])
    return {int(r.key[len(STATE_PREFIX):]): pickle.loads(r.state) for r in df.itertuples()}


def _save_states(store: Store, det: FleetDetector, last_ts: datetime, now: datetime) -> None:
    rows = [{"key": f"{STATE_PREFIX}{dev}", "last_timestamp": last_ts,
             "state": pickle.dumps(det.device_state(i), protocol=5), "updated_at": now}
            for i, dev in enumerate(det.device_ids)]
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM ai_detector_state WHERE key LIKE :p"), {"p": STATE_PREFIX + "%"})
    insert_frame(store, "ai_detector_state", pd.DataFrame(rows))


def _restore(det: FleetDetector, states: dict[int, dict[str, Any]]) -> None:
    for i, dev in enumerate(det.device_ids):
        st = states.get(dev)
        if st is not None:
            det.restore_device(i, st)


def scan_new(store: Store, now: datetime | None = None, *, warmup: timedelta = timedelta(days=7),
             metrics: Sequence[str] | None = None, persist: bool = True) -> list[Finding]:
    """Score only the points that arrived since the last scan, carrying state between runs.

    First run (no state): the detector learns from the last ``warmup`` of history and reports only
    findings from the final hour. Returned findings include events still in progress.
    """
    now = now or datetime.utcnow()
    states = _load_states(store)
    saved = next((st.get("metrics") for st in states.values() if st.get("version") == 2), None)
    if metrics == "all":
        metric_list = saved or list_metric_names(store)
    else:
        metric_list = list(metrics) if metrics else list(DEFAULT_METRICS)
    if states:
        last = read_frame(store, "SELECT MIN(last_timestamp) AS t FROM ai_detector_state WHERE key LIKE :p",
                          {"p": STATE_PREFIX + "%"}, parse_dates=["t"])["t"].iloc[0]
        since = pd.Timestamp(last).to_pydatetime()
        load_from = since + timedelta(seconds=1)
        emit_from = None
    else:
        load_from = now - warmup
        emit_from = np.datetime64(now - timedelta(hours=1))
    wide = load_metrics_wide(store, start=load_from, end=now + timedelta(seconds=1), metrics=_with_uptime(metric_list))
    if wide.empty:
        return []
    devices = _device_rows(store)
    dev_ids = sorted(set(devices["id"].astype(int)) | set(states))
    aux = [UPTIME_METRIC] if UPTIME_METRIC in wide.columns and UPTIME_METRIC not in metric_list else []
    panel = panel_from_wide(wide, metric_list + aux)
    det = FleetDetector(dev_ids, metric_list)
    _restore(det, states)
    closed = det.run(panel, emit_from=emit_from, flush=False)
    open_ = [f for f in det.open_findings() if emit_from is None or np.datetime64(f.start) >= emit_from]
    findings = drop_planned(closed + open_, maintenance_windows(store, det.device_ids))
    _attach_public_ids(store, findings, devices)
    if persist:
        if findings:
            persist_findings(store, findings, detected_at=now)
        _save_states(store, det, pd.Timestamp(panel.times[-1]).to_pydatetime(), now)
    return findings
