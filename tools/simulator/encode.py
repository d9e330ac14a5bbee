"""Fast text encoding of simulated rows: the ``extra_metrics`` JSON and timestamps.

Building 1.7 million small JSON objects with ``json.dumps`` takes minutes; this module does it
with numpy in a few seconds. Each metric value is quantised to its resolution and looked up in
a table of pre-rendered ``,"name":value`` fragments (one table per metric, cached across devices,
so each distinct value is formatted once). The fragments of a row are laid side by side in a
byte matrix with NUL bytes for absent metrics; dropping the NULs and cutting the flat buffer at
the row boundaries gives the JSON text of every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Beyond this many distinct quantised values a per-metric table is not worth caching.
_MAX_TABLE = 2_000_000


@dataclass
class FragmentCache:
    """Per-metric tables of rendered JSON fragments, keyed by (name, decimals, head)."""

    tables: dict[tuple[str, int, bool], tuple[int, np.ndarray]] = field(default_factory=dict)

    def fragments(self, name: str, codes: np.ndarray, decimals: int, head: bool) -> np.ndarray:
        """Return an (n, width) uint8 matrix with the fragment of each code."""
        lo, hi = int(codes.min()), int(codes.max())
        key = (name, decimals, head)
        entry = self.tables.get(key)
        if entry is not None:
            base, table = entry
            if lo >= base and hi < base + table.shape[0]:
                return table[codes - base]
            old_hi = base + table.shape[0] - 1
            # grow with margin so a slowly widening range is not re-rendered for every device
            margin = (hi - lo + 1) // 2
            lo = min(lo - (margin if lo < base else 0), base)
            hi = max(hi + (margin if hi > old_hi else 0), old_hi)
        if hi - lo + 1 > min(_MAX_TABLE, 4 * len(codes) + 1000):
            # sparse, wide-ranging values (counters): format only the distinct values present
            uniq, inv = np.unique(codes, return_inverse=True)
            return _render(name, uniq.tolist(), decimals, head)[inv]
        table = _render(name, range(lo, hi + 1), decimals, head)
        self.tables[key] = (lo, table)
        return table[codes - lo]


def _render(name: str, codes, decimals: int, head: bool) -> np.ndarray:
    pre = "" if head else ","
    if decimals > 0:
        scale = 10.0**decimals
        strs = [f'{pre}"{name}":{c / scale:.{decimals}f}' for c in codes]
    else:
        strs = [f'{pre}"{name}":{c}' for c in codes]
    table = np.array(strs, dtype="S")
    return table.view(np.uint8).reshape(len(strs), table.dtype.itemsize)


def encode_json_rows(
    columns: list[tuple[str, np.ndarray, int]], n: int, cache: FragmentCache
) -> list[str]:
    """JSON object text per row from ``(name, values, decimals)`` columns; NaN means absent.

    The first column must be present on every row (it carries no leading comma).
    """
    parts = [np.full((n, 1), ord("{"), np.uint8)]
    for i, (name, values, decimals) in enumerate(columns):
        present = ~np.isnan(values)
        if i == 0 and not present.all():
            raise ValueError(f"the first JSON column {name!r} must be present on every row")
        if not present.any():
            continue
        codes = np.zeros(n, dtype=np.int64)
        codes[present] = np.round(values[present] * 10.0**decimals).astype(np.int64)
        if not present.all():
            codes[~present] = codes[present][0]
        frag = cache.fragments(name, codes, decimals, head=(i == 0))
        if not present.all():
            frag[~present] = 0
        parts.append(frag)
    parts.append(np.full((n, 1), ord("}"), np.uint8))
    matrix = np.concatenate(parts, axis=1)
    keep = matrix != 0
    flat = matrix[keep]
    lengths = keep.sum(axis=1)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    text = flat.tobytes().decode("ascii")
    return [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def timestamp_strings(ts: np.ndarray, *, tz_suffix: str = "") -> np.ndarray:
    """Render datetime64 values as ``YYYY-MM-DD HH:MM:SS.ffffff`` (what the bulk writer stores).

    ``tz_suffix`` (e.g. ``"+00:00"``) marks the value as UTC for timezone-aware PostgreSQL columns.
    """
    text = np.datetime_as_string(ts.astype("datetime64[us]"), unit="us")
    out = np.strings.replace(text.astype(np.dtypes.StringDType()), "T", " ")
    if tz_suffix:
        out = np.strings.add(out, tz_suffix)
    return out.astype(object)
