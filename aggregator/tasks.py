"""django-q2 entry points: thin, idempotent, each safe to run twice."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task
from redis.exceptions import RedisError

from aggregator.ingest.opml import check_source_addresses
from aggregator.ingest.pages import extract_article, recover_stuck
from aggregator.ingest.poll import poll_source
from aggregator.models import Source, Story
from enrichment.service import enrich_article, recover_stuck_enrichment
from enrichment.stories import assign_story, unclustered
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


def claim_due_sources(*, limit: int = 200) -> list[Source]:
    now = timezone.now()
    claimed = []
    for source in Source.objects.due(now).order_by("next_poll_at")[:limit]:
        lease = source.poll_interval_override or source.poll_interval or settings.POLL_DEFAULT_INTERVAL
        if source.claim_poll(now=now, lease_minutes=lease):
            claimed.append(source)
    return claimed


def dispatch_polls() -> str:
    """Every minute: claim each due source and enqueue its poll."""
    sources = claim_due_sources()
    for source in sources:
        enqueue("aggregator.tasks.poll_source_task", source.pk, group="poll")
    return f"enqueued {len(sources)} polls"


def poll_source_task(source_id: int) -> str:
    source = Source.objects.filter(pk=source_id, is_active=True).first()
    if source is None:
        return "skipped: source gone or paused"
    result = poll_source(source)
    enqueue_extractions(result.new_article_ids)
    return f"{source}: {result}"


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


def extract_article_task(article_id: int) -> str:
    outcome = extract_article(article_id)
    if not outcome.startswith("skipped"):
        story = assign_story(article_id)
        enqueue("aggregator.tasks.enrich_article_task", article_id, group="enrich")
        if story is not None and story.publisher_count > 1 and claude_configured():
            enqueue("aggregator.tasks.write_story_card_task", story.pk, group="story")
        outcome += f"; story #{story.pk if story else '-'}"
    return outcome


def cluster_article_task(article_id: int) -> str:
    story = assign_story(article_id)
    return f"story #{story.pk if story else '-'}"


def enrich_article_task(article_id: int, force: bool = False) -> str:
    return enrich_article(article_id, force=force)


def write_story_card_task(story_id: int) -> str:
    """Claude's card for a story with several publishers (skipped when up to date)."""
    story = Story.objects.filter(pk=story_id).first()
    if story is None:
        return "skipped: story gone"
    insight = write_story_card(story)
    if insight is None:
        return "skipped: up to date, a single publisher, or Claude not configured"
    return f"story card: {insight.error or f'{len(insight.claims)} claims, {len(insight.disagreements)} disagreements'}"


def run_batches_task() -> str:
    from enrichment.batches import run_batches

    return run_batches()


def recover_stuck_task() -> str:
    ids = recover_stuck()
    enqueue_extractions(ids)
    # Before the enrichment sweep, which marks the extracted articles it re-enqueues.
    cutoff = timezone.now() - timezone.timedelta(minutes=settings.STUCK_AFTER_MINUTES)
    storyless = unclustered(older_than=cutoff)
    for article_id in storyless:
        enqueue("aggregator.tasks.cluster_article_task", article_id, group="cluster")
    waiting = recover_stuck_enrichment()
    for article_id in waiting:
        enqueue("aggregator.tasks.enrich_article_task", article_id, group="enrich")
    return f"re-enqueued {len(ids)} extractions, {len(waiting)} enrichments and {len(storyless)} clusterings"


def build_recap_task() -> str:
    """Monday morning: the draft of the week that just ended, for editors to publish."""
    from enrichment.recap import build_recap, last_week

    recap = build_recap(*last_week())
    return f"{recap.title}: {recap.status}"
