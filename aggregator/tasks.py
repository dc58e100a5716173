"""django-q2 entry points: thin, idempotent, each safe to run twice."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task
from redis.exceptions import RedisError

from aggregator.ingest import leases
from aggregator.ingest.leases import sweep_articles
from aggregator.ingest.opml import check_source_addresses
from aggregator.ingest.pages import extract_article
from aggregator.ingest.poll import poll_source
from aggregator.models import Article, Source, Story
from aggregator.pagecache import new_content
from enrichment.service import enrich_article, recover_stuck_enrichment
from enrichment.stories import assign_story, count_uncounted
from enrichment.story_claude import claude_configured, write_story_card

logger = logging.getLogger(__name__)


# What a broker that cannot be reached raises (Redis down; the database, for the ORM broker).
BROKER_ERRORS = (RedisError, DatabaseError, OSError)


def enqueue(func: str, *args, group: str | None = None) -> None:
    """Enqueue after the current transaction commits, so the worker finds the rows.

    A broker that is down fails nothing: the step that called this did its work and
    says so (it must not be counted as a failed task), and the work it hands on is in
    the database, where the sweeps (recover_stuck_task, dispatch_polls) find it again
    within minutes."""

    def send() -> None:
        if Conf.SYNC:  # tasks run inline (tests, Q_SYNC): their own errors must show
            async_task(func, *args, group=group)
            return
        try:
            async_task(func, *args, group=group)
        except BROKER_ERRORS as exc:
            logger.warning(
                "could not enqueue %s%r, the broker is unreachable (%s); the sweep will enqueue it again",
                func,
                tuple(args),
                exc,
            )

    transaction.on_commit(send)


def claim_due_sources(*, limit: int = 500, now=None) -> list[Source]:
    """Claim up to `limit` due sources, most overdue first. Two dispatchers never get
    the same source: the rows are locked (skipped by the other) on PostgreSQL, and
    SQLite runs one writing transaction at a time. Each source's next poll moves on by
    its own interval, and its poll is marked queued with a short lease
    (aggregator.ingest.leases): a poll the broker loses, or that dies halfway, is
    handed out again by the next tick after the lease, not after the interval."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            Source.objects.due(now)
            .order_by(F("next_poll_at").asc(nulls_first=True), "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", "poll_interval_override", "poll_interval")[:limit]
        )
        by_lease: dict[int, list[int]] = defaultdict(list)
        for pk, override, interval in rows:
            by_lease[override or interval or settings.POLL_DEFAULT_INTERVAL].append(pk)
        for lease, ids in by_lease.items():
            Source.objects.filter(pk__in=ids).update(
                last_polled_at=now, next_poll_at=now + timedelta(minutes=lease)
            )
        queued = leases.mark_queued(leases.POLL, [pk for pk, *_ in rows], now=now)
    return list(Source.objects.filter(pk__in=queued))


def dispatch_polls() -> str:
    """Every minute: claim due sources in batches until none is due (or the minute is
    nearly up) and enqueue their polls, POLL_BATCH sources to a task, so capacity grows
    with the number of sources rather than stopping at a fixed count a minute."""
    started = time.monotonic()
    claimed = tasks = 0
    while time.monotonic() - started < settings.DISPATCH_SECONDS:
        sources = claim_due_sources(limit=500)
        if not sources:
            break
        claimed += len(sources)
        ids = [s.pk for s in sources]
        for i in range(0, len(ids), settings.POLL_BATCH):
            enqueue("aggregator.tasks.poll_sources_task", ids[i : i + settings.POLL_BATCH], group="poll")
            tasks += 1
    return f"enqueued {claimed} polls in {tasks} tasks"


@new_content
def poll_sources_task(source_ids: list[int]) -> str:
    """Poll claimed sources with their network waits overlapped (aggregator.ingest.run),
    each held with a lease until its poll is done; one a live worker holds is skipped."""
    from aggregator.ingest.run import poll_held

    totals, new = poll_held(source_ids)
    enqueue_extractions(new)
    return f"polled {totals.polled} sources ({totals.failed} failed): {totals.new} new articles"


@new_content
def poll_source_task(source_id: int) -> str:
    with leases.held(leases.POLL, [source_id]) as hold:
        if not hold:
            return "skipped: another worker is polling it"
        source = Source.objects.filter(pk=source_id, is_active=True).first()
        if source is None:
            return "skipped: source gone or paused"
        result = poll_source(source)
    enqueue_extractions(result.new_article_ids)
    return f"{source}: {result}"


def fetch_now_task(source_id: int) -> str:
    """An editor's "Fetch now": a poll, and a 304 or an unchanged feed also counts as a
    success, so the admin's health column stops showing "fetching…"."""
    outcome = poll_source_task(source_id)
    Source.objects.filter(pk=source_id, consecutive_failures=0).update(last_success_at=timezone.now())
    return outcome


ADDRESS_CHECK_CHUNK = 25  # hosts resolved per task: well inside the task timeout


def enqueue_address_checks(source_ids: list[int]) -> None:
    for start in range(0, len(source_ids), ADDRESS_CHECK_CHUNK):
        enqueue(
            "aggregator.tasks.check_sources_task",
            source_ids[start : start + ADDRESS_CHECK_CHUNK],
            group="check",
        )


def check_sources_task(source_ids: list[int]) -> str:
    paused = check_source_addresses(source_ids)
    return f"checked {len(source_ids)} sources; paused {len(paused)}" + "".join(f"\n{r}" for r in paused)


def enqueue_extractions(article_ids: list[int]) -> None:
    for article_id in article_ids:
        enqueue("aggregator.tasks.extract_article_task", article_id, group="extract")


@new_content
def extract_article_task(article_id: int) -> str:
    outcome = extract_article(article_id)
    if not outcome.startswith("skipped"):
        story = assign_story(article_id)
        enqueue("aggregator.tasks.enrich_article_task", article_id, group="enrich")
        if story is not None and story.publisher_count > 1 and claude_configured():
            enqueue("aggregator.tasks.write_story_card_task", story.pk, group="story")
        outcome += f"; story #{story.pk if story else '-'}"
    return outcome


@new_content
def cluster_article_task(article_id: int) -> str:
    """An extracted article a dead worker left without a story: cluster it, then its
    card if it has none yet."""
    story = assign_story(article_id)
    if Article.objects.filter(pk=article_id, state=Article.State.EXTRACTED).exists():
        enqueue("aggregator.tasks.enrich_article_task", article_id, group="enrich")
    return f"story #{story.pk if story else '-'}"


@new_content
def enrich_article_task(article_id: int, force: bool = False) -> str:
    return enrich_article(article_id, force=force)


@new_content
def write_story_card_task(story_id: int) -> str:
    """Claude's card for a story with several publishers (skipped when up to date)."""
    story = Story.objects.filter(pk=story_id).first()
    if story is None:
        return "skipped: story gone"
    insight = write_story_card(story)
    if insight is None:
        return "skipped: up to date, a single publisher, or Claude not configured"
    return f"story card: {insight.error or f'{len(insight.claims)} claims, {len(insight.disagreements)} disagreements'}"


@new_content
def run_batches_task() -> str:
    from enrichment.batches import run_batches

    return run_batches()


def enqueue_steps(steps: dict[str, list[int]]) -> None:
    """Hand articles to the task of their next step ({"extract": ids, "cluster": ids, "enrich": ids})."""
    enqueue_extractions(steps.get("extract", []))
    for article_id in steps.get("cluster", []):
        enqueue("aggregator.tasks.cluster_article_task", article_id, group="cluster")
    for article_id in steps.get("enrich", []):
        enqueue("aggregator.tasks.enrich_article_task", article_id, group="enrich")


def retry_parked_task(article_ids: list[int]) -> str:
    """An editor's retry of articles whose step kept failing (aggregator.ingest.leases.retry_parked)."""
    steps = leases.retry_parked(article_ids)
    enqueue_steps(steps)
    return f"retrying {sum(len(v) for v in steps.values())} articles"


@new_content
def recover_stuck_task() -> str:
    """Every minute: hand out again every article step whose lease ran out or whose
    task was lost (aggregator.ingest.leases.sweep_articles); the polls are handed out
    again by dispatch_polls. Also Claude's retries that are due, and key counts a dead
    worker left."""
    count_uncounted()
    steps = sweep_articles()
    retries = recover_stuck_enrichment()
    enqueue_steps({**steps, "enrich": [*steps["enrich"], *retries]})
    return (
        f"re-enqueued {len(steps['extract'])} extractions, {len(steps['enrich'])} enrichments, "
        f"{len(steps['cluster'])} clusterings and {len(retries)} Claude retries"
    )


def build_recap_task() -> str:
    """Monday morning: the draft of the week that just ended, for editors to publish."""
    from enrichment.recap import build_recap, last_week

    recap = build_recap(*last_week())
    return f"{recap.title}: {recap.status}"
