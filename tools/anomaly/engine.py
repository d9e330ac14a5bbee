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

from tools.anomaly.detector import KIND_CODES, DetectorParams, SeriesState, bucket_of, step
from tools.anomaly.pairs import DEFAULT_PAIRS, PairState, pair_step

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
    vals = f.reindex(columns=metrics).to_numpy(dtype=float)
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

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["start"] = self.start.isoformat(sep=" ")
        d["end"] = self.end.isoformat(sep=" ")
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
    """Streaming state for a set of devices x metrics, plus the open event of each device."""

    def __init__(self, device_ids: list[int], metrics: list[str], params: DetectorParams | None = None,
                 gap: int = 6, outage_steps: int = 3) -> None:
        self.params = params or DetectorParams()
        self.device_ids = list(device_ids)
        self.metrics = list(metrics)
        self.gap = gap
        self.outage_steps = outage_steps
        d, m = len(self.device_ids), len(self.metrics)
        self.series = SeriesState.new(d * m)
        self.pairs = [(a, b) for a, b in DEFAULT_PAIRS if a in self.metrics and b in self.metrics]
        self.pair_states = [PairState.new(d) for _ in self.pairs]
        self.seen = np.zeros(d, dtype=bool)
        self.missing = np.zeros(d)
        self.last_time: np.datetime64 | None = None
        # open event per device
        self.ev_open = np.zeros(d, dtype=bool)
        self.ev_idle = np.zeros(d)
        self.ev: dict[int, dict[str, Any]] = {}
        self.offsets = np.zeros(d, dtype="timedelta64[ns]")

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
        d, m = len(self.device_ids), len(self.metrics)
        mpos = {name: j for j, name in enumerate(panel.metrics)}
        midx = np.array([mpos.get(name, -1) for name in self.metrics])
        x_full = np.full((d, m), np.nan)
        for t in range(len(panel.times)):
            x_full[:] = np.nan
            if have.any():
                sub = panel.values[t][idx[have]]
                cols = np.where(midx >= 0, midx, 0)
                vals = sub[:, cols]
                vals[:, midx < 0] = np.nan
                x_full[have] = vals
            out.extend(self._step(panel.times[t], x_full, int(buckets[t])))
        if flush:
            out.extend(self._close(np.flatnonzero(self.ev_open)))
        if emit_from is not None:
            out = [f for f in out if np.datetime64(f.start) >= emit_from]
        return out

    def _step(self, ts: np.datetime64, x: np.ndarray, bucket: int) -> list[Finding]:
        d, m = x.shape
        res = step(self.series, x.reshape(-1), bucket, self.params)
        kind = res.kind.reshape(d, m).copy()
        strength = np.where(kind > 0, res.strength.reshape(d, m), 0.0)
        expected = res.expected.reshape(d, m)
        scale = res.scale.reshape(d, m)
        partner: dict[tuple[int, int], str] = {}
        for (a, b), pst in zip(self.pairs, self.pair_states):
            ja, jb = self.metrics.index(a), self.metrics.index(b)
            z, pred, sc = pair_step(pst, x[:, ja], x[:, jb])
            s = np.maximum(np.abs(z) / self.params.corr_z, np.sqrt(pst.ez) / self.params.corr_rms)
            better = (s >= 1.0) & (strength[:, ja] < 1.0)
            for i in np.flatnonzero(better):
                partner[(int(i), ja)] = b
                expected[i, ja] = pred[i]
                scale[i, ja] = sc[i]
            kind[:, ja] = np.where(better, CORR_CODE, kind[:, ja])
            strength[:, ja] = np.where(better, s, strength[:, ja])
        # outage: a device seen before that sends nothing for outage_steps intervals
        present = np.isfinite(x).any(axis=1)
        self.missing = np.where(present, 0, self.missing + self.seen)
        self.seen |= present
        outage = self.missing == self.outage_steps
        self.last_time = ts
        fired_dev = (kind > 0).any(axis=1) | outage
        found: list[Finding] = []
        # close events idle for more than gap intervals
        self.ev_idle = np.where(self.ev_open & ~fired_dev, self.ev_idle + 1, 0)
        stale = np.flatnonzero(self.ev_open & (self.ev_idle > self.gap))
        found.extend(self._close(stale))
        for i in np.flatnonzero(fired_dev):
            i = int(i)
            if outage[i]:
                js, ks, ss = [], [OUTAGE_CODE], [1.0]
                start = ts + self.offsets[i] - np.timedelta64(int(pd.Timedelta(self.interval_guess()).value * (self.outage_steps - 1)), "ns")
            else:
                js = list(np.flatnonzero(kind[i] > 0))
                ks = [int(kind[i, j]) for j in js]
                ss = [float(strength[i, j]) for j in js]
                start = ts + self.offsets[i]
            ev = self.ev.get(i) if self.ev_open[i] else None
            if ev is None:
                ev = {"start": start, "end": ts, "strength": 0.0, "metrics": {}, "kind": None}
                self.ev[i] = ev
                self.ev_open[i] = True
            ev["end"] = ts + self.offsets[i]
            for jj, (k, sv) in enumerate(zip(ks, ss)):
                if outage[i]:
                    mname = "all"
                    obs, lo, hi = None, None, None
                else:
                    j = js[jj]
                    mname = self.metrics[j]
                    obs = float(x[i, j])
                    lo = float(expected[i, j] - 3 * scale[i, j])
                    hi = float(expected[i, j] + 3 * scale[i, j])
                rec = ev["metrics"].setdefault(mname, {"strength": 0.0})
                if sv > rec["strength"]:
                    rec.update(strength=sv, kind=ALL_KINDS[k], observed=obs, expected_low=lo,
                               expected_high=hi, at=str(pd.Timestamp(ts)), partner=partner.get((i, js[jj])) if js else None)
                if sv > ev["strength"]:
                    ev["strength"], ev["kind"], ev["metric"] = sv, ALL_KINDS[k], mname
        return found

    def interval_guess(self) -> pd.Timedelta:
        return getattr(self, "_interval", pd.Timedelta(minutes=5))

    def _close(self, devs: np.ndarray) -> list[Finding]:
        out = []
        for i in devs:
            i = int(i)
            ev = self.ev.pop(i, None)
            self.ev_open[i] = False
            self.ev_idle[i] = 0
            if ev is None:
                continue
            out.append(self._finding(i, ev))
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
        )

    def open_findings(self) -> list[Finding]:
        """Events still open (for incremental runs: reported now, updated later)."""
        return [self._finding(int(i), self.ev[int(i)]) for i in np.flatnonzero(self.ev_open) if int(i) in self.ev]
