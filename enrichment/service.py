"""Enriching one article: build its source text, run the configured enricher, check
each claim against the text, and store the card. Safe to run twice.

With Claude configured, every article first gets the extractive card (so the site never
waits on the API); Claude's card replaces it when the call succeeds. A syndicated copy
reuses its twin's card, the daily budget is never overspent, and a backlog goes to the
Message Batches API at half price (enrichment.batches)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Subquery, Sum
from django.utils import timezone

from aggregator.ingest.leases import ARTICLE, held
from aggregator.models import Article, AudienceTag, Category
from enrichment.backends import CardDraft, EnrichmentError, SourceText, get_enricher
from enrichment.backends.base import Implication, Takeaway, TimelineEntry
from enrichment.grounding import Counts, ground_card
from enrichment.injection import find_instructions, without_instructions
from enrichment.models import ApiCall, Insight
from enrichment.related import related_ids
from enrichment.sentences import sentences_of

logger = logging.getLogger(__name__)
State = Article.State
Claude = Insight.Claude


def source_text(article: Article) -> SourceText:
    """What an enricher may read: the article and its story's earlier reports, every
    sentence addressed to a model left out (so it is never summarized or cited)."""
    story = []
    if article.story_id:
        story = [
            (a.pk, a.published_at, a.title, without_instructions(a.body_text))
            for a in Article.objects.filter(story_id=article.story_id, sort_at__lte=article.sort_at)
            .exclude(pk=article.pk)
            .only("pk", "published_at", "title", "text", "content_html", "summary_html")
            .order_by("sort_at")[:20]
        ]
    body = article.body_text
    flags = find_instructions(body)
    return SourceText(
        article_id=article.pk,
        title=article.title,
        text=without_instructions(body, flags),
        language=article.language or article.source.language,
        source_name=article.source.name,
        published_at=article.published_at,
        category_hint=article.category.slug if article.category else "",
        story=story,
        categories=dict(Category.objects.values_list("slug", "keywords")),
        audiences=dict(AudienceTag.objects.values_list("slug", "keywords")),
        instructions=[f.sentence for f in flags] + [f["sentence"] for f in article.model_instructions or []],
        sentences=sentences_of(article),
    )


def grounded(draft: CardDraft, source: SourceText, *, mode: str | None = None) -> tuple[CardDraft, Counts]:
    """Check every claim against the text we hold (enrichment.grounding); drop the
    unsupported ones (or mark them, with GROUNDING_MODE=mark) and say why."""
    return ground_card(draft, source, mode=mode or settings.GROUNDING_MODE)


def store(
    article: Article, source: SourceText, draft: CardDraft, *, from_state: str = State.ENRICHING, **extra
) -> Insight | None:
    """Save a card and move the article to ENRICHED, if it is still in `from_state`."""
    draft, counts = grounded(draft, source)
    # Read before the write transaction: on SQLite it holds the one write lock, and
    # every other worker waits for it while this one scores its candidates.
    related = related_ids(article)
    with transaction.atomic():
        moved = Article.objects.filter(pk=article.pk, state=from_state).update(
            state=State.ENRICHED, state_changed_at=timezone.now()
        )
        if not moved:
            return None
        fields = {
            **draft.as_fields(),
            "related_ids": related,
            "grounded_claims": counts.kept,
            "unsupported_claims": counts.unsupported,
            "generated_at": timezone.now(),
            **extra,
        }
        # The article is ours (claimed above): a card to replace is updated in place,
        # else made; one statement either way (INSERT … ON CONFLICT DO UPDATE). The
        # card's other fields keep what they had; on the object returned they are the
        # defaults.
        insight = Insight(article=article, **fields)
        Insight.objects.bulk_create(
            [insight], update_conflicts=True, unique_fields=["article"], update_fields=[*fields, "updated_at"]
        )
        set_audiences(article, draft.audiences)
        if draft.category and (article.category is None or article.category.slug != draft.category):
            category = Category.objects.filter(slug=draft.category)
            Article.objects.filter(pk=article.pk).filter(Exists(category)).update(
                category_id=Subquery(category.values("pk")[:1])
            )
    return insight


def set_audiences(article: Article, slugs) -> None:
    """What `article.audiences.set()` does, in two statements and a read rather than
    four (it reads the current tags twice): the tags no longer given are deleted, the
    new ones inserted, those it has already left alone."""
    through = Article.audiences.through
    tags = list(AudienceTag.objects.filter(slug__in=list(slugs)).values_list("pk", flat=True))
    through.objects.filter(article_id=article.pk).exclude(audiencetag_id__in=tags).delete()
    through.objects.bulk_create(
        [through(article_id=article.pk, audiencetag_id=tag) for tag in tags], ignore_conflicts=True
    )


def enrich_article(
    article_id: int, *, force: bool = False, backend: str | None = None, now: datetime | None = None
) -> str:
    """Write (or, with force, rewrite) the card of one extracted article, holding its
    lease (aggregator.ingest.leases): an article another worker holds is left alone, and
    one a dead worker left enriching is enriched again."""
    with held(ARTICLE, [article_id]) as hold:
        if not hold:
            return "skipped: another worker holds it"
        article = Article.objects.filter(pk=article_id).select_related("source", "category").first()
        return enrich_held(article, force=force, backend=backend, now=now or timezone.now())


def enrich_held(
    article: Article | None, *, force: bool = False, backend: str | None = None, now: datetime
) -> str:
    """enrich_article for an article the caller holds (its lease) and has read."""
    if article is None:
        return "skipped: no such article"
    from_state = (
        (article.state,)
        if force and article.state in (State.EXTRACTED, State.ENRICHED)
        else (State.EXTRACTED, State.ENRICHING)
    )
    if not article.claim(from_state=from_state, to_state=State.ENRICHING, now=now):
        return "skipped: not waiting for enrichment"
    source = source_text(article)
    name = backend or settings.ENRICHMENT_BACKEND
    try:
        if name == "claude":
            return enrich_with_claude(article, source, now=now)
        enricher = get_enricher(name)
        draft = enricher.enrich(source)
    except (EnrichmentError, ValueError, KeyError, TypeError) as exc:
        # A bug or a bad configuration must not lose the article: it stays readable.
        logger.exception("enriching article %s failed", article.pk)
        Article.objects.filter(pk=article.pk, state=State.ENRICHING).update(
            state=State.ENRICHED, state_changed_at=timezone.now()
        )
        Insight.objects.filter(article=article).update(error=f"{name}: {exc}")
        return f"failed: {exc}"
    insight = store(article, source, draft, claude_status="", error="")
    return _summary(insight)


def _summary(insight: Insight | None) -> str:
    if insight is None:
        return "skipped: another worker finished it first"
    return (
        f"enriched by {insight.backend}: {len(insight.takeaways)} takeaways, "
        f"{len(insight.timeline)} timeline entries"
    )


def spent_today(now: datetime | None = None) -> float:
    start = (now or timezone.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    total = ApiCall.objects.filter(created_at__gte=start).aggregate(total=Sum("cost_usd"))["total"]
    return float(total or 0)


KEY_REFUSED_PAUSE = timedelta(minutes=10)


def key_refused_since(now: datetime) -> datetime | None:
    """When the API last refused the key (401), if that was the last call and less than
    KEY_REFUSED_PAUSE ago; else None."""
    last = ApiCall.objects.filter(batch_id="").order_by("-created_at").only("outcome", "created_at").first()
    if last is None or last.outcome != "auth" or last.created_at < now - KEY_REFUSED_PAUSE:
        return None
    return last.created_at


def waiting_for_claude() -> int:
    return (
        Insight.objects.filter(claude_status=Claude.QUEUED).count()
        + Article.objects.filter(state=State.EXTRACTED).count()
    )


def record_call(
    article: Article | None, usage, *, outcome: str, error: str = "", batch_id: str = ""
) -> ApiCall:
    return ApiCall.objects.create(
        article=article,
        backend="claude",
        model_name=settings.CLAUDE_MODEL,
        batch_id=batch_id,
        outcome=outcome,
        error=error[:2000],
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=usage.cost(batch=bool(batch_id)),
    )


def usage_fields(usage, *, batch: bool = False, calls: list | None = None) -> dict:
    """Tokens and dollars for a card; its cost is the sum of its calls' recorded costs
    when it took several (each rounded as recorded), so the two always agree."""
    cost = sum((c.usage.cost(batch=batch) for c in calls), Decimal(0)) if calls else usage.cost(batch=batch)
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cost_usd": cost,
    }


def extractive_fallback(
    article: Article, source: SourceText, *, from_state: str = State.ENRICHING, **extra
) -> Insight | None:
    draft = get_enricher("extractive").enrich(source)
    return store(article, source, draft, from_state=from_state, **extra)


def enrich_with_claude(
    article: Article, source: SourceText, *, now: datetime, allow_batch: bool = True
) -> str:
    from enrichment.backends.claude import ClaudeEnricher, ClaudeError

    previous = Insight.objects.filter(article=article).first()

    twin = None
    if article.text_hash:
        twin = (
            Insight.objects.filter(article__text_hash=article.text_hash, claude_status=Claude.DONE)
            .exclude(article=article)
            .first()
        )
    if twin is not None:
        draft = CardDraft(
            backend=twin.backend,
            model_name=twin.model_name,
            language=twin.language,
            title=twin.title,
            hook=twin.hook,
            what_changed=twin.what_changed,
            why_it_matters=twin.why_it_matters,
            what_next=twin.what_next,
            category=article.category.slug if article.category else "",
            audiences=dict(twin.audience_reasons),
            takeaways=[Takeaway(**t) for t in twin.takeaways],
            implications=[Implication(**i) for i in twin.implications],
            timeline=[TimelineEntry(**t) for t in twin.timeline],
            support=dict(twin.support),
            cites=dict(twin.support_sentences or {}),
        )
        insight = store(article, source, draft, claude_status=Claude.SHARED, error="", cost_usd=0)
        return (
            f"copied the card of syndicated twin #{twin.article_id}: no call" if insight else _summary(None)
        )

    if spent_today(now) >= settings.CLAUDE_DAILY_BUDGET:
        insight = extractive_fallback(
            article,
            source,
            claude_status=Claude.CAPPED,
            error=f"daily Claude budget of ${settings.CLAUDE_DAILY_BUDGET:g} reached; extractive card kept",
        )
        return "daily budget reached: extractive card" if insight else _summary(None)

    refused = key_refused_since(now)
    if refused is not None:
        # A revoked key fails every call: try again in a while, not once per article.
        retry_at = refused + KEY_REFUSED_PAUSE
        insight = extractive_fallback(
            article,
            source,
            claude_status=Claude.RETRY,
            retry_at=retry_at,
            error=f"Claude: the API key was refused at {timezone.localtime(refused):%H:%M}; "
            f"not tried again before {timezone.localtime(retry_at):%H:%M} (set a valid ANTHROPIC_API_KEY)",
        )
        return "API key refused: extractive card, Claude later" if insight else _summary(None)

    if allow_batch and waiting_for_claude() > settings.CLAUDE_BATCH_THRESHOLD:
        insight = extractive_fallback(article, source, claude_status=Claude.QUEUED, error="")
        return "queued for the next batch: extractive card meanwhile" if insight else _summary(None)

    # One retry budget per article (CLAUDE_MAX_CALLS HTTP calls): a card waiting for
    # another try continues the budget it started; any other run starts a fresh one.
    spent = previous.attempts if previous and previous.claude_status == Claude.RETRY else 0
    enricher = ClaudeEnricher()
    try:
        draft = enricher.enrich(source, max_calls=max(settings.CLAUDE_MAX_CALLS - spent, 1))
    except ClaudeError as exc:
        record_attempts(article, enricher.attempts)
        calls = spent + len(enricher.attempts)
        retry = exc.transient and calls < settings.CLAUDE_MAX_CALLS
        wait = timedelta(seconds=max(exc.retry_after or 0, 60 * 5 * 2 ** min(calls, 6)))
        insight = extractive_fallback(
            article,
            source,
            claude_status=Claude.RETRY if retry else Claude.FAILED,
            attempts=calls,
            retry_at=now + wait if retry else None,
            error=f"Claude: {exc}",
            **usage_fields(_total(enricher.attempts), calls=enricher.attempts),
        )
        return f"Claude failed ({exc.outcome}): {exc}; extractive card kept" if insight else _summary(None)
    record_attempts(article, enricher.attempts)
    insight = store(
        article,
        source,
        draft,
        claude_status=Claude.DONE,
        attempts=spent + len(enricher.attempts),
        retry_at=None,
        error="",
        batch_id="",
        **usage_fields(_total(enricher.attempts), calls=enricher.attempts),
    )
    return _summary(insight)


def record_attempts(article: Article | None, attempts: list) -> None:
    """One ApiCall row per HTTP call, failed ones included (they show on the desk)."""
    for attempt in attempts:
        record_call(article, attempt.usage, outcome=attempt.outcome, error=attempt.error)


def _total(attempts: list):
    from enrichment.backends.claude import Usage

    total = Usage()
    for attempt in attempts:
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            setattr(total, name, getattr(total, name) + getattr(attempt.usage, name))
    return total


def recover_stuck_enrichment(*, now: datetime | None = None) -> list[int]:
    """Cards due for another try at Claude: back to extracted, to be enqueued. (Articles
    a dead worker left, or whose task was lost, are found by their leases:
    aggregator.ingest.leases.sweep_articles.)"""
    now = now or timezone.now()
    if settings.ENRICHMENT_BACKEND != "claude":
        return []
    due = list(
        Insight.objects.filter(claude_status=Claude.RETRY, retry_at__lte=now).values_list(
            "article_id", flat=True
        )[:100]
    )
    Article.objects.filter(pk__in=due, state=State.ENRICHED).update(
        state=State.EXTRACTED, state_changed_at=now
    )
    Insight.objects.filter(article_id__in=due).update(retry_at=None)
    return due
