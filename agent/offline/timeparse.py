"""Relative and explicit time expressions -> the tools' time-window arguments.

Users say "since lunch", "this morning", "yesterday", "last week", "past 24 hours", "on 3 May",
"between 2024-05-01 and 2024-05-03". Tools take a named ``window`` (tools/timewindow.py) or an
explicit ``start``/``end`` in naive UTC. ``parse_time`` maps the first onto the second against a
pinned ``now`` so that the same question always asks the same thing.

Choices, stated once:

* All clock times are **UTC** (the store's timestamps are naive UTC and sites carry no time zone
  in HOMEPOT's schema). "Since lunch" is today 12:00 UTC (yesterday's when it is not yet past
  noon); "this morning" is 06:00-12:00 UTC; "this afternoon" 12:00-18:00; "this evening" and
  "tonight" 18:00-24:00; "last night" yesterday 18:00 to today 06:00. An end later than ``now`` is cut at ``now``.
* A named window is preferred whenever one fits exactly ("last 7 days" -> ``last_7d``), because
  its label reads well in answers; anything else becomes ISO ``start``/``end``.
* "Last week" is the calendar week before this one (Monday start), "past week" the last 7 days;
  "last month" is the previous calendar month, "past month" the last 30 days.
* A date without a year is in the current year, or last year when that date is still to come.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {
    m: i
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
         ("nov", "november"), ("dec", "december")],
        start=1,
    )
    for m in names
}
_DAYS = {d: i for i, names in enumerate(
    [("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"), ("thursday", "thu", "thurs"),
     ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun")]) for d in names}
_NUM_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
              "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fourteen": 14, "thirty": 30, "few": 3, "couple of": 2}
_UNIT_SECONDS = {"minute": 60, "min": 60, "hour": 3600, "hr": 3600, "h": 3600, "day": 86400, "d": 86400,
                 "week": 604800, "wk": 604800, "month": 30 * 86400}

_NUM = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fourteen|thirty|few|couple of)"
_UNIT = r"(minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|months?)"
_ISO_DATE = r"(\d{4}-\d{2}-\d{2}(?:[t ]\d{1,2}:\d{2}(?::\d{2})?)?)"
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NAMED_DATE = rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b|\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b"
_DAY_RE = "|".join(sorted(_DAYS, key=len, reverse=True))
_CLOCK = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?"


@dataclass(frozen=True)
class TimeSlot:
    """A resolved time window: a named ``window`` or explicit naive-UTC ``start``/``end``."""

    window: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    label: str = ""
    span: tuple[int, int] = (0, 0)  # where in the lower-cased text it was found

    def args(self) -> dict[str, str]:
        """The tool arguments: {"window": ...} or {"start": ISO, "end": ISO}."""
        if self.window:
            return {"window": self.window}
        out = {}
        if self.start is not None:
            out["start"] = self.start.isoformat(timespec="seconds")
        if self.end is not None:
            out["end"] = self.end.isoformat(timespec="seconds")
        return out


def _midnight(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _num(word: str) -> int:
    return int(word) if word.isdigit() else _NUM_WORDS.get(word, 1)


def _explicit(start: datetime, end: datetime | None, now: datetime, label: str, span: tuple[int, int]) -> TimeSlot:
    end = min(end, now) if end is not None else None
    if end is not None and end <= start:  # "this afternoon" asked in the morning: nothing yet, use up to now
        end = None
    return TimeSlot(start=start, end=end, label=label, span=span)


def _since_noon(now: datetime) -> TimeSlot:
    """Today 12:00 UTC; before (or at) noon it can only mean yesterday's lunch."""
    noon = _midnight(now) + timedelta(hours=12)
    if noon >= now:
        return TimeSlot(start=noon - timedelta(days=1), label="since 12:00 UTC yesterday")
    return TimeSlot(start=noon, label="since 12:00 UTC today")


def _parse_date(text: str, now: datetime) -> datetime | None:
    text = text.strip()
    iso = re.fullmatch(_ISO_DATE, text)
    if iso:
        try:
            return datetime.fromisoformat(text.replace("t", "T").replace(" ", "T"))
        except ValueError:
            return None
    m = re.fullmatch(_NAMED_DATE, text)
    if m:
        day = int(m.group(1) or m.group(4))
        month = _MONTHS[m.group(2) or m.group(3)]
        try:
            date = datetime(now.year, month, day)
        except ValueError:
            return None
        return date.replace(year=now.year - 1) if date > now else date
    low = text.strip()
    if low in ("today",):
        return _midnight(now)
    if low == "yesterday":
        return _midnight(now) - timedelta(days=1)
    return None


def _is_date_only(text: str) -> bool:
    return not re.search(r"\d:\d", text)


def _clock(h: str, mnt: str | None, ampm: str | None) -> tuple[int, int] | None:
    hour, minute = int(h), int(mnt or 0)
    if ampm == "pm" and hour < 12:
        hour += 12
    if ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def parse_time(text: str, now: datetime) -> TimeSlot | None:
    """The time window a question asks about, or None when it names none."""
    t = text.lower()
    today = _midnight(now)

    def at(hour: int, day: datetime = today) -> datetime:
        return day + timedelta(hours=hour)

    rules: list[tuple[str, object]] = [
        (rf"\bbetween\s+{_ISO_DATE}\s+and\s+{_ISO_DATE}", "between"),
        (rf"\bfrom\s+{_ISO_DATE}\s+(?:to|until|till)\s+{_ISO_DATE}", "between"),
        (rf"\bbetween\s+((?:{_NAMED_DATE}))\s+and\s+((?:{_NAMED_DATE}))", "between_named"),
        (r"\bsince\s+(?:lunch(?:time)?|noon|midday)\b", lambda: _since_noon(now)),
        (r"\b(?:this|today'?s?)\s+morning\b", lambda: _explicit(at(6), at(12), now, "this morning (06:00-12:00 UTC)", (0, 0))),
        (r"\bthis\s+afternoon\b", lambda: _explicit(at(12), at(18), now, "this afternoon (12:00-18:00 UTC)", (0, 0))),
        (r"\b(?:this\s+evening|tonight)\b", lambda: _explicit(at(18), at(24), now, "this evening (from 18:00 UTC)", (0, 0))),
        (r"\blast\s+night\b|\bovernight\b", lambda: _explicit(at(18, today - timedelta(days=1)), at(6), now, "last night (18:00-06:00 UTC)", (0, 0))),
        (r"\bday\s+before\s+yesterday\b", lambda: _explicit(today - timedelta(days=2), today - timedelta(days=1), now, "the day before yesterday", (0, 0))),
        (rf"\b(?:in\s+the\s+|over\s+the\s+|during\s+the\s+|for\s+the\s+)?(?:last|past|previous|recent)\s+{_NUM}\s+{_UNIT}\b", "last_n"),
        (rf"\b{_NUM}\s+{_UNIT}\s+ago\b", "ago"),
        (rf"\bsince\s+{_ISO_DATE}", "since_date"),
        (rf"\bsince\s+(?:{_NAMED_DATE})", "since_named"),
        (rf"\bsince\s+(?:last\s+)?({_DAY_RE})\b", "since_day"),
        (rf"\bsince\s+{_CLOCK}\b", "since_clock"),
        (rf"\b(?:on\s+)?(?:last\s+)({_DAY_RE})\b|\bon\s+({_DAY_RE})\b", "on_day"),
        (rf"\b(?:on\s+|for\s+)?{_ISO_DATE}", "on_date"),
        (rf"\b(?:on\s+)?(?:{_NAMED_DATE})", "on_named"),
        (r"\b(?:last|past|previous)\s+hour\b|\bthe\s+hour\b", "last_hour"),
        (r"\b(?:last|past|previous)\s+(?:24\s*h(?:ours?|rs?)?|day|twenty[- ]four\s+hours)\b", "last_24h"),
        (r"\byesterday'?s?\b", "yesterday"),
        (r"\btoday'?s?\b|\bso\s+far\s+today\b|\bthis\s+day\b", "today"),
        (r"\b(?:past|last\s+seven\s+days|rolling)\s+week\b", "last_7d"),
        (r"\bthis\s+week'?s?\b|\bweek\s+to\s+date\b|\bso\s+far\s+this\s+week\b", "this_week"),
        (r"\b(?:last|previous|prior)\s+week'?s?\b", "last_week"),
        (r"\bpast\s+month\b", "last_30d"),
        (r"\bthis\s+month'?s?\b|\bmonth\s+to\s+date\b", "this_month"),
        (r"\b(?:last|previous|prior)\s+month'?s?\b", "last_month"),
    ]
    for pattern, action in rules:
        m = re.search(pattern, t)
        if not m:
            continue
        span = m.span()
        if callable(action):
            slot = action()
            return TimeSlot(slot.window, slot.start, slot.end, slot.label, span)
        kind = action
        if kind in ("between", "between_named"):
            groups = [g for g in m.groups() if g]
            a_txt, b_txt = (groups[0], groups[-1]) if kind == "between" else (m.group(1), m.group(6))
            a, b = _parse_date(a_txt, now), _parse_date(b_txt, now)
            if a and b:
                if b < a:
                    a, b = b, a
                b_end = b + timedelta(days=1) if _is_date_only(b_txt) else b
                return _explicit(a, b_end, now, f"{a:%Y-%m-%d} to {b:%Y-%m-%d}", span)
            continue
        if kind == "last_n":
            n, unit = _num(m.group(1)), m.group(2).rstrip("s") or m.group(2)
            seconds = _UNIT_SECONDS.get(unit, _UNIT_SECONDS.get(unit.rstrip("s"), 86400)) * n
            named = {3600: "last_hour", 86400: "last_24h", 7 * 86400: "last_7d", 30 * 86400: "last_30d"}.get(seconds)
            if named:
                return TimeSlot(window=named, label=named, span=span)
            return TimeSlot(start=now - timedelta(seconds=seconds), label=f"the last {n} {unit}s", span=span)
        if kind == "ago":
            n, unit = _num(m.group(1)), m.group(2).rstrip("s")
            seconds = _UNIT_SECONDS.get(unit, 86400) * n
            if unit in ("day", "d"):
                start = today - timedelta(days=n)
                return _explicit(start, start + timedelta(days=1), now, f"{start:%Y-%m-%d}", span)
            return TimeSlot(start=now - timedelta(seconds=seconds), label=f"since {n} {unit}s ago", span=span)
        if kind == "since_date":
            start = _parse_date(m.group(1), now)
            if start:
                return TimeSlot(start=start, label=f"since {start:%Y-%m-%d}", span=span)
            continue
        if kind == "since_named":
            start = _parse_date(m.group(0).split(None, 1)[1], now)
            if start:
                return TimeSlot(start=start, label=f"since {start:%Y-%m-%d}", span=span)
            continue
        if kind == "since_day":
            back = (now.weekday() - _DAYS[m.group(1)]) % 7 or 7
            start = today - timedelta(days=back)
            return TimeSlot(start=start, label=f"since {start:%A}", span=span)
        if kind == "since_clock":
            hm = _clock(m.group(1), m.group(2), m.group(3))
            if hm is None or (m.group(2) is None and m.group(3) is None):
                continue  # "since 5" alone is not a time
            start = today + timedelta(hours=hm[0], minutes=hm[1])
            if start >= now:
                start -= timedelta(days=1)
            return TimeSlot(start=start, label=f"since {hm[0]:02d}:{hm[1]:02d} UTC", span=span)
        if kind == "on_day":
            day = _DAYS[m.group(1) or m.group(2)]
            back = (now.weekday() - day) % 7 or 7
            start = today - timedelta(days=back)
            return _explicit(start, start + timedelta(days=1), now, f"{start:%A %Y-%m-%d}", span)
        if kind in ("on_date", "on_named"):
            txt = m.group(1) if kind == "on_date" else re.sub(r"^on\s+", "", m.group(0))
            start = _parse_date(txt, now)
            if start is None:
                continue
            end = start + timedelta(days=1) if _is_date_only(txt) else None
            return _explicit(start, end, now, f"{start:%Y-%m-%d}", span)
        return TimeSlot(window=kind, label=kind, span=span)
    return None


def parse_horizon(text: str) -> int | None:
    """A look-ahead in days for maintenance questions: "in the next 30 days", "this week"."""
    t = text.lower()
    m = re.search(rf"\b(?:next|coming|within(?:\s+the\s+next)?|in\s+the\s+next|over\s+the\s+next)\s+{_NUM}\s+{_UNIT}\b", t)
    if m:
        n, unit = _num(m.group(1)), m.group(2).rstrip("s")
        days = _UNIT_SECONDS.get(unit, 86400) * n / 86400
        return max(1, round(days))
    if re.search(r"\b(?:this|next|coming)\s+week\b", t):
        return 7
    if re.search(r"\b(?:this|next|coming)\s+month\b", t):
        return 30
    if re.search(r"\b(?:tomorrow|today|next\s+day)\b", t):
        return 1
    return None
