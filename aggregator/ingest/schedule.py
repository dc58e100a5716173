"""When to poll a source next: busy feeds often, quiet feeds rarely, failing feeds
less and less, and never sooner than the publisher asks (ttl, max-age, Retry-After)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.I)


def clamp(minutes: float) -> int:
    return int(min(max(minutes, settings.POLL_MIN_INTERVAL), settings.POLL_MAX_INTERVAL))


def learnt_interval(published: Iterable[datetime | None], *, now: datetime) -> int:
    """Half the mean gap between the entries of the last 30 days, in minutes."""
    recent = sorted(p for p in published if p and now - timedelta(days=30) <= p <= now)
    if len(recent) < 2:
        return clamp(settings.POLL_MAX_INTERVAL / 4)  # quiet: a few times a day
    mean_gap = (recent[-1] - recent[0]) / (len(recent) - 1)
    return clamp(mean_gap.total_seconds() / 60 / 2)


def retry_after_minutes(headers: Mapping[str, str], *, now: datetime) -> float | None:
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return int(value) / 60
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - now).total_seconds() / 60, 0) if when.tzinfo else None


def max_age_minutes(headers: Mapping[str, str]) -> float | None:
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    return int(match.group(1)) / 60 if match else None


def next_interval(
    *,
    learnt: int,
    override: int | None = None,
    ttl: int | None = None,
    headers: Mapping[str, str] | None = None,
    now: datetime,
) -> int:
    """Minutes until the next poll after a successful one."""
    headers = headers or {}
    minutes = float(override or learnt)
    for floor in (ttl, max_age_minutes(headers), retry_after_minutes(headers, now=now)):
        if floor:
            minutes = max(minutes, floor)
    return max(int(minutes), 1)


def backoff_interval(
    *, failures: int, base: int, headers: Mapping[str, str] | None = None, now: datetime
) -> int:
    """Minutes until the next try after `failures` failures in a row."""
    minutes = min(base * 2 ** min(failures, 10), settings.POLL_MAX_INTERVAL)
    asked = retry_after_minutes(headers or {}, now=now)
    if asked:
        minutes = max(minutes, min(asked, 7 * 24 * 60))
    return max(int(minutes), 1)


def with_jitter(minutes: int, *, rng: random.Random | None = None) -> timedelta:
    """Spread polls by up to 15% so sources added together do not stay in lockstep.
    Only ever later: the interval may be a floor the publisher asked for."""
    rng = rng or random
    return timedelta(minutes=minutes * rng.uniform(1.0, 1.15))
