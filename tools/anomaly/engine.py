"""Run the streaming detector over a (time x device x metric) panel and group alarms into findings.

``FleetDetector`` owns the state of every series of a set of devices. ``run(panel)`` advances it
one grid interval at a time (each step vectorised across all series) and returns the findings that
started in the panel. Alarms of one device within ``gap`` intervals of each other form one finding
(multivariate per device: every metric that fired is listed, the strongest is the headline), so
an incident touching CPU, latency and error rate is one explained finding, not three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from tools.anomaly.detector import KIND_CODES, DetectorParams, SeriesState, _tail, _track, bucket_of, step
from tools.anomaly.pairs import DEFAULT_PAIRS, PairState, pair_step

#: Counts are variance-stabilised (Anscombe: 2 sqrt(x + 3/8) is ~N(., 1) for Poisson counts) so a
#: quiet night's 0/1 queue and a busy noon's 12 are judged on one scale.
COUNT_METRICS = frozenset({"transaction_count", "queue_depth", "active_connections", "tcp_retransmits",
                           "door_open_count", "process_count", "thread_count", "open_files",
                           "transaction_volume"})


def is_count(metric: str) -> bool:
    return metric in COUNT_METRICS or metric.endswith("_count")


def _fwd(x: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def _minutes(t: np.datetime64) -> float:
    """Epoch minutes of a datetime64 (the unit the detector stamps onsets in)."""
    return float(np.datetime64(t, "ns").astype(np.int64)) / 6e10


def _inv(y: float) -> float:
    return max((y / 2.0) ** 2 - 0.375, 0.0)

#: Metrics that reset when the device reboots (memory sawtooth, heap, open files): a drop at a
#: reboot is the device starting afresh, not a dip, so their state restarts at every reboot.
REBOOT_METRICS = frozenset({"memory_percent", "memory_used_mb", "app_heap_mb", "open_files", "swap_used_mb"})
#: The counter that marks reboots: when it falls, the device rebooted ``value`` hours ago.
UPTIME_METRIC = "uptime_hours"
#: How long (intervals) an alarm on reboot metrics waits for the next uptime sample (hourly) to
#: confirm it was not a reboot before its finding is released.
REBOOT_HOLD = 15

#: Minimum event strength (signal / calibrated bar) for a finding to be reported, per headline
#: kind. Level and variance statistics of load-driven metrics (gateway traffic, disk wait) cross
#: their bar by a little on ordinary busy mornings; injected shifts and erratic spells clear it
#: by far more (measured on tuning fleets, seeds 11 and 12), so weak ones are not reported.
REPORT_MIN: dict[str, float] = {"level_shift": 1.6, "variance_change": 1.2}

OUTAGE_CODE = 8
CORR_CODE = 7
ALL_KINDS = {**KIND_CODES, OUTAGE_CODE: "outage"}


@dataclass
class Panel:
    """Values on a regular grid: ``values[t, d, m]`` (NaN where nothing arrived)."""

    times: np.ndarray  # datetime64[ns], shape (T,)
    device_ids: list[int]
    metrics: list[str]
    values: np.ndarray
    interval: pd.Timedelta
    #: per device, how far its samples sit after the grid slot (median), so findings carry the
    #: device's own timestamps rather than the floored slot
    offsets: np.ndarray | None = None


def infer_interval(frame: pd.DataFrame) -> pd.Timedelta:
    """The typical reporting interval (median step within devices); 5 minutes if unknown."""
    if len(frame) < 3:
        return pd.Timedelta(minutes=5)
    f = frame.sort_values(["device_id", "timestamp"])
    d = f["timestamp"].diff()
    same = f["device_id"].eq(f["device_id"].shift())
    steps = d[same & (d > pd.Timedelta(0))]
    if steps.empty:
        return pd.Timedelta(minutes=5)
    return pd.Timedelta(steps.median()).round("1s") or pd.Timedelta(minutes=5)


def panel_from_wide(frame: pd.DataFrame, metrics: list[str], interval: pd.Timedelta | None = None,
                    start: datetime | None = None) -> Panel:
    """Put a wide metrics frame (device_id, timestamp, metric columns) on a regular grid.

    Timestamps are floored to the interval; unsorted rows are sorted and duplicate timestamps
    keep the last value, so bad input orders give a well-defined panel rather than an error.
    """
    interval = interval or infer_interval(frame)
    if frame.empty:
        return Panel(np.array([], dtype="datetime64[ns]"), [], list(metrics), np.zeros((0, 0, len(metrics))), interval)
    f = frame.sort_values(["device_id", "timestamp"], kind="stable")
    slot = f["timestamp"].dt.floor(interval)
    t0 = pd.Timestamp(start).floor(interval) if start is not None else slot.min()
    t_idx = ((slot - t0) // interval).to_numpy(dtype=np.int64)
    keep = t_idx >= 0
    devices = sorted(f["device_id"].unique().tolist())
    d_idx = np.searchsorted(np.asarray(devices), f["device_id"].to_numpy())
    n_t = int(t_idx.max()) + 1 if keep.any() else 0
    values = np.full((n_t, len(devices), len(metrics)), np.nan)
    vals = f.reindex(columns=metrics).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    values[t_idx[keep], d_idx[keep]] = vals[keep]
    times = np.asarray(pd.Timestamp(t0).to_datetime64() + np.arange(n_t) * interval.to_timedelta64()) if n_t else np.array([], dtype="datetime64[ns]")
    phase = (f["timestamp"] - slot).groupby(f["device_id"].to_numpy()).median()
    offsets = np.asarray([phase.get(d, pd.Timedelta(0)) for d in devices], dtype="timedelta64[ns]")
    return Panel(np.asarray(times, dtype="datetime64[ns]"), devices, list(metrics), values, interval, offsets)


@dataclass
class Finding:
    """One explained anomaly on one device."""

    device_id: int
    metric: str
    metrics: list[str]
    kind: str
    score: float
    severity: str
    start: datetime
    end: datetime
    observed: float | None
    expected_low: float | None
    expected_high: float | None
    signals: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""
    id: int | None = None
    public_id: str | None = None
    #: when the detector first raised the alarm (the timestamp of the point that crossed the bar);
    #: ``start`` is the estimated onset, which can lie earlier (drifts, stuck runs, outages)
    fired_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["start"] = self.start.isoformat(sep=" ")
        d["end"] = self.end.isoformat(sep=" ")
        d["fired_at"] = self.fired_at.isoformat(sep=" ") if self.fired_at is not None else None
        return d


def severity_of(score: float) -> str:
    """Map a score in [0, 1] to HOMEPOT's alert severities."""
    if score >= 0.9:
        return "critical"
    if score >= 0.8:
        return "high"
    if score >= 0.65:
        return "medium"
    return "low"


def score_of(strength: float) -> float:
    """Strength is signal / threshold (>= 1 when firing); score = 1 - 0.5 / strength in [0.5, 1)."""
    return float(min(max(1.0 - 0.5 / max(strength, 1e-9), 0.0), 0.999))


_WHAT = {
    "spike": "jumped above", "dip": "dropped below", "level_shift": "shifted away from",
    "drift": "drifted steadily away from", "variance_change": "became much more erratic than",
    "stuck": "stopped changing (stuck) instead of following", "broken_correlation":
    "stopped following its usual relationship with", "outage": "stopped reporting against",
}


def explain(kind: str, metric: str, observed: float | None, lo: float | None, hi: float | None,
            metrics: list[str], partner: str | None = None) -> str:
    """One sentence a technician can act on."""
    if kind == "outage":
        return "The device stopped sending metrics for several consecutive intervals."
    band = f"the expected {lo:.4g} to {hi:.4g}" if lo is not None and hi is not None else "its usual range"
    obs = f" at {observed:.4g}" if observed is not None and np.isfinite(observed) else ""
    if kind == "broken_correlation":
        text = f"{metric}{obs} stopped following {partner or 'its paired metric'} as it usually does (expected {lo:.4g} to {hi:.4g} given it)"
    else:
        text = f"{metric}{obs} {_WHAT.get(kind, 'left')} {band} for this time of day"
    others = [m for m in metrics if m != metric]
    if others:
        text += f"; {', '.join(others)} also moved"
    return text + "."


class FleetDetector:
    """Streaming state for a set of devices x metrics, plus the open events of each device.

    Alarms of a device become events: an alarm joins the open event that already holds its metric,
    or the device's latest open event if its onset lies within ``merge`` intervals of that event's
    start (several metrics moving together are one finding); otherwise it opens a new event, so a
    real spike is not swallowed by an unrelated episode that began hours earlier. An event closes
    after ``gap`` intervals without alarms.
    """

    def __init__(self, device_ids: list[int], metrics: list[str], params: DetectorParams | None = None,
                 gap: int = 6, outage_steps: int = 4, merge: int = 6) -> None:
        self.params = params or DetectorParams()
        self.device_ids = list(device_ids)
        self.metrics = list(metrics)
        self.gap = gap
        self.merge = merge
        self.outage_steps = outage_steps
        d, m = len(self.device_ids), len(self.metrics)
        self.series = SeriesState.new(d * m)
        self.counts = np.array([is_count(k) for k in self.metrics])
        # after the Anscombe transform a Poisson count has unit sd: no count series is quieter
        self.series.min_scale[:] = np.tile(np.where(self.counts, 1.0, 0.0), d) if m else 0.0
        self.pairs = [(a, b) for a, b in DEFAULT_PAIRS if a in self.metrics and b in self.metrics]
        self.pair_states = [PairState.new(d) for _ in self.pairs]
        self.seen = np.zeros(d, dtype=bool)
        self.missing = np.zeros(d)
        self.gapmax = np.zeros(d)
        self.outage_cap = 6
        self.last_time: np.datetime64 | None = None
        #: open events per device index: list of dicts (start, end, idle, strength, metrics, ...)
        self.ev: dict[int, list[dict[str, Any]]] = {}
        self.offsets = np.zeros(d, dtype="timedelta64[ns]")
        self._interval = pd.Timedelta(minutes=5)
        self.reboot_cols = np.array([k in REBOOT_METRICS for k in self.metrics], dtype=bool)
        #: last uptime seen (hours), when it was seen (epoch minutes) and the last reboot (epoch minutes)
        self.last_up = np.full(d, np.nan)
        self.up_seen = np.full(d, -np.inf)
        self.reboot_at = np.full(d, -np.inf)

    # ------------------------------------------------------------------ stepping
    def run(self, panel: Panel, emit_from: np.datetime64 | None = None, flush: bool = True) -> list[Finding]:
        """Advance over every interval of ``panel``; return findings (those starting at or after
        ``emit_from`` if given). ``flush`` closes events still open at the end."""
        out: list[Finding] = []
        if panel.values.size == 0:
            return out
        pos = {d: i for i, d in enumerate(panel.device_ids)}
        idx = np.array([pos.get(d, -1) for d in self.device_ids])
        have = idx >= 0
        self._interval = pd.Timedelta(panel.interval)
        if panel.offsets is not None:
            self.offsets = np.where(have, np.asarray(panel.offsets, dtype="timedelta64[ns]")[np.maximum(idx, 0)],
                                    np.timedelta64(0, "ns"))
        buckets = bucket_of(panel.times)
        minutes = np.asarray(panel.times, dtype="datetime64[m]").astype(np.int64).astype(float)
        d, m = len(self.device_ids), len(self.metrics)
        mpos = {name: j for j, name in enumerate(panel.metrics)}
        midx = np.array([mpos.get(name, -1) for name in self.metrics])
        # one gather for the whole panel: (T, d, m) in the detector's device/metric order
        cube = np.full((len(panel.times), d, m), np.nan)
        if have.any():
            sub = panel.values[:, idx[have]][:, :, np.where(midx >= 0, midx, 0)]
            sub[:, :, midx < 0] = np.nan
            cube[:, have] = sub
        if self.counts.any():
            cube[:, :, self.counts] = _fwd(cube[:, :, self.counts])
        up = np.full((len(panel.times), d), np.nan)
        if UPTIME_METRIC in mpos and have.any() and self.reboot_cols.any():
            up[:, have] = panel.values[:, idx[have], mpos[UPTIME_METRIC]]
        for t in range(len(panel.times)):
            self._reboots(up[t], minutes[t])
            out.extend(self._step(panel.times[t], cube[t], int(buckets[t]), minutes[t]))
        if flush:
            out.extend(self._close_all())
        if emit_from is not None:
            out = [f for f in out if np.datetime64(f.start) >= emit_from]
        return out

    def _reboots(self, up: np.ndarray, now_min: float) -> None:
        """Read the uptime counter: where it fell, the device rebooted ``up`` hours ago. The
        reboot-reset metrics of that device restart from a fresh state (their old level belongs to
        the previous uptime cycle) and alarms on them since the reboot are dropped."""
        seen = np.isfinite(up)
        if not seen.any():
            return
        fell = seen & np.isfinite(self.last_up) & (up < self.last_up - 1e-6)
        self.last_up = np.where(seen, up, self.last_up)
        self.up_seen = np.where(seen, now_min, self.up_seen)
        m = len(self.metrics)
        for i in np.flatnonzero(fell):
            i = int(i)
            at = now_min - float(up[i]) * 60.0
            self.reboot_at[i] = at
            cols = np.flatnonzero(self.reboot_cols) + i * m
            fresh = SeriesState.new(len(cols))
            for keep in ("step", "min_scale", "max_run", "repeat"):
                getattr(fresh, keep)[:] = getattr(self.series, keep)[cols]
            self.series.put(cols, fresh)
            evs = self.ev.get(i, [])
            kept = [ev for ev in evs if not (self._reboot_only(ev) and _minutes(ev["start"]) >= at - 3 * self._step_min())]
            if kept:
                self.ev[i] = kept
            else:
                self.ev.pop(i, None)

    def _step_min(self) -> float:
        return self._interval.value / 6e10

    def _reboot_only(self, ev: dict[str, Any]) -> bool:
        return bool(ev["metrics"]) and all(k in REBOOT_METRICS for k in ev["metrics"])

    def _held(self, i: int, ev: dict[str, Any]) -> bool:
        """An event only on reboot-reset metrics waits for an uptime sample after its start (the
        counter is hourly) so a reboot can still explain it; devices without uptime never wait."""
        if not self._reboot_only(ev) or not np.isfinite(self.last_up[i]) or ev["idle"] > REBOOT_HOLD:
            return False
        return self.up_seen[i] < _minutes(ev["start"])

    def _step(self, ts: np.datetime64, x: np.ndarray, bucket: int, now_min: float) -> list[Finding]:
        d, m = x.shape
        p = self.params
        res = step(self.series, x.reshape(-1), bucket, p, now_min)
        kind = res.kind.reshape(d, m).copy()
        strength = np.where(kind > 0, res.strength.reshape(d, m), 0.0)
        onset = res.onset.reshape(d, m).copy()
        partner: dict[tuple[int, int], str] = {}
        pair_band: dict[tuple[int, int], tuple[float, float]] = {}
        if self.pairs and p.corr_rms < np.inf:
            for (a, b), pst in zip(self.pairs, self.pair_states):
                ja, jb = self.metrics.index(a), self.metrics.index(b)
                z, pred, sc = pair_step(pst, x[:, ja], x[:, jb])
                # sustained loss of the relationship, against the pair's own calibrated tail
                rms = np.sqrt(pst.ez)
                thr = _tail(pst.q90, pst.q99, p.corr_rms, p.margin)
                s = rms / thr
                quiet = (s < p.warn_frac) & (pst.n >= 288)
                pst.q90 = _track(pst.q90, rms, 0.90, 0.01, quiet)
                pst.q99 = _track(pst.q99, rms, 0.99, 0.05, quiet)
                better = (s >= 1.0) & (strength[:, ja] < 1.0)
                for i in np.flatnonzero(better):
                    partner[(int(i), ja)] = b
                    pair_band[(int(i), ja)] = (float(pred[i] - 3 * sc[i]), float(pred[i] + 3 * sc[i]))
                kind[:, ja] = np.where(better, CORR_CODE, kind[:, ja])
                strength[:, ja] = np.where(better, s, strength[:, ja])
                onset[:, ja] = np.where(better, now_min, onset[:, ja])
        # outage: a device seen before that sends nothing for outage_steps intervals
        # the bar is calibrated per device: longer than the longest short gap it has shown (random
        # dropped samples), capped so a real outage of half an hour always counts
        present = np.isfinite(x).any(axis=1)
        ended = present & (self.missing > 0) & (self.missing < self.outage_cap)
        self.gapmax = np.where(ended, np.maximum(self.gapmax, self.missing), self.gapmax)
        self.missing = np.where(present, 0, self.missing + self.seen)
        self.seen |= present
        bar = self.outage_bar()
        outage = self.missing == bar
        self.last_time = ts
        fired_dev = (kind > 0).any(axis=1) | outage
        found: list[Finding] = []
        # age open events; close those idle for more than gap intervals
        for i in list(self.ev):
            keep = []
            for ev in self.ev[i]:
                ev["idle"] += 1
                if ev["idle"] > self.gap and not self._held(i, ev):
                    if self._reportable(ev):
                        found.append(self._finding(i, ev))
                else:
                    keep.append(ev)
            if keep:
                self.ev[i] = keep
            else:
                del self.ev[i]
        step_ns = np.timedelta64(int(self._interval.value), "ns")
        expected = res.expected.reshape(d, m)
        scale = res.scale.reshape(d, m)
        for i in np.flatnonzero(fired_dev):
            i = int(i)
            now = ts + self.offsets[i]
            if outage[i]:
                alarms = [("all", OUTAGE_CODE, 1.0, now - step_ns * int(bar[i] - 1), None, None, None, None)]
            else:
                alarms = []
                for j in np.flatnonzero(kind[i] > 0):
                    j = int(j)
                    on = onset[i, j]
                    on_t = now if not np.isfinite(on) else min(now, np.datetime64(int(on), "m").astype("datetime64[ns]") + self.offsets[i])
                    if (i, j) in pair_band:
                        lo, hi = pair_band[(i, j)]
                    else:
                        lo = float(expected[i, j] - 3 * scale[i, j])
                        hi = float(expected[i, j] + 3 * scale[i, j])
                    obs = float(x[i, j])
                    if self.counts[j]:
                        lo, hi, obs = _inv(lo), _inv(hi), _inv(obs)
                    alarms.append((self.metrics[j], int(kind[i, j]), float(strength[i, j]), on_t, obs, lo, hi,
                                   partner.get((i, j))))
            for mname, k, sv, on_t, obs, lo, hi, prt in alarms:
                ev = self._event_for(i, mname, on_t, alone=k == OUTAGE_CODE)
                ev["end"] = now
                ev["fired"] = min(ev.get("fired") or now, now)
                ev["idle"] = 0
                ev["start"] = min(ev["start"], on_t)
                rec = ev["metrics"].setdefault(mname, {"strength": 0.0})
                if sv > rec["strength"]:
                    rec.setdefault("fired_at", str(pd.Timestamp(now)))
                    rec.update(strength=round(sv, 3), kind=ALL_KINDS[k], observed=obs, expected_low=lo,
                               expected_high=hi, at=str(pd.Timestamp(ts)), partner=prt)
                if sv > ev["strength"]:
                    ev["strength"], ev["kind"], ev["metric"] = sv, ALL_KINDS[k], mname
        return found

    def _event_for(self, i: int, metric: str, onset: np.datetime64, alone: bool = False) -> dict[str, Any]:
        """The open event of device ``i`` this alarm belongs to (a new one if none fits; an outage
        never joins an event of other metrics)."""
        evs = self.ev.setdefault(i, [])
        for ev in evs:
            if metric in ev["metrics"]:
                return ev
        if alone:
            evs = []
            self.ev[i].append(ev := {"start": onset, "end": onset, "idle": 0, "strength": 0.0, "metrics": {},
                                     "kind": None, "metric": None})
            return ev
        window = np.timedelta64(int(self._interval.value * self.merge), "ns")
        if evs and abs(onset - evs[-1]["start"]) <= window:
            return evs[-1]
        ev = {"start": onset, "end": onset, "idle": 0, "strength": 0.0, "metrics": {}, "kind": None, "metric": None}
        evs.append(ev)
        return ev

    def outage_bar(self) -> np.ndarray:
        """Missing intervals that make an outage, per device."""
        return np.minimum(np.maximum(self.outage_steps, self.gapmax + 1), self.outage_cap)

    def interval_guess(self) -> pd.Timedelta:
        return self._interval

    @staticmethod
    def _reportable(ev: dict[str, Any]) -> bool:
        """Whether an event is strong enough for its kind to be reported (``REPORT_MIN``)."""
        return ev["strength"] >= REPORT_MIN.get(ev["kind"], 1.0)

    def _close_all(self) -> list[Finding]:
        out = [self._finding(i, ev) for i, evs in self.ev.items() for ev in evs if self._reportable(ev)]
        self.ev = {}
        return out

    def _finding(self, i: int, ev: dict[str, Any]) -> Finding:
        head = ev["metrics"][ev["metric"]]
        metrics = sorted(ev["metrics"], key=lambda k: -ev["metrics"][k]["strength"])
        score = score_of(ev["strength"])
        signals = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in ev["metrics"].items()}
        return Finding(
            device_id=self.device_ids[i], metric=ev["metric"], metrics=metrics, kind=ev["kind"],
            score=round(score, 4), severity=severity_of(score),
            start=pd.Timestamp(ev["start"]).to_pydatetime(), end=pd.Timestamp(ev["end"]).to_pydatetime(),
            observed=head.get("observed"), expected_low=head.get("expected_low"),
            expected_high=head.get("expected_high"), signals=signals,
            explanation=explain(ev["kind"], ev["metric"], head.get("observed"), head.get("expected_low"),
                                head.get("expected_high"), metrics, head.get("partner")),
            fired_at=pd.Timestamp(ev.get("fired") or ev["end"]).to_pydatetime(),
        )

    def open_findings(self) -> list[Finding]:
        """Events still open (for incremental runs: reported now, updated later)."""
        return [self._finding(i, ev) for i, evs in self.ev.items() for ev in evs if self._reportable(ev)]

    # ------------------------------------------------------------------ per-device state
    def device_state(self, i: int) -> dict[str, Any]:
        """Everything the detector keeps about device index ``i`` (for ai_detector_state)."""
        m = len(self.metrics)
        sl = np.arange(i * m, (i + 1) * m)
        return {
            "version": 2, "metrics": self.metrics,
            "series": self.series.take(sl).to_arrays(),
            "pairs": [ps.take(np.array([i])).to_arrays() for ps in self.pair_states],
            "seen": bool(self.seen[i]), "missing": float(self.missing[i]), "gapmax": float(self.gapmax[i]),
            "last_up": float(self.last_up[i]), "up_seen": float(self.up_seen[i]),
            "reboot_at": float(self.reboot_at[i]),
            "ev": self.ev.get(i, []),
        }

    def restore_device(self, i: int, blob: dict[str, Any]) -> bool:
        """Load a saved device state into index ``i``; False (fresh start) if it does not fit."""
        if blob.get("version") != 2 or blob.get("metrics") != self.metrics:
            return False
        m = len(self.metrics)
        try:
            part = SeriesState.from_arrays(blob["series"])
        except KeyError:
            return False
        self.series.put(np.arange(i * m, (i + 1) * m), part)
        for ps, arrays in zip(self.pair_states, blob["pairs"]):
            for k, v in arrays.items():
                getattr(ps, k)[i] = np.asarray(v)[0]
        self.seen[i] = blob["seen"]
        self.missing[i] = blob["missing"]
        self.gapmax[i] = blob.get("gapmax", 0.0)
        self.last_up[i] = blob.get("last_up", np.nan)
        self.up_seen[i] = blob.get("up_seen", -np.inf)
        self.reboot_at[i] = blob.get("reboot_at", -np.inf)
        if blob["ev"]:
            self.ev[i] = list(blob["ev"])
        return True
