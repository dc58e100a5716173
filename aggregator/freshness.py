"""The freshness badge and relative times: how old a story is, and how fast we had it.

One rule on the server and in static/site.js: a relative time is rounded DOWN in the
largest unit that fits ("3 days ago" from 3 days 23 hours on); "Today" is the reader's
calendar day in the site's time zone (TIME_ZONE); "This week" the ISO week that
/week/YEAR/WEEK/ lists.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime, timedelta

FRESH = timedelta(hours=6)
UNITS = [
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("week", 7 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
]


def _local(value: datetime, tz: dt.tzinfo | None) -> datetime:
    if tz is None:
        from django.utils import timezone

        tz = timezone.get_current_timezone()
    return value.astimezone(tz)


def age_class(published: datetime | None, now: datetime, tz: dt.tzinfo | None = None) -> tuple[str, str]:
    if published is None:
        return "unknown", "Undated"
    if now - published < FRESH:
        return "fresh", "Fresh"
    day, today = _local(published, tz).date(), _local(now, tz).date()
    if day == today:
        return "today", "Today"
    if day.isocalendar()[:2] == today.isocalendar()[:2]:
        return "week", "This week"
    return "older", "Older"


def relative(when: datetime | None, now: datetime) -> str:
    """'3 days ago', rounded down, in the largest unit that fits (as site.js does)."""
    if when is None:
        return ""
    seconds = int((now - when).total_seconds())
    if abs(seconds) < 60:
        return "just now"
    for unit, size in UNITS:
        if abs(seconds) >= size:
            n = abs(seconds) // size
            words = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"{words} ago" if seconds > 0 else f"in {words}"
    return "just now"


def week_of(when: datetime, tz: dt.tzinfo | None = None) -> tuple[int, int]:
    """(ISO year, ISO week) of a moment, in the site's time zone."""
    year, week, _ = _local(when, tz).date().isocalendar()
    return year, week


def short_duration(delta: timedelta) -> str:
    """26m, 3h, 2d: the way a news card says it (rounded down, like every other age)."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // (24 * 60)}d"


def collected_after(published: datetime | None, collected: datetime | None) -> str:
    """'26m' for an article we had 26 minutes after its publisher's timestamp."""
    if published is None or collected is None:
        return ""
    return short_duration(collected - published)


def format_partial_date(value: str) -> str:
    """An ISO date of any precision as a reader reads it: 18 Nov 2026, Nov 2026, 2026."""
    parts = (value or "").split("-")
    try:
        if len(parts) == 3:
            return datetime(int(parts[0]), int(parts[1]), int(parts[2])).strftime("%-d %b %Y")
        if len(parts) == 2:
            return datetime(int(parts[0]), int(parts[1]), 1).strftime("%b %Y")
    except ValueError:
        return value
    return value
