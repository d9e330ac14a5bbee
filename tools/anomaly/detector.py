"""The streaming fleet detector: constant state per series, one vectorised step per interval.

Many series (every (device, metric) pair) are advanced together: a step takes one value per
series (NaN where none arrived) and updates fixed-size state with numpy, so batch scoring of
30 days is a loop over 8,640 five-minute steps of array operations, and an incremental pass over
one new interval is the same single step. A point is scored from the state built from the past
only, so scores of a prefix never change when the series grows.

Why this design (each part answers a false-alarm or miss cause seen on the simulated fleet):

* **Seasonal robust location.** Per series a Huber-clipped EW mean per quarter-hour of the week
  (trading hours and busy days differ per weekday), falling back to the quarter-hour
  of any day and then to a global level while a bucket is young. Quarter hours resolve short
  daily jobs (a nightly backup lifting CPU for 15 minutes) that hourly buckets smear.
* **Innovations, not raw residuals.** Device metrics are autocorrelated (AR(1) with phi up to
  0.97), so the residual of one sample says little; the detector estimates phi per series and
  scores the innovation ``e = r - phi * r_prev`` against its own robust scale (EW mean absolute
  innovation per bucket, floored by a fraction of the level and by the series' quantisation
  step). Counts are variance-stabilised (Anscombe) by the engine before they get here.
* **Per-series calibrated thresholds.** For each statistic (point innovation, level, variance)
  the series tracks its own 90th and 99th percentile online and extrapolates an exponential
  tail to ~1e-4 (``q99 + 2 (q99 - q90)``): bursty counts and heavy-tailed latencies raise their
  own bar, clean series keep the Gaussian one.
* **Detectors per kind** on the standardised streams: spike/dip (one innovation beyond the
  tail), level shift / drift (EW mean of residuals standardised for autocorrelation), variance
  change (EW mean of squared innovations), stuck (a run of identical values longer than the
  series has ever shown, for series that normally vary).
* **Episodes freeze learning.** While a series is anomalous (and for ``calm`` points after), its
  baseline, scale and tail trackers are not updated, so a lasting shift stays one episode and
  does not contaminate the baseline; after ``max_episode`` points the new level is accepted.
  Each alarm carries its estimated onset (when the statistic first crossed a warning level, or
  when a stuck run began) so findings start where the anomaly started.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

KIND_CODES: dict[int, str] = {
    1: "spike", 2: "dip", 3: "level_shift", 4: "drift", 5: "variance_change", 6: "stuck",
    7: "broken_correlation",
}
#: a zero count after the engine's Anscombe transform 2 sqrt(x + 3/8) (count series have min_scale 1)
ANSCOMBE_ZERO = 2.0 * float(np.sqrt(0.375))
SLOTS_PER_DAY = 96  # quarter hours
N_BUCKETS = 7 * SLOTS_PER_DAY  # day of week x quarter hour (trading hours differ per weekday)


@dataclass(frozen=True)
class DetectorParams:
    """Global settings (the same for every series); thresholds are in robust-sigma units and are
    floors: each series raises them to its own calibrated tail."""

    alpha_bucket: float = 0.1
    alpha_global: float = 0.01
    clip: float = 3.0
    min_bucket: int = 3
    min_slot: int = 3
    min_global: int = 288
    alpha_level: float = 0.08
    alpha_var: float = 0.04
    spike_floor: float = 5.0
    level_floor: float = 4.5
    var_floor: float = 3.0
    margin: float = 1.1
    young_mult: float = 1.4
    young_level_mult: float = 2.0
    warn_frac: float = 0.6
    drift_steps: int = 24
    stuck_min: int = 8
    stuck_repeat: float = 0.05
    calm: int = 6
    max_episode: int = 864
    rel_floor: float = 0.003
    abs_floor: float = 1e-3
    corr_rms: float = 2.5


def bucket_of(ts: np.ndarray) -> np.ndarray:
    """(day of week x quarter hour) bucket for naive UTC datetimes (numpy datetime64)."""
    t = np.asarray(ts, dtype="datetime64[m]")
    days = t.astype("datetime64[D]")
    dow = (days.astype(np.int64) + 3) % 7  # 0 = Monday
    slot = (t - days).astype(np.int64) // (1440 // SLOTS_PER_DAY)
    return dow * SLOTS_PER_DAY + slot


# fields laid out (buckets, series) so one step reads a contiguous row
_BUCKET_FIELDS = ("b_loc", "b_n")
_SLOT_FIELDS = ("s_loc", "s_dev", "s_n")
_SERIES_FIELDS = ("g_loc", "g_rdev", "g_edev", "g_n", "c0", "c1", "r_prev", "fast", "vv",
                  "q_sp90", "q_sp99", "q_dn90", "q_dn99", "q_lv90", "q_lv99", "q_vr90", "q_vr99", "last", "run", "run_t",
                  "max_run", "repeat", "step", "min_scale", "lv_kind", "ep", "calm", "ep_len", "lv_warn", "vr_warn")
_INIT = {"q_sp90": 1.645, "q_sp99": 2.576, "q_dn90": 1.645, "q_dn99": 2.576, "q_lv90": 1.645, "q_lv99": 2.576, "q_vr90": 1.3,
         "q_vr99": 1.6, "vv": 1.0, "r_prev": np.nan, "last": np.nan, "lv_warn": np.nan,
         "vr_warn": np.nan, "run_t": np.nan, "step": np.inf}


@dataclass
class SeriesState:
    """Fixed-size state for S series: (N_BUCKETS, S), (SLOTS_PER_DAY, S) and (S,) arrays."""

    b_loc: np.ndarray
    b_n: np.ndarray
    s_loc: np.ndarray
    s_dev: np.ndarray
    s_n: np.ndarray
    g_loc: np.ndarray
    g_rdev: np.ndarray
    g_edev: np.ndarray
    g_n: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    r_prev: np.ndarray
    fast: np.ndarray
    vv: np.ndarray
    q_sp90: np.ndarray
    q_sp99: np.ndarray
    q_dn90: np.ndarray
    q_dn99: np.ndarray
    q_lv90: np.ndarray
    q_lv99: np.ndarray
    q_vr90: np.ndarray
    q_vr99: np.ndarray
    last: np.ndarray
    run: np.ndarray
    run_t: np.ndarray
    max_run: np.ndarray
    repeat: np.ndarray
    step: np.ndarray  # smallest non-zero change seen (quantisation step)
    lv_kind: np.ndarray  # level alarm label fixed when it first fired (3 shift, 4 drift)
    min_scale: np.ndarray  # known noise floor (1.0 for Anscombe-transformed counts: Poisson sd)
    ep: np.ndarray
    calm: np.ndarray
    ep_len: np.ndarray
    lv_warn: np.ndarray
    vr_warn: np.ndarray

    @classmethod
    def new(cls, s: int) -> "SeriesState":
        kw: dict[str, np.ndarray] = {}
        for name in _BUCKET_FIELDS:
            kw[name] = np.zeros((N_BUCKETS, s))
        for name in _SLOT_FIELDS:
            kw[name] = np.zeros((SLOTS_PER_DAY, s))
        for name in _SERIES_FIELDS:
            kw[name] = np.full(s, _INIT.get(name, 0.0), dtype=float)
        return cls(**kw)

    @staticmethod
    def _fields() -> list[str]:
        return [f.name for f in fields(SeriesState)]

    @staticmethod
    def _axis(name: str) -> int:
        return 1 if name in _BUCKET_FIELDS or name in _SLOT_FIELDS else 0

    def __len__(self) -> int:
        return len(self.g_n)

    def take(self, idx: np.ndarray) -> "SeriesState":
        """The state of a subset of series (for saving one device)."""
        return SeriesState(**{k: np.take(getattr(self, k), idx, axis=self._axis(k)) for k in self._fields()})

    def put(self, idx: np.ndarray, other: "SeriesState") -> None:
        """Write ``other`` (a state of ``len(idx)`` series) into series ``idx`` (restoring a device)."""
        for k in self._fields():
            arr, val = getattr(self, k), getattr(other, k)
            if self._axis(k):
                arr[:, idx] = val
            else:
                arr[idx] = val

    @classmethod
    def concat(cls, parts: list["SeriesState"]) -> "SeriesState":
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts], axis=cls._axis(k)) for k in cls._fields()})

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self._fields()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SeriesState":
        """Rebuild a state; a blob from an older layout raises KeyError (the caller starts fresh)."""
        return cls(**{k: np.asarray(arrays[k], dtype=float) for k in cls._fields()})


@dataclass
class StepResult:
    """Per series: fired kind code (0 none), strength (>= 1 when fired), expected value and scale
    (in the stepped units), the alarm's estimated onset (epoch minutes, NaN if none) and the
    residual (for the pair detector)."""

    kind: np.ndarray
    strength: np.ndarray
    expected: np.ndarray
    scale: np.ndarray
    onset: np.ndarray
    resid: np.ndarray
    resid_scale: np.ndarray
    ready: np.ndarray


def _tail(q90: np.ndarray, q99: np.ndarray, floor: float, margin: float) -> np.ndarray:
    """Calibrated bar: an exponential tail through the series' own q90 and q99, extrapolated to
    ~1e-4, times a margin, never below the Gaussian-derived floor."""
    return np.maximum(floor, margin * (q99 + 2.0 * np.maximum(q99 - q90, 0.0)))


def _track(q: np.ndarray, s: np.ndarray, p: float, eta: np.ndarray | float, upd: np.ndarray) -> np.ndarray:
    """One stochastic-approximation step of an online quantile tracker (only where ``upd``)."""
    return np.where(upd, q + eta * ((s > q) - (1.0 - p)), q)


def _location(state: SeriesState, bucket: int, p: DetectorParams) -> np.ndarray:
    """The hierarchical location of one (weekday x quarter hour) bucket, from learnt state only."""
    bucket = int(bucket) % N_BUCKETS
    slot = bucket % SLOTS_PER_DAY
    bl, bn = state.b_loc[bucket], state.b_n[bucket]
    sl, sn = state.s_loc[slot], state.s_n[slot]
    wb = np.where(bn > 0, bn / (bn + p.min_bucket * 0.5), 0.0)
    return np.where(sn >= p.min_slot, sl + wb * (bl - sl), np.where(bn > 0, bl, state.g_loc))


def step(state: SeriesState, x: np.ndarray, bucket: int, p: DetectorParams, now_min: float = 0.0) -> StepResult:
    """Score one value per series from the state (past only), then fold the value into the state.

    ``bucket`` is the (day of week x quarter hour) index of this time step, ``now_min`` its time in
    epoch minutes (used to stamp onsets).
    """
    valid = np.isfinite(x)
    slot = int(bucket) % SLOTS_PER_DAY
    bl, bn = state.b_loc[bucket], state.b_n[bucket]
    sl, sd, sn = state.s_loc[slot], state.s_dev[slot], state.s_n[slot]
    # hierarchical location: the quarter hour of any day, moved towards this weekday's own
    # quarter hour as that bucket gathers samples (empirical-Bayes shrinkage), global while young
    use_s = sn >= p.min_slot
    wb = np.where(bn > 0, bn / (bn + p.min_bucket * 0.5), 0.0)
    loc = np.where(use_s, sl + wb * (bl - sl), np.where(bn > 0, bl, state.g_loc))
    young = bn < p.min_bucket
    r = np.where(valid, x - loc, 0.0)

    # robust scales: residual (marginal) and innovation (one step ahead), with floors
    qfloor = np.where(np.isfinite(state.step), 0.5 * state.step, 0.0)
    floor = np.maximum(np.maximum(np.maximum(p.rel_floor * np.abs(loc), p.abs_floor), qfloor), state.min_scale)
    rscale = np.maximum(1.2533 * state.g_rdev, floor)
    phi = np.clip(np.where(state.c0 > 0, state.c1 / np.maximum(state.c0, 1e-12), 0.0), 0.0, 0.97)
    has_prev = np.isfinite(state.r_prev)
    e = r - phi * np.where(has_prev, state.r_prev, 0.0)
    # the time of day's own innovation scale (counts and latencies are noisier at peak), shrunk
    # towards the series' global one while the slot has few samples
    w = np.where(sd > 0, np.minimum(sn, 30.0) / (np.minimum(sn, 30.0) + 10.0), 0.0)
    edev = w * sd + (1.0 - w) * state.g_edev
    escale = np.maximum(1.2533 * edev, floor)
    escale = np.where(has_prev, escale, np.maximum(escale, rscale))
    ready = valid & (state.g_n >= p.min_global)
    ze = np.where(ready, np.clip(e / escale, -50, 50), 0.0)
    zr = np.where(ready, np.clip(r / rscale, -50, 50), 0.0)

    # statistics: point innovation, level (EW mean of residuals, standardised for AR(1)), variance
    a = p.alpha_level
    fast = np.where(ready, (1 - a) * state.fast + a * zr, state.fast)
    rho = phi * (1 - a)
    # the EW mean of AR(1) residuals has this sd; the location's own estimation error (a few
    # samples per quarter hour) adds a constant offset the mean cannot average away
    n_loc = np.maximum(np.minimum(sn, 2.0 / p.alpha_bucket * 3) + bn, 1.0)
    sd_fast = np.sqrt(a / (2 - a) * (1 + rho) / (1 - rho) + (1 + phi) / (1 - phi) / n_loc)
    s_lv = np.abs(fast) / sd_fast
    vv = np.where(ready, (1 - p.alpha_var) * state.vv + p.alpha_var * np.minimum(ze * ze, 25.0), state.vv)
    # a sample at a regime boundary (a shop closing, a nightly job starting) may belong to the
    # neighbouring quarter hour's pattern: a point alarm must be unusual against both neighbours'
    # learnt levels too, so a hot cabinet cooling at closing time is not a dip
    prev_r = phi * np.where(has_prev, state.r_prev, 0.0)
    ze_n = np.where(ready, np.clip((x - _location(state, bucket + 1, p) - prev_r) / escale, -50, 50), 0.0)
    ze_p = np.where(ready, np.clip((x - _location(state, bucket - 1, p) - prev_r) / escale, -50, 50), 0.0)
    ze_pt = np.where(ze > 0, np.maximum(np.minimum(np.minimum(ze, ze_n), ze_p), 0.0),
                     np.minimum(np.maximum(np.maximum(ze, ze_n), ze_p), 0.0))
    s_sp = np.abs(ze_pt)

    ym = np.where(young, p.young_mult, 1.0)
    # two-sided calibration: latencies have a heavy upper tail and a light lower one, so a dip
    # can be judged by a lower bar than a spike on the same series
    thr_sp = _tail(state.q_sp90, state.q_sp99, p.spike_floor, p.margin) * ym
    thr_dn = _tail(state.q_dn90, state.q_dn99, p.spike_floor, p.margin) * ym
    thr_lv = _tail(state.q_lv90, state.q_lv99, p.level_floor, p.margin) * np.where(young, p.young_level_mult, 1.0)
    thr_vr = _tail(state.q_vr90, state.q_vr99, p.var_floor, p.margin)

    same = valid & (x == state.last)
    run = np.where(valid, np.where(same, state.run + 1, 0.0), state.run)
    run_t = np.where(valid & ~same, now_min, state.run_t)
    stuck_bar = np.maximum(p.stuck_min, 2.0 * state.max_run + 2.0)
    varies = (state.repeat < p.stuck_repeat) & np.isfinite(state.step)

    st = np.vstack([
        np.where(ze_pt > 0, s_sp / thr_sp, 0.0),
        np.where(ze_pt < 0, s_sp / thr_dn, 0.0),
        s_lv / thr_lv,
        np.zeros_like(s_lv),
        # large innovations that are really a moved level are a shift, not erratic behaviour
        np.where(young | (s_lv >= p.warn_frac * thr_lv), 0.0, vv / thr_vr),
        # a run of zeros is an idle till or a closed shop, not a frozen sensor
        np.where(varies & ready & (x != 0) & ~((state.min_scale >= 1.0) & (np.abs(x - ANSCOMBE_ZERO) < 1e-9)),
                 run / stuck_bar, 0.0),
    ])
    st[:, ~ready] = 0.0
    best = np.argmax(st, axis=0)
    strength = np.take_along_axis(st, best[None, :], axis=0)[0]
    kind = np.where(strength >= 1.0, best + 1, 0)

    # onsets: warning crossings start an excursion; alarms report its start
    warn = p.warn_frac
    lv_warn = np.where(ready, np.where(s_lv >= warn * thr_lv, np.where(np.isfinite(state.lv_warn), state.lv_warn, now_min), np.nan), state.lv_warn)
    vr_warn = np.where(ready, np.where(vv >= warn * thr_vr, np.where(np.isfinite(state.vr_warn), state.vr_warn, now_min), np.nan), state.vr_warn)
    slow = (now_min - lv_warn) > p.drift_steps * 5.0
    # a level alarm is a drift if it took long to build up; the label is fixed when it first fires
    new_lv = (kind == 3) & (state.lv_kind == 0)
    state.lv_kind = np.where(new_lv, np.where(slow, 4.0, 3.0), np.where(s_lv < warn * thr_lv, 0.0, state.lv_kind))
    kind = np.where(kind == 3, state.lv_kind.astype(int), kind)
    onset = np.full(len(x), np.nan)
    onset = np.where((kind == 1) | (kind == 2), now_min, onset)
    onset = np.where((kind == 3) | (kind == 4), lv_warn, onset)
    onset = np.where(kind == 5, vr_warn, onset)
    onset = np.where(kind == 6, run_t, onset)
    expected = loc + phi * np.where(has_prev, state.r_prev, 0.0)
    scale = np.where(kind == 3, rscale, escale)

    # episodes: alarms open/extend; calm points close; learning is frozen meanwhile
    fired = kind > 0
    ep = np.where(fired, 1.0, np.where(state.ep > 0, np.where(state.calm + valid >= p.calm, 0.0, 1.0), 0.0))
    state.calm = np.where(fired | (ep == 0), 0.0, state.calm + valid)
    state.ep_len = np.where(ep > 0, state.ep_len + 1, 0.0)
    learn = valid & ((ep == 0) & (state.ep == 0) | (state.ep_len > p.max_episode))
    state.ep = ep
    # scales and tails are not learnt during a warning excursion either: a drift or shift on its
    # way up must not widen the yardstick it is measured with
    calm_now = ~np.isfinite(lv_warn)
    learn_scale = learn & calm_now

    # fold the value in (Huber-clipped where ready, so outliers barely move the baseline)
    rc = np.where(ready, np.clip(r, -p.clip * rscale, p.clip * rscale), r)
    ec = np.where(ready, np.clip(e, -p.clip * escale, p.clip * escale), e)
    first = learn & (state.g_n == 0)
    ag = np.where(learn, np.maximum(1.0 / (state.g_n + 1), p.alpha_global), 0.0)
    rg = np.where(valid, x - state.g_loc, 0.0)
    rg = np.where(ready, np.clip(rg, -p.clip * rscale, p.clip * rscale), rg)
    state.g_loc = np.where(first, x, state.g_loc + ag * rg)
    ags = ag * learn_scale
    started = state.g_n > 0
    # scales: EW mean absolute (Huber-clipped) residual and innovation
    state.g_rdev = state.g_rdev + ags * (np.abs(rc) * started - state.g_rdev) * started
    state.g_edev = state.g_edev + ags * (np.abs(ec) * has_prev - state.g_edev) * has_prev
    state.c0 = state.c0 + ag * started * (rc * rc - state.c0)
    state.c1 = state.c1 + ag * started * has_prev * (rc * np.where(has_prev, np.clip(state.r_prev, -p.clip * rscale, p.clip * rscale), 0.0) - state.c1)
    state.g_n = state.g_n + learn
    ab = np.where(learn, np.maximum(1.0 / (bn + 1), p.alpha_bucket), 0.0)
    rb = np.where(bn > 0, np.clip(x - bl, -p.clip * rscale, p.clip * rscale), 0.0)
    state.b_loc[bucket] = np.where(learn, np.where(bn > 0, bl + ab * rb, x), bl)
    state.b_n[bucket] = bn + learn
    as_ = np.where(learn, np.maximum(1.0 / (sn + 1), p.alpha_bucket / 3), 0.0)
    rs = np.where(sn > 0, np.clip(x - sl, -p.clip * rscale, p.clip * rscale), 0.0)
    state.s_loc[slot] = np.where(learn, np.where(sn > 0, sl + as_ * rs, x), sl)
    state.s_dev[slot] = np.where(learn_scale & has_prev, np.where(sd > 0, sd + as_ * (np.abs(ec) - sd), np.abs(ec)), sd)
    state.s_n[slot] = sn + learn
    upd = learn_scale & ready
    state.q_sp90 = _track(state.q_sp90, ze, 0.95, 0.05, upd)
    state.q_sp99 = _track(state.q_sp99, ze, 0.995, 0.3, upd)
    state.q_dn90 = _track(state.q_dn90, -ze, 0.95, 0.05, upd)
    state.q_dn99 = _track(state.q_dn99, -ze, 0.995, 0.3, upd)
    upd_lv = learn & ready  # the level tail learns from warning excursions too (no censoring)
    state.q_lv90 = _track(state.q_lv90, s_lv, 0.90, 0.01, upd_lv)
    state.q_lv99 = _track(state.q_lv99, s_lv, 0.99, 0.05, upd_lv)
    state.q_vr90 = _track(state.q_vr90, vv, 0.90, 0.01, upd)
    state.q_vr99 = _track(state.q_vr99, vv, 0.99, 0.05, upd)

    # short memory: after an alarm the level/variance statistics keep running (episode), the
    # residual memory follows the data
    state.fast, state.vv = fast, vv
    state.lv_warn, state.vr_warn = lv_warn, vr_warn
    state.r_prev = np.where(valid, r, np.nan)
    d = np.abs(x - state.last)
    state.step = np.where(valid & (d > 0), np.minimum(state.step, d), state.step)
    # how often the series repeats itself in normal times (a run longer than usual does not count)
    usual = learn & np.isfinite(state.last) & (run <= state.max_run + 1)
    state.repeat = np.where(usual, state.repeat + 0.01 * (same - state.repeat), state.repeat)
    # the longest run the series has completed in normal times (the current run does not count)
    ended = learn & valid & ~same
    state.max_run = np.where(ended, np.maximum(state.max_run, state.run), state.max_run)
    state.last = np.where(valid, x, state.last)
    state.run, state.run_t = run, run_t
    return StepResult(kind, strength, expected, scale, onset, np.where(valid, r, np.nan), rscale, ready)
