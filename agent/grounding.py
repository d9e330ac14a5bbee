"""Grounded answers: every figure in an answer must come from a tool result of the same turn.

An LLM that "remembers" a number, or rounds 0.1234 into "12 %", or simply invents "42 devices",
is the failure that makes an operations assistant dangerous. ``check_answer`` pulls the figures
out of the answer (skipping dates, times, ids, version-like tokens and quoted example questions),
and matches each against the numbers of the turn's tool results and the user's own question,
tolerating rounding to the shown precision, percentages written for ratios (and back) and
thousands separators. A figure with no match is repaired when exactly one tool figure is close
(within 5 %), otherwise flagged inline as ``⚠ unverified``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# A number with optional sign, thousands separators and decimals, optionally a percent sign.
_NUM = re.compile(r"(?<![\w.\-/:])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)(\s?%)?(?![\w/:-]|\.\d)")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
_ID = re.compile(r"\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+\b|\b[\w]+[-_][\w-]*\d[\w-]*\b")
_QUOTED = re.compile(r"\"[^\"\n]{3,200}\"|“[^”\n]{3,200}”|'[^'\n]{8,200}'")
_FLAG = re.compile(r"\s*\(⚠ unverified\)|⚠ unverified: [^\n;)]*")
#: Ordinals and small counting words are fine ("top 5", "the last 7 days" come from the question).
_TRIVIAL = {0.0, 1.0}


@dataclass
class GroundingReport:
    """What the check found: figures matched, repaired (old -> new) and flagged."""

    answer: str
    checked: list[str] = field(default_factory=list)
    repaired: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)

    @property
    def grounded(self) -> bool:
        return not self.flagged


def _mask(text: str) -> str:
    """Blank out spans whose digits are not figures (dates, times, ids, quoted examples)."""
    for pattern in (_QUOTED, _DATE, _TIME, _ID):
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _to_float(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def numbers_in(value: Any) -> set[float]:
    """Every number in a tool result (JSON text, dict, list or scalar), dates and ids excluded."""
    out: set[float] = set()
    if isinstance(value, bool) or value is None:
        return out
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            out.add(float(value))
        return out
    if isinstance(value, dict):
        for v in value.values():
            out |= numbers_in(v)
        return out
    if isinstance(value, (list, tuple)):
        for v in value:
            out |= numbers_in(v)
        return out
    text = str(value)
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            return numbers_in(json.loads(stripped))
        except ValueError:
            pass
    masked = _DATE.sub(" ", text)
    masked = _TIME.sub(" ", masked)
    for m in _NUM.finditer(masked):
        f = _to_float(m.group(1))
        if f is not None:
            out.add(f)
    return out


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def _matches(shown: float, decimals: int, percent: bool, source: float) -> bool:
    tol = 0.5 * 10 ** (-decimals) + 1e-9
    candidates = [source, abs(source)]
    if percent or abs(source) <= 1.0:
        candidates.append(source * 100.0)  # a ratio shown as a percentage
    if percent:
        candidates.append(source / 100.0)
    if abs(source) >= 1000:  # "1.2k"-style or rounding of large counts
        tol = max(tol, abs(source) * 0.005)
    return any(abs(shown - c) <= tol for c in candidates)


def figures_in_answer(answer: str) -> list[tuple[re.Match[str], float]]:
    """The figures a reader would take as facts, with their match objects in the answer."""
    masked = _mask(_FLAG.sub(lambda m: " " * len(m.group(0)), answer))
    out = []
    for m in _NUM.finditer(masked):
        f = _to_float(m.group(1))
        if f is not None:
            out.append((m, f))
    return out


def check_answer(answer: str, sources: Iterable[float], *, allowed: Iterable[float] = ()) -> GroundingReport:
    """Check, repair or flag each figure of ``answer`` against the tool figures ``sources``.

    ``allowed`` are figures that need no tool (numbers from the user's question, the call limit).
    """
    pool = sorted(set(sources))
    free = set(allowed) | _TRIVIAL
    report = GroundingReport(answer=answer)
    pieces: list[str] = []
    last = 0
    for m, value in figures_in_answer(answer):
        token = m.group(1)
        percent = bool(m.group(2))
        report.checked.append(m.group(0).strip())
        decimals = _decimals(token)
        if value in free or any(_matches(value, decimals, percent, s) for s in pool):
            continue
        near = [s for s in pool if s and abs(value - s) <= 0.05 * abs(s)]
        if percent:
            near += [s * 100 for s in pool if 0 < abs(s) <= 1 and abs(value - s * 100) <= 0.05 * abs(s * 100)]
        near = sorted(set(near))
        pieces.append(answer[last:m.start(1)])
        if len(near) == 1:
            fixed = _format_like(near[0], token)
            report.repaired.append((token, fixed))
            pieces.append(fixed)
        else:
            report.flagged.append(m.group(0).strip())
            pieces.append(token + " (⚠ unverified)")
        last = m.end(1)
    pieces.append(answer[last:])
    report.answer = "".join(pieces)
    return report


def _format_like(value: float, token: str) -> str:
    decimals = max(_decimals(token), 0 if float(value).is_integer() else min(2, len(repr(value).split(".")[1])))
    text = f"{value:,.{decimals}f}" if "," in token else f"{value:.{decimals}f}"
    return text


def flag_line(report: GroundingReport) -> str:
    """One line summarising what could not be verified (empty when everything is grounded)."""
    if not report.flagged:
        return ""
    return "⚠ unverified: " + ", ".join(report.flagged) + " (no tool returned these figures)"


__all__ = ["GroundingReport", "check_answer", "numbers_in", "figures_in_answer", "flag_line"]
