"""The Numenta Anomaly Benchmark (NAB v1.1) scorer, re-implemented from ``SCORING.md``.

Why our own: NAB's code is Python 2 era and AGPL in places; the scoring rules are short and
fully described in ``benchmarks/nab/SCORING.md``. Everything here follows that text, quirks
included (row-index windows, ``w_prev - 1`` in the FP penalty, a 750-row probation cap, one
threshold per profile fitted on the whole corpus by an exhaustive sweep), so our figures are
comparable with the published scoreboard.

Public API: ``load_corpus``, ``row_values``, ``sweep``, ``score_corpus``, ``PROFILES``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: Cost profiles (config/profiles.json): A_TP, A_FP, A_FN.
PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


class NabDataError(ValueError):
    """The NAB folder is missing or malformed."""


@dataclass
class NabFile:
    """One corpus file: its values and its label windows as inclusive row-index pairs."""

    name: str  # relative path, e.g. "realKnownCause/nyc_taxi.csv"
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def probation(self) -> int:
        """Rows ``i < P`` are never scored: ``P = floor(min(0.15 n, 0.15 * 5000))``."""
        return probation_rows(self.n)


def probation_rows(n: int) -> int:
    """NAB's probationary period for a file of ``n`` rows (at most 750)."""
    return int(math.floor(min(0.15 * n, 0.15 * 5000)))


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's A(y): +1 far left, 0 at y=0, -1 for y > 3 (section 4)."""
    y = np.asarray(y, dtype=float)
    out = 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 50.0))) - 1.0
    return np.where(y > 3.0, -1.0, out)


def load_corpus(root: Path) -> list[NabFile]:
    """Read every ``data/<category>/<file>.csv`` and map label windows to row indices.

    A window edge is the first row with that timestamp (SCORING.md section 9).
    """
    root = Path(root)
    windows_path = root / "labels" / "combined_windows.json"
    if not windows_path.exists():
        raise NabDataError(f"NAB labels not found at {windows_path}; set HOMEPOT_AI_BENCHMARKS_DIR.")
    windows = json.loads(windows_path.read_text())
    files: list[NabFile] = []
    for rel in sorted(windows):
        frame = pd.read_csv(root / "data" / rel)
        ts = pd.to_datetime(frame["timestamp"]).to_numpy()
        pairs: list[tuple[int, int]] = []
        for start, end in windows[rel]:
            s = np.flatnonzero(ts == np.datetime64(pd.Timestamp(start)))
            e = np.flatnonzero(ts == np.datetime64(pd.Timestamp(end)))
            if len(s) == 0 or len(e) == 0:
                raise NabDataError(f"window {start}..{end} does not match a row of {rel}")
            pairs.append((int(s[0]), int(e[0])))
        files.append(NabFile(rel, ts, frame["value"].to_numpy(dtype=float), sorted(pairs)))
    return files


def row_values(n: int, windows: list[tuple[int, int]], profile: str) -> tuple[np.ndarray, np.ndarray]:
    """What each row would add to the score if flagged, and its window id (-1 outside).

    Inside window ``[l, r]``: ``A(-(r - i + 1) / w) * A_TP / A(-1)``. Outside, before any
    window: ``-A_FP``. Outside, after a window: ``A(|r_prev - i| / (w_prev - 1)) * A_FP``.
    """
    a_tp, a_fp, _ = PROFILES[profile]
    idx = np.arange(n)
    value = np.full(n, -a_fp, dtype=float)
    wid = np.full(n, -1, dtype=np.int64)
    a_left = float(scaled_sigmoid(-1.0))
    for k, (left, right) in enumerate(windows):
        width = right - left + 1
        inside = idx[left:right + 1]
        value[left:right + 1] = scaled_sigmoid(-(right - inside + 1) / width) * a_tp / a_left
        wid[left:right + 1] = k
        next_left = windows[k + 1][0] if k + 1 < len(windows) else n
        after = idx[right + 1:next_left]
        if len(after):
            denom = (width - 1) if width > 1 else 1
            value[right + 1:next_left] = scaled_sigmoid(np.abs(right - after) / denom) * a_fp
    return value, wid


@dataclass
class SweepResult:
    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def score(self) -> float:
        """Normalised NAB score: null detector 0, perfect detector 100."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def _pool(files: list[NabFile], scores: list[np.ndarray], profile: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    all_s, all_v, all_w = [], [], []
    offset = 0
    for f, s in zip(files, scores):
        s = np.asarray(s, dtype=float)
        if len(s) != f.n:
            raise ValueError(f"{f.name}: {len(s)} scores for {f.n} rows")
        if np.any(~np.isfinite(s)) or np.any((s < 0) | (s > 1)):
            raise ValueError(f"{f.name}: anomaly scores must lie in [0, 1]")
        v, w = row_values(f.n, f.windows, profile)
        p = f.probation
        keep = slice(p, None)
        # a window counts if any of its rows is past probation; ids are made corpus-unique
        w = np.where(w >= 0, w + offset, -1)
        all_s.append(s[keep]); all_v.append(v[keep]); all_w.append(w[keep])
        offset += len(f.windows)
    return np.concatenate(all_s), np.concatenate(all_v), np.concatenate(all_w), offset


def sweep(files: list[NabFile], scores: list[np.ndarray], profile: str) -> SweepResult:
    """NAB's exhaustive threshold sweep over the pooled corpus (sections 6-7).

    Rows are taken highest score first; after each group of equal scores the total
    ``S(T)`` is recorded; the best (first, i.e. highest, threshold on ties) wins.
    ``T = 1.1`` (detect nothing) is the first candidate.
    """
    a_tp, _, a_fn = PROFILES[profile]
    s, v, w, n_windows = _pool(files, scores, profile)
    null = -a_fn * n_windows
    order = np.argsort(-s, kind="stable")
    s, v, w = s[order], v[order], w[order]
    contrib = np.where(w < 0, v, 0.0)
    in_win = w >= 0
    if in_win.any():
        wv = pd.Series(v[in_win])
        best = wv.groupby(w[in_win]).cummax()
        prev = best.groupby(w[in_win]).shift(1).fillna(-a_fn)
        contrib[in_win] = (best - prev).to_numpy()
    total = null + np.cumsum(contrib)
    if len(s) == 0:
        return SweepResult(1.1, null, null, a_tp * n_windows)
    group_end = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    cand_t = np.r_[1.1, s[group_end]]
    cand_s = np.r_[null, total[group_end]]
    k = int(np.argmax(cand_s))
    return SweepResult(float(cand_t[k]), float(cand_s[k]), null, a_tp * n_windows)


def file_raw_score(f: NabFile, scores: np.ndarray, threshold: float, profile: str) -> float:
    """S for one file at a fixed threshold (detections are ``score >= threshold``)."""
    _, _, a_fn = PROFILES[profile]
    v, w = row_values(f.n, f.windows, profile)
    p = f.probation
    s, v, w = np.asarray(scores, float)[p:], v[p:], w[p:]
    hit = s >= threshold
    total = float(v[hit & (w < 0)].sum())
    for k in np.unique(w[w >= 0]):
        sel = hit & (w == k)
        total += float(v[sel].max()) if sel.any() else -a_fn
    return total


def score_corpus(files: list[NabFile], scores: list[np.ndarray]) -> dict[str, SweepResult]:
    """Score a detector's per-row outputs under all three profiles."""
    return {p: sweep(files, scores, p) for p in PROFILES}


def perfect_scores(files: list[NabFile]) -> list[np.ndarray]:
    """The perfect detector: 1 on the first row of every window, 0 elsewhere."""
    out = []
    for f in files:
        s = np.zeros(f.n)
        for left, _ in f.windows:
            s[left] = 1.0
        out.append(s)
    return out


def null_scores(files: list[NabFile]) -> list[np.ndarray]:
    """NAB's null detector: a constant 0.5."""
    return [np.full(f.n, 0.5) for f in files]
