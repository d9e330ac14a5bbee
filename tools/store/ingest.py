"""Validated, idempotent, fast import of metric files into ``device_metrics``.

``import_files(store, paths, now=...)`` reads CSV or JSONL in either shape:

* **wide** (HOMEPOT's own row): ``device_id, timestamp`` and any of the nine named metrics,
  ``extra_metrics`` (a JSON object, as text in CSV), ``provenance``, ``collection_interval_seconds``.
  Any other column is kept, not lost: its values go into ``extra_metrics`` under the column name
  (numbers as numbers, text as text), and the file gets a warning naming those columns.
* **long**: ``device_id, timestamp, metric, value``; rows are pivoted to one wide row per
  (device, timestamp) before they are written. Other columns are ignored with a warning.

``device_id`` may be the public id (``DEVICE-XXXX-XXXX-XXXX``) or the integer ``devices.id``.
Timestamps are ISO-8601 (an offset is converted to UTC; none means UTC) or Unix epoch seconds
or milliseconds.

Validation is row by row but vectorised per chunk. A row is rejected, with file, line and reason,
for: a missing or unknown device, a missing, unparseable or future timestamp (beyond ``now`` plus
``FUTURE_SKEW``), NaN, infinity or text in a numeric field, malformed ``extra_metrics``, too many
fields, a final line cut off mid-way, invalid JSON, or a row with no metric value at all. The
good rows are stored. Idempotence: a value already stored for the same device and timestamp
(and metric) is a duplicate and is skipped; a second row for the same key in one file is a
duplicate of the first. New values for an existing (device, timestamp) row are merged into it,
existing values always win. Whole-file problems (empty, binary, missing required columns) are
reported as the file's ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import text

from tools.store.bulk import insert_frame
from tools.store.engine import Store
from tools.store.ingest_read import (
    OVERFLOW,
    Chunk,
    FileProblem,
    iter_csv,
    iter_jsonl,
    read_header,
    sniff,
)
from tools.store.metrics_io import _bind_ts
from tools.store.schema import INTEGER_METRICS, NAMED_METRICS

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

FUTURE_SKEW = timedelta(minutes=5)
CHUNK_ROWS = 250_000
MAX_PROBLEMS = 100_000

REQUIRED = ("device_id", "timestamp")
LONG_REQUIRED = ("device_id", "timestamp", "metric", "value")
PASSTHROUGH = ("provenance", "collection_interval_seconds")
IGNORED = ("id",)
_NAMED = frozenset(NAMED_METRICS)
_NAN_TEXT = frozenset({"nan", "-nan", "+nan", "nan.0"})

#: Reason codes, as counted in the summary.
REASONS: dict[str, str] = {
    "truncated": "file ends mid-line",
    "too_many_fields": "too many fields",
    "invalid_json": "invalid JSON",
    "missing_device": "missing device_id",
    "unknown_device": "unknown device",
    "missing_timestamp": "missing timestamp",
    "bad_timestamp": "unparseable timestamp",
    "future_timestamp": "timestamp in the future",
    "nan": "NaN value",
    "infinite": "infinite value",
    "not_a_number": "text in a numeric field",
    "bad_extra_metrics": "extra_metrics is not a JSON object",
    "missing_metric": "missing metric name",
    "missing_value": "missing value",
    "no_values": "no metric values",
}


class RowProblem(BaseModel):
    """One rejected (or duplicate) row: where it is, why, and its text."""

    file: str
    line: int
    reason: str
    code: str
    raw: str = ""


class FileResult(BaseModel):
    file: str
    format: Literal["csv", "jsonl"] | None = None
    shape: Literal["wide", "long"] | None = None
    encoding: str | None = None
    rows_read: int = 0
    rows_stored: int = 0  # records whose data went in (new rows, or new values merged)
    values_stored: int = 0  # metric values written
    duplicates: int = 0  # records already stored, or repeated in the file
    rejected: dict[str, int] = Field(default_factory=dict)  # reason code -> rows
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())


class ImportReport(BaseModel):
    files: list[FileResult] = Field(default_factory=list)
    problems: list[RowProblem] = Field(default_factory=list)  # rejected rows (capped)
    duplicate_rows: list[RowProblem] = Field(default_factory=list)  # in-file repeats (capped)
    problems_not_listed: int = 0
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_stored(self) -> int:
        return sum(f.rows_stored for f in self.files)

    @property
    def values_stored(self) -> int:
        return sum(f.values_stored for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def rejected(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.rejected)
        return dict(total)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def failed_files(self) -> list[FileResult]:
        return [f for f in self.files if f.error]

    @property
    def ok(self) -> bool:
        """True when nothing was rejected and every file could be read: the CLI's exit code 0."""
        return self.n_rejected == 0 and not self.failed_files

    def summary_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_read": self.rows_read,
            "rows_stored": self.rows_stored,
            "values_stored": self.values_stored,
            "duplicates_skipped": self.duplicates,
            "rejected": self.n_rejected,
            "rejected_by_reason": self.rejected,
            "seconds": round(self.seconds, 3),
            "values_per_second": round(self.values_stored / self.seconds) if self.seconds > 0 else None,
            "files": [f.model_dump() | {"rejected_total": f.n_rejected} for f in self.files],
            "problems": [p.model_dump() for p in self.problems],
            "problems_not_listed": self.problems_not_listed,
        }


# --------------------------------------------------------------------------- entry point


def import_files(
    store: Store,
    paths: Sequence[str | Path],
    *,
    now: datetime,
    progress: bool = False,
    provenance: str = "real",
    chunk_rows: int = CHUNK_ROWS,
    max_problems: int = MAX_PROBLEMS,
) -> ImportReport:
    """Import every file in ``paths``; never raises for bad input, reports it instead."""
    started = time.perf_counter()
    report = ImportReport()
    devices = _DeviceMap.load(store)
    for path in paths:
        job = _FileImport(store, Path(path), devices, now, provenance, chunk_rows, report, max_problems)
        job.run(progress)
        report.files.append(job.result)
    report.seconds = time.perf_counter() - started
    return report


class _DeviceMap:
    """Public id and integer id -> devices.id, loaded once per run."""

    def __init__(self, by_public: dict[str, int], ids: set[int]):
        self.by_public = by_public
        self.ids = ids

    @classmethod
    def load(cls, store: Store) -> "_DeviceMap":
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, device_id FROM devices")).fetchall()
        return cls({str(pub): int(i) for i, pub in rows}, {int(i) for i, _ in rows})

    def resolve(self, raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(devices.id or -1, missing mask, unknown mask) for a column of raw cells."""
        ids = raw.map(self.by_public)
        miss = ids.isna().to_numpy()
        if miss.any():  # integer ids, padded public ids, empty cells: the slow path, only for these
            rest = raw[miss]
            as_text = rest.where(rest.notna(), "").astype(str).str.strip()
            again = as_text.map(self.by_public)
            numeric = pd.to_numeric(as_text.where(again.isna()), errors="coerce")
            whole = numeric.where(numeric.notna() & (numeric % 1 == 0))
            known = whole.isin(list(self.ids)) if self.ids else pd.Series(False, index=rest.index)
            ids.loc[rest.index] = again.where(again.notna(), whole.where(known))
            missing = np.zeros(len(raw), dtype=bool)
            missing[miss] = (as_text == "").to_numpy()
        else:
            missing = np.zeros(len(raw), dtype=bool)
        resolved = ids.fillna(-1).to_numpy(dtype=np.int64)
        unknown = (resolved < 0) & ~missing
        return resolved, missing, unknown


class _FileImport:
    def __init__(self, store, path, devices, now, provenance, chunk_rows, report, max_problems):
        self.store: Store = store
        self.path: Path = path
        self.devices: _DeviceMap = devices
        self.now = pd.Timestamp(now).tz_localize(None) if pd.Timestamp(now).tzinfo is None else pd.Timestamp(now).tz_convert("UTC").tz_localize(None)
        self.provenance = provenance
        self.chunk_rows = chunk_rows
        self.report: ImportReport = report
        self.max_problems = max_problems
        self.result = FileResult(file=str(path))
        self.rejected: Counter[str] = Counter()
        self._seen_keys: np.ndarray | None = None  # in-file wide keys so far (sorted)
        self._seen_lines: np.ndarray | None = None
        self.long_parts: list[pd.DataFrame] = []
        self.extra_cols: list[str] = []
        self.header: list[str] = []

    # -- driver ----------------------------------------------------------------

    def run(self, progress: bool) -> None:
        t0 = time.perf_counter()
        try:
            self._run(progress)
        except FileProblem as exc:
            self.result.error = str(exc)
        except (OSError, UnicodeError) as exc:
            self.result.error = f"cannot read {self.path}: {exc}"
        self.result.rejected = dict(self.rejected)
        self.result.seconds = time.perf_counter() - t0

    def _run(self, progress: bool) -> None:
        if not self.path.exists():
            raise FileProblem(f"{self.path} does not exist")
        if self.path.is_dir():
            raise FileProblem(f"{self.path} is a directory, not a file")
        sniffed = sniff(self.path)
        self.sniffed = sniffed
        self.result.format = sniffed.fmt  # type: ignore[assignment]
        self.result.encoding = sniffed.encoding
        if sniffed.warning:
            self.result.warnings.append(sniffed.warning)
        bar = _progress_bar(self.path, sniffed.size, progress)
        last_pos = [0]

        def advance(pos: int) -> None:
            if bar is not None and pos > last_pos[0]:
                bar.update(pos - last_pos[0])
                last_pos[0] = pos

        try:
            if sniffed.fmt == "csv":
                self.header = read_header(self.path, sniffed)
                self._check_columns(self.header)
                for chunk in iter_csv(self.path, sniffed, self.header, self.chunk_rows, advance):
                    self.result.rows_read += len(chunk.skipped)
                    for line, why in chunk.skipped:
                        saw = why.rsplit(" ", 1)[-1]
                        why = f"too many fields: expected {len(self.header)}, saw {int(saw) if saw.isdigit() else saw}"
                        self._problem_rows(np.array([line]), "too_many_fields", [why], [""])
                    self._process(chunk)
            else:
                checked = False
                for chunk, bad in iter_jsonl(self.path, sniffed, self.chunk_rows, advance):
                    last_line = None
                    if chunk.last and not sniffed.ends_with_newline:
                        candidates = [b.line for b in bad] + ([int(chunk.lines.max())] if len(chunk.lines) else [])
                        last_line = max(candidates) if candidates else None
                    for b in bad:
                        code = "truncated" if b.line == last_line else "invalid_json"
                        reason = "file ends mid-line (truncated)" if code == "truncated" else b.reason
                        self._problem_rows(np.array([b.line]), code, [reason], [b.raw])
                    if chunk.frame.empty:
                        continue
                    if not checked:
                        self.header = [str(c) for c in chunk.frame.columns]
                        self._check_columns(self.header)
                        checked = True
                    self._process(chunk)
                if not checked and self.result.rows_read == 0 and not self.rejected:
                    raise FileProblem(f"{self.path} has no records")
            if self.result.shape == "long":
                self._flush_long()
        finally:
            if bar is not None:
                bar.close()
        if self.result.rows_read == 0 and not self.result.error and sniffed.fmt == "csv":
            self.result.warnings.append(f"{self.path.name} has a header but no data rows")

    def _check_columns(self, columns: list[str]) -> None:
        cols = set(columns)
        if {"metric", "value"} <= cols:
            self.result.shape = "long"
            missing = [c for c in LONG_REQUIRED if c not in cols]
            others = [c for c in columns if c not in LONG_REQUIRED and c != OVERFLOW]
            if others:
                self.result.warnings.append(
                    f"{self.path.name}: long-shape file has extra columns {', '.join(others)}; they were ignored"
                )
        else:
            self.result.shape = "wide"
            missing = [c for c in REQUIRED if c not in cols]
            metric_cols = [c for c in columns if c not in (*REQUIRED, *PASSTHROUGH, *IGNORED, OVERFLOW)]
            if not missing and not metric_cols:
                raise FileProblem(
                    f"{self.path} has no metric columns; expected any of {', '.join(NAMED_METRICS)}, "
                    "extra_metrics, or the long shape device_id,timestamp,metric,value"
                )
            self.extra_cols = [c for c in metric_cols if c not in _NAMED and c != "extra_metrics"]
            if self.extra_cols:
                self.result.warnings.append(
                    f"{self.path.name}: columns {', '.join(self.extra_cols)} are not HOMEPOT device_metrics "
                    "columns; their values were stored in extra_metrics under those names"
                )
            if "id" in cols:
                self.result.warnings.append(f"{self.path.name}: column id was ignored (the store assigns ids)")
        if missing:
            raise FileProblem(
                f"{self.path} lacks required column(s) {', '.join(missing)}; the header must name "
                "device_id, timestamp and metric columns (wide) or device_id, timestamp, metric, value (long)"
            )

    # -- problems ----------------------------------------------------------------

    def _problem_rows(self, lines: np.ndarray, code: str, reasons: Sequence[str], raws: Sequence[str]) -> None:
        self.rejected[code] += len(lines)
        self._list(self.report.problems, lines, code, reasons, raws)

    def _list(self, target: list[RowProblem], lines, code, reasons, raws) -> None:
        room = self.max_problems - len(target)
        n = len(lines)
        if room < n:
            self.report.problems_not_listed += n - max(room, 0)
        for i in range(min(n, max(room, 0))):
            target.append(
                RowProblem.model_construct(
                    file=str(self.path), line=int(lines[i]), reason=str(reasons[i]), code=code, raw=str(raws[i])
                )
            )

    def _raw_text(self, chunk: Chunk, idx: np.ndarray) -> list[str]:
        if chunk.raws is not None:
            return [chunk.raws[i] for i in idx]
        out = []
        frame = chunk.frame
        cols = [c for c in frame.columns]
        for i in idx[: self.max_problems]:
            cells = ["" if (v is None or (isinstance(v, float) and v != v)) else str(v) for v in frame.iloc[int(i)][cols].tolist()]
            while cells and cells[-1] == "":
                cells.pop()
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(cells)
            out.append(buf.getvalue())
        return out + [""] * (len(idx) - len(out))

    # -- validation ----------------------------------------------------------------

    def _process(self, chunk: Chunk) -> None:
        frame = chunk.frame
        n = len(frame)
        if n == 0:
            return
        # Blank lines are not records (checked only where the device cell is empty: cheap).
        blank = frame["device_id"].isna().to_numpy()
        if blank.any():
            blank[blank] = frame.loc[blank].isna().all(axis=1).to_numpy()
        code = np.full(n, None, dtype=object)
        reason = np.full(n, None, dtype=object)

        def flag(mask: np.ndarray, c: str, why: Any) -> None:
            mask = np.asarray(mask, dtype=bool) & (code == None) & ~blank  # noqa: E711
            if not mask.any():
                return
            code[mask] = c
            if isinstance(why, str):
                reason[mask] = why
            elif callable(why):  # messages built only for the flagged rows
                idx = np.flatnonzero(mask)
                reason[idx] = np.asarray(list(why(idx)), dtype=object)
            else:
                reason[mask] = np.asarray(why, dtype=object)[mask]

        if chunk.last and self.sniffed.fmt == "csv" and not self.sniffed.ends_with_newline:
            self._flag_truncated(frame, blank, flag)
        if OVERFLOW in frame.columns:
            flag(frame[OVERFLOW].notna().to_numpy(), "too_many_fields",
                 f"too many fields: expected {len(self.header)}")

        dev, missing_dev, unknown_dev = self.devices.resolve(frame["device_id"])
        flag(missing_dev, "missing_device", "missing device_id")
        dev_raw = frame["device_id"].to_numpy(dtype=object)
        flag(unknown_dev, "unknown_device", lambda idx: [f"unknown device {str(dev_raw[i]).strip()!r}" for i in idx])

        ts, missing_ts, bad_ts = _parse_timestamps(frame["timestamp"])
        flag(missing_ts, "missing_timestamp", "missing timestamp")
        ts_raw = frame["timestamp"].to_numpy(dtype=object)
        flag(bad_ts, "bad_timestamp", lambda idx: [f"unparseable timestamp {str(ts_raw[i]).strip()!r}" for i in idx])
        ts_arr = ts.to_numpy()
        future = ts_arr > np.datetime64(self.now + FUTURE_SKEW)
        flag(future, "future_timestamp", lambda idx: [
            f"timestamp {pd.Timestamp(ts_arr[i]):%Y-%m-%d %H:%M:%S} is in the future "
            f"(now is {self.now:%Y-%m-%d %H:%M:%S} UTC)" for i in idx])

        if self.result.shape == "long":
            values = self._validate_long(frame, flag)
        else:
            values = self._validate_wide(frame, flag, blank)

        bad_idx = np.flatnonzero(code != None)  # noqa: E711
        self.result.rows_read += int(n - blank.sum())
        if len(bad_idx):
            raws = self._raw_text(chunk, bad_idx)
            for c in pd.unique(code[bad_idx]):
                sel = code[bad_idx] == c
                self._problem_rows(chunk.lines[bad_idx[sel]], str(c), reason[bad_idx[sel]].tolist(),
                                   [r for r, s in zip(raws, sel) if s])
        good = (code == None) & ~blank  # noqa: E711
        if not good.any():
            return
        if self.result.shape == "long":
            metric, value = values
            self.long_parts.append(
                pd.DataFrame(
                    {
                        "device_id": dev[good],
                        "timestamp": ts.to_numpy()[good],
                        "metric": metric[good],
                        "value": value[good],
                        "line": chunk.lines[good],
                    }
                )
            )
        else:
            wide = values.loc[good].copy()
            wide.insert(0, "timestamp", ts.to_numpy()[good])
            wide.insert(0, "device_id", dev[good])
            wide["line"] = chunk.lines[good]
            self._store_wide(self._dedupe(wide, ["device_id", "timestamp"]), unit="row")

    def _flag_truncated(self, frame: pd.DataFrame, blank: np.ndarray, flag) -> None:
        """A last line without newline and with fewer fields than the header was cut off."""
        with self.path.open("rb") as fh:
            fh.seek(max(0, self.sniffed.size - 65536))
            tail = fh.read().decode(self.sniffed.encoding if not self.sniffed.encoding.startswith("utf-16") else "utf-16-le", errors="replace")
        last_line = tail.rsplit("\n", 1)[-1]
        fields = next(csv.reader([last_line]), [])
        if len(fields) < len(self.header):
            mask = np.zeros(len(frame), dtype=bool)
            nonblank = np.flatnonzero(~blank)
            if len(nonblank):
                mask[nonblank[-1]] = True
            flag(mask, "truncated", f"file ends mid-line (truncated): {len(fields)} of {len(self.header)} fields")

    def _validate_wide(self, frame: pd.DataFrame, flag, blank: np.ndarray) -> pd.DataFrame:
        out: dict[str, Any] = {}
        has_value = np.zeros(len(frame), dtype=bool)
        for name in [c for c in frame.columns if c in _NAMED]:
            values = _numeric(frame[name], name, flag)
            out[name] = values
            has_value |= ~np.isnan(values)
        extras: list[dict[str, Any] | None] = [None] * len(frame)
        if "extra_metrics" in frame.columns:
            extras = self._parse_extra_json(frame["extra_metrics"], flag)
            has_value |= np.array([bool(e) for e in extras])
        if self.extra_cols:
            extras = self._merge_extra_columns(frame, extras, flag)
            has_value |= np.array([bool(e) for e in extras])
        out["extra_metrics"] = extras
        if "collection_interval_seconds" in frame.columns:
            out["collection_interval_seconds"] = _numeric(frame["collection_interval_seconds"], "collection_interval_seconds", flag)
        if "provenance" in frame.columns:
            prov = frame["provenance"].where(frame["provenance"].notna(), self.provenance).astype(str).str.strip()
            out["provenance"] = prov.where(prov != "", self.provenance).to_numpy()
        flag(~has_value, "no_values", "row has no metric values")
        return pd.DataFrame(out, index=frame.index)

    def _parse_extra_json(self, col: pd.Series, flag) -> list[dict[str, Any] | None]:
        parsed: list[dict[str, Any] | None] = []
        bad = np.zeros(len(col), dtype=bool)
        why = np.full(len(col), "", dtype=object)
        for i, raw in enumerate(col.tolist()):
            if raw is None or (isinstance(raw, float) and raw != raw) or raw == "":
                parsed.append(None)
                continue
            value = raw
            if isinstance(raw, str):
                try:
                    value = _loads(raw)
                except ValueError:
                    try:
                        value = json.loads(raw)
                    except ValueError:
                        bad[i], why[i] = True, "extra_metrics is not valid JSON"
                        parsed.append(None)
                        continue
            if not isinstance(value, dict):
                bad[i], why[i] = True, "extra_metrics is not a JSON object"
                parsed.append(None)
                continue
            nonfinite = [k for k, v in value.items() if isinstance(v, float) and not np.isfinite(v)]
            if nonfinite:
                bad[i], why[i] = True, f"NaN or infinite value in extra_metrics key {nonfinite[0]!r}"
            parsed.append({str(k): v for k, v in value.items() if v is not None})
        flag(bad, "bad_extra_metrics", why)
        return parsed

    def _merge_extra_columns(self, frame: pd.DataFrame, extras: list, flag) -> list[dict[str, Any] | None]:
        """Unknown wide columns go into extra_metrics: numbers as numbers, other text as text."""
        columns = {}
        for name in self.extra_cols:
            raw = frame[name]
            num = pd.to_numeric(raw, errors="coerce")
            text_vals = _as_text(raw)
            nan_text = text_vals.str.lower().isin(_NAN_TEXT).to_numpy()
            flag(nan_text, "nan", f"NaN value in {name}")
            inf = np.isinf(num.to_numpy(dtype=float, na_value=np.nan))
            flag(inf, "infinite", f"infinite value in {name}")
            columns[name] = [
                float(v) if v == v else (t if t else None)
                for v, t in zip(num.to_numpy(dtype=float, na_value=np.nan).tolist(), text_vals.tolist())
            ]
        out = []
        for i, base in enumerate(extras):
            merged = dict(base) if base else {}
            for name, vals in columns.items():
                if vals[i] is not None and name not in merged:
                    merged[name] = vals[i]
            out.append(merged or None)
        return out

    def _validate_long(self, frame: pd.DataFrame, flag) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(frame["metric"])  # a handful of names: strip those, not every cell
        names = np.array([str(u).strip() for u in uniques] + [""], dtype=object)
        metric = names[codes]  # code -1 (missing) picks the trailing ""
        flag(metric == "", "missing_metric", "missing metric name")
        values = _numeric(frame["value"], "value", flag)
        flag(np.isnan(values), "missing_value", "missing value")
        return metric, values

    # -- dedupe and write ----------------------------------------------------------

    def _dedupe(self, frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
        """Drop in-file repeats of a key (first wins); report each as a duplicate of its first line.

        Vectorised within the frame; wide files also check earlier chunks through a sorted array
        of int64 keys (device id and millisecond timestamp), so memory stays at 16 bytes a row.
        """
        if frame.empty:
            return frame
        dup = frame.duplicated(subset=key, keep="first").to_numpy()
        first_line = None
        if dup.any():
            first_line = frame.groupby(key, sort=False)["line"].transform("first").to_numpy()
        if "metric" not in key:
            k64 = (frame["device_id"].to_numpy(dtype=np.int64) * 10**13
                   + frame["timestamp"].to_numpy().astype("datetime64[ms]").astype(np.int64))
            if self._seen_keys is not None and len(self._seen_keys):
                pos = np.searchsorted(self._seen_keys, k64)
                pos_c = np.minimum(pos, len(self._seen_keys) - 1)
                earlier = (self._seen_keys[pos_c] == k64) & ~dup
                if earlier.any():
                    if first_line is None:
                        first_line = frame["line"].to_numpy().copy()
                    first_line = first_line.copy()
                    first_line[earlier] = self._seen_lines[pos_c[earlier]]
                    dup |= earlier
            fresh = ~dup
            keys = np.concatenate([self._seen_keys, k64[fresh]]) if self._seen_keys is not None else k64[fresh]
            lines = np.concatenate([self._seen_lines, frame["line"].to_numpy()[fresh]]) if self._seen_lines is not None else frame["line"].to_numpy()[fresh]
            order = np.argsort(keys, kind="stable")
            self._seen_keys, self._seen_lines = keys[order], lines[order]
        if dup.any():
            dup_lines = frame["line"].to_numpy()[dup]
            what = "same device, timestamp, metric" if "metric" in key else "same device and timestamp"
            reasons = [f"duplicate of line {int(f)} ({what})" for f in first_line[dup]]
            self.result.duplicates += int(dup.sum())
            self._list(self.report.duplicate_rows, dup_lines, "duplicate", reasons, [""] * len(dup_lines))
        return frame.loc[~dup]

    def _flush_long(self) -> None:
        """Pivot the file's long rows to wide rows (one per device and timestamp) and store them."""
        if not self.long_parts:
            return
        long = pd.concat(self.long_parts, ignore_index=True)
        self.long_parts = []
        long = self._dedupe(long, ["device_id", "timestamp", "metric"])
        if long.empty:
            return
        long = long.sort_values(["device_id", "timestamp"], kind="stable")
        named = long[long["metric"].isin(_NAMED)]
        wide = named.pivot(index=["device_id", "timestamp"], columns="metric", values="value")
        other = long[~long["metric"].isin(_NAMED)]
        keys = long[["device_id", "timestamp"]].drop_duplicates()
        base = pd.MultiIndex.from_frame(keys)
        wide = wide.reindex(base)
        if not other.empty:
            grouped: dict[tuple, dict[str, float]] = {}
            for d, t, m, v in zip(other["device_id"].tolist(), other["timestamp"].tolist(),
                                  other["metric"].tolist(), other["value"].tolist()):
                grouped.setdefault((d, t), {})[m] = v
            wide["extra_metrics"] = [grouped.get(k) for k in wide.index.tolist()]
        else:
            wide["extra_metrics"] = None
        wide = wide.reset_index()
        wide["provenance"] = self.provenance
        self._store_wide(wide, unit="value")

    def _store_wide(self, wide: pd.DataFrame, *, unit: Literal["row", "value"]) -> None:
        """Insert new (device, timestamp) rows; merge new values into existing ones; count the rest."""
        wide = wide.drop(columns=["line"], errors="ignore")
        if wide.empty:
            return
        if "provenance" not in wide.columns:
            wide["provenance"] = self.provenance
        metric_cols = [c for c in NAMED_METRICS if c in wide.columns]
        existing = _existing_rows(self.store, wide, metric_cols)
        keys = pd.MultiIndex.from_arrays([wide["device_id"].to_numpy(), wide["timestamp"].to_numpy()])
        pos = existing.index.get_indexer(keys) if len(existing) else np.full(len(wide), -1)
        is_new = pos < 0
        new_rows = wide.loc[is_new]
        counts = _value_counts(new_rows, metric_cols)
        if not new_rows.empty:
            for c in INTEGER_METRICS & set(metric_cols):
                new_rows[c] = new_rows[c].round()
            insert_frame(self.store, "device_metrics", new_rows, conflict=("device_id", "timestamp"),
                         json_cols=("extra_metrics",), expect_new=True)
        stored_values = int(counts.sum())
        stored_records = int(len(new_rows)) if unit == "row" else stored_values
        dup_records = 0
        if (~is_new).any():
            merged_values, merged_rows, dup_values, dup_rows = self._merge_existing(
                wide.loc[~is_new], existing.iloc[pos[~is_new]], metric_cols
            )
            stored_values += merged_values
            stored_records += merged_rows if unit == "row" else merged_values
            dup_records += dup_rows if unit == "row" else dup_values
        self.result.values_stored += stored_values
        self.result.rows_stored += stored_records
        self.result.duplicates += dup_records

    def _merge_existing(self, incoming: pd.DataFrame, existing: pd.DataFrame, metric_cols: list[str]):
        """Fill the gaps of already-stored rows with incoming values; stored values always win."""
        updates: list[dict[str, Any]] = []
        merged_values = dup_values = merged_rows = dup_rows = 0
        inc_extras = incoming["extra_metrics"].tolist() if "extra_metrics" in incoming.columns else [None] * len(incoming)
        ex_extras = existing["extra_metrics"].tolist()
        inc_vals = incoming[metric_cols].to_numpy(dtype=float) if metric_cols else np.zeros((len(incoming), 0))
        ex_vals = existing[metric_cols].to_numpy(dtype=float) if metric_cols else np.zeros((len(incoming), 0))
        ids = existing["id"].tolist()
        for i in range(len(incoming)):
            sets: dict[str, Any] = {}
            dup = 0
            for j, c in enumerate(metric_cols):
                v = inc_vals[i, j]
                if v != v:
                    continue
                if ex_vals[i, j] != ex_vals[i, j]:
                    sets[c] = int(round(v)) if c in INTEGER_METRICS else float(v)
                else:
                    dup += 1
            new_extra = inc_extras[i] or {}
            old_extra = _as_dict(ex_extras[i])
            added = {k: v for k, v in new_extra.items() if k not in old_extra}
            dup += len(new_extra) - len(added)
            if added:
                sets["extra_metrics"] = json.dumps({**old_extra, **added}, default=float)
            dup_values += dup
            if sets:
                merged_values += len(sets) - (1 if "extra_metrics" in sets else 0) + len(added)
                merged_rows += 1
                sets["__id"] = ids[i]
                updates.append(sets)
            else:
                dup_rows += 1
        if updates:
            with self.store.engine.begin() as conn:
                for cols, group in _group_by_columns(updates).items():
                    assign = ", ".join(
                        (f'"{c}" = :{c}' if c == "extra_metrics" else f'"{c}" = COALESCE("{c}", :{c})') for c in cols
                    )
                    conn.execute(text(f"UPDATE device_metrics SET {assign} WHERE id = :__id"), group)
        return merged_values, merged_rows, dup_values, dup_rows


# --------------------------------------------------------------------------- helpers


def _progress_bar(path: Path, size: int, enabled: bool):
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=size, unit="B", unit_scale=True, desc=path.name, file=sys.stderr, leave=False)


def _as_text(col: pd.Series) -> pd.Series:
    """Cells as stripped text; missing cells as ''."""
    return col.where(col.notna(), "").astype(str).str.strip()


def _numeric(raw: pd.Series, name: str, flag) -> np.ndarray:
    """Parse a numeric column; flag NaN, infinity and text. Empty cells are simply missing."""
    if raw.dtype.kind in "fi":
        values = raw.to_numpy(dtype=float)
        flag(np.isinf(values), "infinite", f"infinite value in {name}")
        return np.where(np.isinf(values), np.nan, values)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    nan_vals = np.isnan(values)
    if nan_vals.any():
        text_vals = _as_text(raw)
        nonempty = (text_vals != "").to_numpy()
        lower = text_vals.str.lower()
        is_nan_text = lower.isin(_NAN_TEXT).to_numpy() | raw.map(lambda v: isinstance(v, float) and v != v and v is not None).to_numpy() & nonempty
        flag(nan_vals & is_nan_text & nonempty, "nan", f"NaN value in {name}")
        flag(nan_vals & nonempty & ~is_nan_text, "not_a_number",
             "text " + text_vals.map(lambda s: repr(s[:40])) + f" in numeric field {name}")
    inf = np.isinf(values)
    flag(inf, "infinite", f"infinite value in {name}")
    values[inf] = np.nan
    return values


def _parse_timestamps(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """(naive UTC timestamps, missing mask, unparseable mask). ISO-8601, or epoch s / ms.

    ISO-8601 is tried on the whole column first (the common case, one C pass); only the cells
    it cannot read are stripped and tried as epoch numbers.
    """
    present = raw.notna().to_numpy()
    if raw.dtype == object:
        is_text = present.copy()
        is_text[present] = [isinstance(v, str) for v in raw.to_numpy()[present]]
    else:
        is_text = np.zeros(len(raw), dtype=bool)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if is_text.any():
        parsed = pd.to_datetime(raw[is_text], utc=True, format="ISO8601", errors="coerce")
        out[is_text] = parsed.dt.tz_localize(None).to_numpy()
    retry = present & out.isna().to_numpy()
    missing = ~present
    if retry.any():
        rest = raw[retry].astype(str).str.strip()
        missing[retry] = (rest == "").to_numpy()
        iso = pd.to_datetime(rest.where(rest != ""), utc=True, format="ISO8601", errors="coerce")
        nums = pd.to_numeric(rest.where(iso.isna() & (rest != "")), errors="coerce")
        secs = nums.where(nums.abs() <= 1e11, nums / 1000.0)
        stamps = pd.to_datetime(secs.where(secs.abs() < 4e9), unit="s", errors="coerce")
        filled = iso.dt.tz_localize(None).where(iso.notna(), stamps)
        out[retry] = filled.to_numpy()
    bad = out.isna().to_numpy() & ~missing
    return out, missing, bad


def _value_counts(frame: pd.DataFrame, metric_cols: list[str]) -> np.ndarray:
    """Metric values per row: named non-null cells plus extra_metrics keys."""
    n = np.zeros(len(frame), dtype=np.int64)
    if metric_cols:
        n += frame[metric_cols].notna().sum(axis=1).to_numpy()
    if "extra_metrics" in frame.columns:
        n += np.fromiter((len(e) if isinstance(e, dict) else 0 for e in frame["extra_metrics"].tolist()),
                         dtype=np.int64, count=len(frame))
    return n


def _existing_rows(store: Store, wide: pd.DataFrame, metric_cols: list[str]) -> pd.DataFrame:
    """Stored rows that share a (device, timestamp) key with ``wide``, indexed by that key.

    One range query per chunk (devices x [min, max] time), served by the unique index.
    """
    ids = sorted({int(i) for i in wide["device_id"].tolist()})
    tmin, tmax = wide["timestamp"].min(), wide["timestamp"].max()
    cols = ", ".join(f'"{c}"' for c in ["id", "device_id", "timestamp", *metric_cols, "extra_metrics"])
    sql = (
        f"SELECT {cols} FROM device_metrics WHERE device_id IN ({', '.join(str(i) for i in ids)}) "
        "AND timestamp >= :a AND timestamp <= :b"
    )
    b = pd.Timestamp(tmax) + pd.Timedelta(microseconds=1) if store.is_sqlite else tmax
    with store.engine.connect() as conn:
        rows = conn.execute(text(sql), {"a": _bind_ts(store, tmin), "b": _bind_ts(store, b)}).fetchall()
    names = ["id", "device_id", "timestamp", *metric_cols, "extra_metrics"]
    frame = pd.DataFrame(rows, columns=names)
    if frame.empty:
        return frame.set_index(pd.MultiIndex.from_arrays([[], []]))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True).dt.tz_localize(None).astype("datetime64[ns]")
    for c in metric_cols:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    index = pd.MultiIndex.from_arrays([frame["device_id"].astype(np.int64).to_numpy(), frame["timestamp"].to_numpy()])
    return frame.set_index(index)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = _loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _group_by_columns(updates: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for u in updates:
        cols = tuple(sorted(k for k in u if k != "__id"))
        groups.setdefault(cols, []).append(u)
    return groups


def write_errors_csv(report: ImportReport, path: str | Path) -> int:
    """Write the rejected rows (file, line, reason, raw) as CSV; returns the rows written."""
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "line", "code", "reason", "raw"])
        for p in report.problems:
            writer.writerow([p.file, p.line, p.code, p.reason, p.raw])
    return len(report.problems)


