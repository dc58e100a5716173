"""Polling one source: conditional GET, parse, upsert, schedule."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from aggregator.ingest import schedule
from aggregator.ingest.feeds import NotAFeed, ParsedFeed, parse_feed
from aggregator.ingest.http import FetchError, FetchResult, fetch
from aggregator.models import Article, PollLog, Source, guid_key

logger = logging.getLogger(__name__)

POLL_CHUNK = 500


@dataclass
class PollResult:
    source_id: int
    status: str  # "new", "unchanged", "not-modified", "failed"
    new_article_ids: list[int] = field(default_factory=list)
    entries: int = 0
    error: str = ""

    def __str__(self) -> str:
        if self.status == "failed":
            return f"failed: {self.error}"
        if self.status == "new":
            return f"{len(self.new_article_ids)} new of {self.entries} entries"
        return self.status


def _reason(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unexpected status"
    return f"HTTP {status} {phrase}"


def record_failure(
    source: Source,
    error: str,
    *,
    now: datetime,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> PollResult:
    failures = source.consecutive_failures + 1
    base = source.poll_interval_override or source.poll_interval or settings.POLL_DEFAULT_INTERVAL
    wait = schedule.backoff_interval(failures=failures, base=base, headers=headers, now=now)
    next_at = now + schedule.with_jitter(wait)
    Source.objects.filter(pk=source.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=error[:2000],
        last_status=status,
        next_poll_at=next_at,
    )
    source.consecutive_failures, source.last_error, source.next_poll_at = failures, error, next_at
    PollLog.objects.create(source=source, polled_at=now, outcome="failed", status=status, error=error[:2000])
    logger.warning(
        "poll of %s failed (%d in a row): %s; next try %s",
        source.feed_url,
        failures,
        error,
        next_at.isoformat(timespec="minutes"),
    )
    return PollResult(source.pk, "failed", error=error)


def store_entries(
    source: Source, parsed: ParsedFeed, *, now: datetime, started: float
) -> tuple[list[int], int, int]:
    """Clean and upsert the entries a chunk at a time, stopping once the poll's time
    budget is spent: a 50,000-entry archive feed must not outlive the worker's time
    limit. The newest chunk is always read in full (edits show there); in older chunks,
    entries already stored are not cleaned again, so each poll goes on where the last
    one stopped and gets at least one chunk further. Returns (new ids, refused, done)."""
    new_ids: list[int] = []
    rejected = done = 0
    progressed = False
    for first in range(0, len(parsed.raw), POLL_CHUNK):
        todo = raws = parsed.raw[first : first + POLL_CHUNK]
        if first:
            keys = [guid_key(parsed.guid_of(raw)) for raw in raws]
            known = set(source.articles.filter(guid__in=keys).values_list("guid", flat=True))
            todo = [raw for raw, key in zip(raws, keys, strict=True) if not key or key not in known]
        if todo:
            if progressed and time.monotonic() - started > settings.POLL_TIME_BUDGET:
                break
            with transaction.atomic():
                ids, refused = Article.objects.upsert_many(source, parsed.convert(todo), now=now)
            new_ids += ids
            rejected += refused
            progressed = progressed or bool(ids)
        done += len(raws)
    return new_ids, rejected, done


def _conditional_headers(source: Source) -> dict[str, str]:
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
        "text/xml;q=0.9, */*;q=0.5"
    }
    if source.etag:
        headers["If-None-Match"] = source.etag
    if source.last_modified:
        headers["If-Modified-Since"] = source.last_modified
    return headers


def fetch_feed(source: Source) -> FetchResult | FetchError:
    """The network half of a poll (no database): safe to run in a thread."""
    try:
        return fetch(source.feed_url, headers=_conditional_headers(source))
    except FetchError as exc:
        return exc


def poll_source(source: Source, *, now: datetime | None = None) -> PollResult:
    """Fetch and ingest one source that the caller has claimed (Source.claim_poll)."""
    return ingest_feed(source, fetch_feed(source), now=now)


def ingest_feed(
    source: Source, response: FetchResult | FetchError, *, now: datetime | None = None
) -> PollResult:
    """The database half of a poll, given what fetch_feed() got.

    A 304, or a body identical to the last one, costs no parse and no write: the claim
    already moved next_poll_at on by the learnt interval. The entries are stored a
    chunk at a time, one transaction per chunk (see store_entries).
    """
    now = now or timezone.now()
    if isinstance(response, FetchError):
        return record_failure(source, str(response), now=now)
    started = time.monotonic() - response.elapsed  # the fetch counts against the budget
    unfinished = False

    if response.not_modified and source.consecutive_failures == 0:
        return PollResult(source.pk, "not-modified")
    if response.status >= 400 or (300 <= response.status < 400 and not response.not_modified):
        return record_failure(
            source, _reason(response.status), now=now, status=response.status, headers=dict(response.headers)
        )

    body_hash = hashlib.sha256(response.content).hexdigest() if not response.not_modified else ""
    if body_hash and body_hash == source.content_hash and source.consecutive_failures == 0:
        return PollResult(source.pk, "unchanged")

    new_ids: list[int] = []
    entry_count = 0
    published: list[datetime | None] = []
    ttl = None
    warning = ""
    feed_title = feed_link = feed_language = ""
    if not response.not_modified:
        try:
            parsed = parse_feed(
                response.content, url=response.url, content_type=response.headers.get("content-type", "")
            )
        except NotAFeed as exc:
            return record_failure(source, str(exc), now=now, status=response.status)
        except Exception as exc:  # feedparser on hostile bytes: record it, never crash the worker
            logger.exception("parsing %s failed", source.feed_url)
            return record_failure(
                source, f"the feed could not be parsed: {exc!r}", now=now, status=response.status
            )
        ttl, entry_count, published = parsed.ttl_minutes, len(parsed.raw), parsed.published()
        feed_title, feed_link, feed_language = parsed.title, parsed.link, parsed.language
        new_ids, rejected, done = store_entries(source, parsed, now=now, started=started)
        warning = parsed.warning
        if rejected:
            warning = (warning + "; " if warning else "") + f"{rejected} entries could not be stored"
        if done < entry_count:
            unfinished = True
            warning = (warning + "; " if warning else "") + (
                f"read {done:,} of {entry_count:,} entries within the time limit; the rest next poll"
            )

    published = published or list(
        source.articles.order_by("-sort_at").values_list("published_at", flat=True)[:50]
    )
    learnt = schedule.learnt_interval(published, now=now)
    interval = schedule.next_interval(
        learnt=learnt,
        override=source.poll_interval_override,
        ttl=ttl,
        headers=dict(response.headers),
        now=now,
    )
    updates = {
        "consecutive_failures": 0,
        "last_error": warning[:2000],
        "last_status": response.status,
        "last_success_at": now,
        "poll_interval": learnt,
        "next_poll_at": now + schedule.with_jitter(interval),
    }
    if unfinished:  # back in a minute for the rest (the body hash is not kept, so it is read again)
        updates["next_poll_at"] = timezone.now() + timezone.timedelta(minutes=1)
    elif not response.not_modified:
        updates.update(
            etag=response.headers.get("etag", "")[:500],
            last_modified=response.headers.get("last-modified", "")[:100],
            content_hash=body_hash,
        )
    if feed_title and not source.name:
        updates["name"] = feed_title
    if feed_link and not source.site_url:
        updates["site_url"] = feed_link[:2000]
    if feed_language and not source.language:
        updates["language"] = feed_language
    Source.objects.filter(pk=source.pk).update(**updates)
    for key, value in updates.items():
        setattr(source, key, value)
    status = "new" if new_ids else "unchanged"
    # Health history: polls that changed something (a 304 or an identical body write nothing).
    PollLog.objects.create(
        source=source,
        polled_at=now,
        outcome=status,
        status=response.status,
        new_articles=len(new_ids),
        error=warning[:2000],
    )
    return PollResult(source.pk, status, new_article_ids=new_ids, entries=entry_count)
