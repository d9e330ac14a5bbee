"""Time windows shared by every tool: named windows or explicit ISO start/end, in naive UTC.

A user says "yesterday" or "last week"; a model says ``window="yesterday"``. Both end up as one
half-open interval ``[start, end)`` of naive UTC datetimes, resolved against the agent's clock
(``ctx.now()``, pinned by HOMEPOT_AI_NOW in tests) so that answers are reproducible. Weeks start
on Monday. Explicit ``start``/``end`` win over ``window``; a missing ``end`` means "now".

``WindowArgs`` is the pydantic mixin tools inherit so that their schemas stay flat.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal, get_args

from pydantic import BaseModel, Field

Window = Literal[
    "last_hour",
    "last_24h",
    "today",
    "yesterday",
    "last_7d",
    "this_week",
    "last_week",
    "last_30d",
    "this_month",
    "last_month",
]
WINDOWS: tuple[str, ...] = get_args(Window)

#: How a named window reads in a sentence.
WINDOW_LABELS: dict[str, str] = {
    "last_hour": "the last hour",
    "last_24h": "the last 24 hours",
    "today": "today",
    "yesterday": "yesterday",
    "last_7d": "the last 7 days",
    "this_week": "this week",
    "last_week": "last week",
    "last_30d": "the last 30 days",
    "this_month": "this month",
    "last_month": "last month",
}


class WindowError(ValueError):
    """A time window that cannot be used; the message is one sentence saying what is valid."""


class WindowArgs(BaseModel):
    """Time-window arguments every time-based tool accepts (a mixin: the schema stays flat)."""

    window: Window | None = Field(
        default=None,
        description="Named time window (UTC). Ignored when 'start' is given. Default depends on the tool, usually last_24h.",
    )
    start: datetime | None = Field(
        default=None, description="Explicit window start, ISO-8601 UTC, e.g. 2024-05-01T12:00:00. Overrides 'window'."
    )
    end: datetime | None = Field(
        default=None, description="Explicit window end, ISO-8601 UTC (exclusive). Default: now."
    )


def to_naive_utc(value: datetime | str | None) -> datetime | None:
    """Parse an ISO string or datetime to a naive UTC datetime (aware values are converted)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise WindowError(
                f"{value!r} is not an ISO-8601 date or time; use e.g. 2024-05-01 or 2024-05-01T12:00:00."
            ) from exc
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _midnight(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(ts: datetime) -> datetime:
    return _midnight(ts).replace(day=1)


def named_window(window: str, now: datetime) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of a named window relative to ``now`` (naive UTC)."""
    today = _midnight(now)
    week = today - timedelta(days=today.weekday())
    if window == "last_hour":
        return now - timedelta(hours=1), now
    if window == "last_24h":
        return now - timedelta(hours=24), now
    if window == "today":
        return today, now
    if window == "yesterday":
        return today - timedelta(days=1), today
    if window == "last_7d":
        return now - timedelta(days=7), now
    if window == "this_week":
        return week, now
    if window == "last_week":
        return week - timedelta(days=7), week
    if window == "last_30d":
        return now - timedelta(days=30), now
    if window == "this_month":
        return _month_start(now), now
    if window == "last_month":
        this_month = _month_start(now)
        return _month_start(this_month - timedelta(days=1)), this_month
    raise WindowError(f"Unknown time window {window!r}; use one of: {', '.join(WINDOWS)}.")


def format_span(start: datetime, end: datetime) -> str:
    """'2024-05-01 12:00 to 2024-05-02 12:00 UTC' (dates only when both are midnights)."""
    if start == _midnight(start) and end == _midnight(end):
        if end - start == timedelta(days=1):
            return f"{start:%Y-%m-%d} (UTC)"
        return f"{start:%Y-%m-%d} to {(end - timedelta(days=1)):%Y-%m-%d} (UTC)"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def resolve_window(
    window: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    now: datetime | None = None,
    *,
    default: str = "last_24h",
) -> tuple[datetime, datetime, str]:
    """Resolve window arguments to ``(start, end, label)`` in naive UTC.

    Explicit ``start`` wins over ``window``; ``end`` alone ends the default window there; a named
    window is resolved against ``now`` (the agent's clock). The label reads in a sentence:
    "yesterday", "the last 7 days", "2024-05-01 12:00 to 2024-05-02 12:00 UTC".
    """
    now = to_naive_utc(now) or datetime.now(timezone.utc).replace(tzinfo=None)
    start_ts, end_ts = to_naive_utc(start), to_naive_utc(end)
    if start_ts is not None:
        end_ts = end_ts or now
        label = format_span(start_ts, end_ts)
    else:
        name = window or default
        if name not in WINDOWS:
            raise WindowError(f"Unknown time window {name!r}; use one of: {', '.join(WINDOWS)}.")
        if end_ts is None:
            start_ts, end_ts = named_window(name, now)
            label = WINDOW_LABELS[name]
        else:  # a window that ends at an explicit time: same shape, anchored there
            start_ts, _ = named_window(name, end_ts)
            label = format_span(start_ts, end_ts)
    if start_ts >= end_ts:
        raise WindowError(
            f"The time window starts ({start_ts:%Y-%m-%d %H:%M}) at or after it ends ({end_ts:%Y-%m-%d %H:%M}); "
            "give a start before the end."
        )
    return start_ts, end_ts, label


def during(label: str) -> str:
    """The label with the preposition a sentence needs: 'yesterday', 'over the last 7 days', 'on 2024-05-01'."""
    if label in WINDOW_LABELS.values() and not label.startswith("the "):
        return label
    if label.startswith("the "):
        return f"over {label}"
    if " to " in label:
        return f"from {label}"
    return f"on {label}"


def previous_period(start: datetime, end: datetime, window: str | None = None) -> tuple[datetime, datetime, str]:
    """The period of the same kind just before ``[start, end)``: last week before this week, etc.

    Calendar windows step by the calendar (this_month -> the whole of last month); other spans
    step back by their own length.
    """
    if window in {"this_month", "last_month"}:
        prev_start = _month_start(start - timedelta(days=1))
        if window == "this_month":
            return prev_start, start, "last month"
        return prev_start, start, format_span(prev_start, start)
    if window in {"this_week", "today"}:
        span = timedelta(days=7 if window == "this_week" else 1)
        return start - span, start, "last week" if window == "this_week" else "yesterday"
    span = end - start
    return start - span, start, format_span(start - span, start)


def bucket_floor(ts: datetime, bucket: str) -> datetime:
    """Start of the hour/day/week (Monday) bucket that holds ``ts``."""
    if bucket == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return _midnight(ts)
    if bucket == "week":
        day = _midnight(ts)
        return day - timedelta(days=day.weekday())
    raise WindowError(f"Unknown bucket {bucket!r}; use hour, day or week.")
