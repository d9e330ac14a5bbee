"""Reading metric files for ingest: encoding detection and chunked CSV / JSONL readers.

Both readers yield the same thing, ``Chunk(frame, lines, raws)``: a DataFrame of raw cells
(strings for CSV, JSON values for JSONL), the physical line number of every row, and (for JSONL)
the original line text. Validation (``tools.store.ingest``) never needs to know the format.

Line numbers are physical lines of the file, header included, assuming one record per line
(a quoted CSV field that spans lines shifts the numbers after it).
"""

from __future__ import annotations

import codecs
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    import orjson

    _loads_strict: Callable[[bytes | str], Any] = orjson.loads
except ImportError:  # pragma: no cover
    _loads_strict = json.loads

OVERFLOW = "__overflow__"


class FileProblem(ValueError):
    """A whole file cannot be read (empty, binary, missing columns): one sentence for the user."""


@dataclass
class Chunk:
    frame: pd.DataFrame
    lines: np.ndarray
    raws: list[str] | None = None  # original text per row (JSONL); CSV rebuilds it from cells
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason) pandas dropped
    last: bool = False  # the chunk holding the file's last line


@dataclass
class Sniffed:
    encoding: str
    warning: str | None
    ends_with_newline: bool
    fmt: str  # "csv" | "jsonl"
    size: int


def sniff(path: Path) -> Sniffed:
    """Detect format, encoding and whether the last line is complete; raise FileProblem if unusable."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(65536)
        if size > 0:
            fh.seek(max(0, size - 4))
            tail = fh.read()
        else:
            tail = b""
    encoding, warning = _detect_encoding(path, head)
    text_head = head.decode(encoding, errors="replace").lstrip("\ufeff")
    if not text_head.strip():
        raise FileProblem(f"{path} is empty")
    if encoding.startswith("utf-16"):
        ends = tail.endswith(b"\n\x00") or tail.endswith(b"\x00\n")
    else:
        ends = tail.endswith(b"\n")
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        fmt = "jsonl"
    elif suffix in {".csv", ".txt", ".tsv"}:
        fmt = "csv"
    else:
        fmt = "jsonl" if text_head.lstrip().startswith("{") else "csv"
    return Sniffed(encoding, warning, ends, fmt, size)


def _detect_encoding(path: Path, head: bytes) -> tuple[str, str | None]:
    """UTF-8 (with or without BOM) silently; UTF-16 and Latin-1 decoded with a warning."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", None
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16", f"{path.name} is UTF-16 encoded; decoded it (UTF-8 is expected)"
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le", f"{path.name} is UTF-16 (little-endian, no BOM); decoded it (UTF-8 is expected)"
        if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be", f"{path.name} is UTF-16 (big-endian, no BOM); decoded it (UTF-8 is expected)"
        raise FileProblem(f"{path} is not a text file (it contains NUL bytes); expected CSV or JSONL")
    offset = _first_invalid_utf8(path)
    if offset is None:
        return "utf-8", None
    return "latin-1", (
        f"{path.name} is not valid UTF-8 (first bad byte at offset {offset}); read it as Latin-1"
    )


def _first_invalid_utf8(path: Path, block: int = 8 << 20) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, or None; streams, so big files are fine."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    with path.open("rb") as fh:
        while True:
            data = fh.read(block)
            final = not data
            try:
                decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                return done + exc.start
            if final:
                return None
            done += len(data)


# --------------------------------------------------------------------------- CSV


def read_header(path: Path, sniffed: Sniffed) -> list[str]:
    with path.open("r", encoding=sniffed.encoding, errors="replace", newline="") as fh:
        first = fh.readline().lstrip("\ufeff")
    import csv

    row = next(csv.reader([first]), [])
    return [c.strip().lower() for c in row]


def iter_csv(
    path: Path, sniffed: Sniffed, header: list[str], chunk_rows: int, on_progress: Callable[[int], None]
) -> Iterator[Chunk]:
    """Chunks of raw string cells; rows with one extra field land in ``__overflow__``."""
    names = [*header, OVERFLOW]
    fh = path.open("rb")
    try:
        reader = pd.read_csv(
            fh,
            header=None,
            skiprows=1,
            names=names,
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            on_bad_lines="warn",
            chunksize=chunk_rows,
            encoding=sniffed.encoding,
            encoding_errors="replace",
            engine="c",
        )
        next_line = 2
        pending: Chunk | None = None
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    frame = next(reader)
                except StopIteration:
                    break
                except pd.errors.ParserError as exc:
                    raise FileProblem(f"{path}: cannot parse the CSV after line {next_line - 1}: {_first_line(exc)}") from exc
            skipped = _skipped_lines(caught)
            lines = _line_numbers(next_line, len(frame), {ln for ln, _ in skipped})
            next_line = int(lines[-1]) + 1 if len(lines) else next_line + len(skipped)
            if skipped:
                next_line = max(next_line, max(ln for ln, _ in skipped) + 1)
            on_progress(fh.tell())
            chunk = Chunk(frame.reset_index(drop=True), lines, None, skipped)
            if pending is not None:
                yield pending
            pending = chunk
        if pending is not None:
            pending.last = True
            yield pending
    finally:
        fh.close()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _skipped_lines(caught: list[warnings.WarningMessage]) -> list[tuple[int, str]]:
    """Lines pandas skipped for having too many fields, from its ParserWarning text."""
    out: list[tuple[int, str]] = []
    for w in caught:
        for part in str(w.message).splitlines():
            part = part.strip()
            if part.startswith("Skipping line"):
                head, _, rest = part.partition(":")
                try:
                    out.append((int(head.split()[-1]), rest.strip()))
                except ValueError:
                    continue
    return out


def _line_numbers(first: int, n: int, skipped: set[int]) -> np.ndarray:
    """Line numbers for n rows starting at ``first``, jumping over lines pandas skipped."""
    if not skipped:
        return np.arange(first, first + n, dtype=np.int64)
    candidates = np.arange(first, first + n + len(skipped), dtype=np.int64)
    keep = ~np.isin(candidates, np.fromiter(skipped, dtype=np.int64))
    return candidates[keep][:n]


# --------------------------------------------------------------------------- JSONL


@dataclass
class JsonBadLine:
    line: int
    reason: str
    raw: str


def iter_jsonl(
    path: Path, sniffed: Sniffed, chunk_rows: int, on_progress: Callable[[int], None]
) -> Iterator[tuple[Chunk, list[JsonBadLine]]]:
    """Chunks of parsed records. Lines that are not JSON objects come back as JsonBadLine."""
    fh = path.open("r", encoding=sniffed.encoding, errors="replace", newline="")
    try:
        line_no = 0
        records: list[dict[str, Any]] = []
        lines: list[int] = []
        raws: list[str] = []
        bad: list[JsonBadLine] = []
        pending: tuple[Chunk, list[JsonBadLine]] | None = None
        for text in fh:
            line_no += 1
            body = text.rstrip("\r\n").lstrip("\ufeff") if line_no == 1 else text.rstrip("\r\n")
            if not body.strip():
                continue
            record, reason = _parse_json_line(body)
            if record is None:
                bad.append(JsonBadLine(line_no, reason, body))
            else:
                records.append({str(k).strip().lower(): v for k, v in record.items()})
                lines.append(line_no)
                raws.append(body)
            if len(records) >= chunk_rows:
                on_progress(_tell(fh))
                if pending is not None:
                    yield pending
                pending = (Chunk(pd.DataFrame.from_records(records), np.array(lines, dtype=np.int64), raws), bad)
                records, lines, raws, bad = [], [], [], []
        on_progress(sniffed.size)
        if pending is not None and (records or bad):
            yield pending
            pending = None
        if pending is None:
            frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
            pending = (Chunk(frame, np.array(lines, dtype=np.int64), raws), bad)
        pending[0].last = True
        yield pending
    finally:
        fh.close()


def _tell(fh) -> int:
    try:
        return fh.buffer.tell()
    except (AttributeError, OSError):
        return 0


def _parse_json_line(body: str) -> tuple[dict[str, Any] | None, str]:
    try:
        value = _loads_strict(body)
    except ValueError:
        try:  # the stdlib accepts NaN / Infinity, which validation then reports precisely
            value = json.loads(body)
        except ValueError as exc:
            return None, f"invalid JSON ({exc.args[0].split(':')[0] if exc.args else 'parse error'})"
        if isinstance(value, dict):
            # Keep NaN/Infinity as text so they are not mistaken for JSON null (a missing value).
            value = {k: (repr(v) if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")) else v)
                     for k, v in value.items()}
    if not isinstance(value, dict):
        return None, "line is JSON but not an object"
    return value, ""
