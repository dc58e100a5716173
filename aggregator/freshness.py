"""The freshness badge: how old a story is, and how fast we had it."""

from __future__ import annotations

from datetime import datetime, timedelta

AGE_CLASSES = [
    (timedelta(hours=6), "fresh", "Fresh"),
    (timedelta(hours=24), "today", "Today"),
    (timedelta(days=7), "week", "This week"),
]


def age_class(published: datetime | None, now: datetime) -> tuple[str, str]:
    if published is None:
        return "unknown", "Undated"
    age = now - published
    for limit, key, label in AGE_CLASSES:
        if age < limit:
            return key, label
    return "older", "Older"


def short_duration(delta: timedelta) -> str:
    """26m, 3h, 2d: the way a news card says it."""
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
