"""A backlog goes to Claude as one Message Batch, at half price: submit the queued
articles, then collect the results (matched by custom_id, never by order) when the
batch has ended. Both steps are idempotent and run from a schedule."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from aggregator.ingest.leases import ARTICLE, held
from aggregator.models import Article
from enrichment.backends.claude import (
    ClaudeError,
    Usage,
    card_from_response,
    make_client,
    output_config,
    refuse_echoes,
    request_params,
)
from enrichment.models import Insight
from enrichment.service import record_call, source_text, store, usage_fields

logger = logging.getLogger(__name__)
Claude = Insight.Claude
State = Article.State
MAX_BATCH = 10_000


def custom_id(article_id: int) -> str:
    return f"article-{article_id}"


def article_id_of(custom: str) -> int | None:
    prefix, _, number = custom.partition("-")
    return int(number) if prefix == "article" and number.isdigit() else None


def submit_batch(*, client=None, article_ids: list[int] | None = None) -> str | None:
    """Send every queued article (or the given ones) as one batch; the batch id, or None."""
    queued = Insight.objects.filter(claude_status=Claude.QUEUED)
    if article_ids is not None:
        queued = Insight.objects.filter(article_id__in=article_ids)
    ids = list(queued.values_list("article_id", flat=True)[:MAX_BATCH])
    if not ids:
        return None
    articles = Article.objects.filter(pk__in=ids).select_related("source", "category")
    requests = [
        {
            "custom_id": custom_id(a.pk),
            "params": {**request_params(source_text(a)), "output_config": output_config()},
        }
        for a in articles
    ]
    client = client or make_client()
    batch = client.messages.batches.create(requests=requests)
    Insight.objects.filter(article_id__in=ids).update(
        claude_status=Claude.BATCHED, batch_id=batch.id, updated_at=timezone.now()
    )
    logger.info("submitted batch %s with %d articles", batch.id, len(requests))
    return batch.id


def collect_batches(*, client=None) -> int:
    """Apply the results of every ended batch; returns how many cards were written."""
    batch_ids = list(
        Insight.objects.filter(claude_status=Claude.BATCHED).values_list("batch_id", flat=True).distinct()
    )
    if not batch_ids:
        return 0
    client = client or make_client()
    written = 0
    for batch_id in batch_ids:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status != "ended":
            continue
        seen: set[int] = set()
        for entry in client.messages.batches.results(batch_id):
            article_id = article_id_of(entry.custom_id)
            if article_id is None:
                continue
            seen.add(article_id)
            with held(ARTICLE, [article_id]) as hold:  # one held by a worker: next collection
                if hold:
                    written += apply_result(batch_id, article_id, entry.result)
        # Anything the batch did not answer for goes back to the queue.
        Insight.objects.filter(batch_id=batch_id, claude_status=Claude.BATCHED).exclude(
            article_id__in=seen
        ).update(claude_status=Claude.QUEUED, batch_id="")
    return written


def apply_result(batch_id: str, article_id: int, result) -> int:
    insight = Insight.objects.filter(
        article_id=article_id, batch_id=batch_id, claude_status=Claude.BATCHED
    ).first()
    article = Article.objects.filter(pk=article_id).select_related("source", "category").first()
    if insight is None or article is None:
        return 0  # already applied (a second run) or gone
    if result.type != "succeeded":
        error = f"the batch request {result.type}"
        detail = getattr(getattr(getattr(result, "error", None), "error", None), "message", "")
        record_call(
            article, Usage(), outcome=result.type, error=f"{error}: {detail}".strip(": "), batch_id=batch_id
        )
        retry = insight.attempts + 1 < settings.CLAUDE_MAX_CALLS
        Insight.objects.filter(pk=insight.pk).update(
            claude_status=Claude.RETRY if retry else Claude.FAILED,
            batch_id="",
            attempts=insight.attempts + 1,
            retry_at=timezone.now() + timedelta(minutes=30) if retry else None,
            error=f"Claude: {error}",
        )
        return 0
    message = result.message
    usage = Usage.of(message.usage)
    text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text")
    source = source_text(article)
    try:
        draft = card_from_response(stop_reason=message.stop_reason, text=text, usage=usage, source=source)
        refuse_echoes(draft, source, usage)
    except ClaudeError as exc:
        record_call(article, usage, outcome=exc.outcome, error=str(exc), batch_id=batch_id)
        Insight.objects.filter(pk=insight.pk).update(
            claude_status=Claude.FAILED,
            batch_id="",
            error=f"Claude: {exc}",
            attempts=insight.attempts + 1,
            **usage_fields(usage, batch=True),
        )
        return 0
    record_call(article, usage, outcome="ok", batch_id=batch_id)
    # The article shows its extractive card meanwhile; swap in Claude's.
    Article.objects.filter(pk=article.pk, state=State.ENRICHED).update(
        state=State.ENRICHING, state_changed_at=timezone.now()
    )
    stored = store(
        article,
        source,
        draft,
        claude_status=Claude.DONE,
        batch_id="",
        error="",
        attempts=insight.attempts + 1,
        **usage_fields(usage, batch=True),
    )
    return int(stored is not None)


def run_batches(*, client=None) -> str:
    """The scheduled step: collect what has ended, then submit what is queued."""
    if settings.ENRICHMENT_BACKEND != "claude":
        return "skipped: Claude is not configured"
    client = client or make_client()
    written = collect_batches(client=client)
    submitted = submit_batch(client=client)
    return f"wrote {written} cards from batches; submitted {submitted or 'nothing'}"
