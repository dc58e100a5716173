"""Enriching one article: build its source text, run the configured enricher, check
each claim against the text, and store the card. Safe to run twice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from aggregator.ingest.clean import strip_invisible
from aggregator.models import Article, AudienceTag, Category
from enrichment import text as tx
from enrichment.backends import CardDraft, EnrichmentError, SourceText, get_enricher
from enrichment.grounding import passage_in
from enrichment.models import Insight
from enrichment.related import related_ids

logger = logging.getLogger(__name__)
State = Article.State
HOOK_MAX = 90


def source_text(article: Article) -> SourceText:
    story = []
    if article.story_id:
        story = [
            (a.pk, a.published_at, a.title, a.body_text)
            for a in Article.objects.filter(story_id=article.story_id, sort_at__lte=article.sort_at)
            .exclude(pk=article.pk)
            .order_by("sort_at")[:20]
        ]
    return SourceText(
        article_id=article.pk,
        title=article.title,
        text=article.body_text,
        language=article.language or article.source.language,
        source_name=article.source.name,
        published_at=article.published_at,
        category_hint=article.category.slug if article.category else "",
        story=story,
        categories=dict(Category.objects.values_list("slug", "keywords")),
        audiences=dict(AudienceTag.objects.values_list("slug", "keywords")),
    )


def _clean(value: str, limit: int) -> str:
    return tx.clip(strip_invisible(value or ""), limit)


def grounded(draft: CardDraft, source: SourceText) -> CardDraft:
    """Keep only the claims whose passage is in the text we hold (or that link an
    article of the story); clean and bound every string."""
    corpus = [source.text] + [text for _pk, _when, _title, text in source.story]
    story_ids = {pk for pk, *_ in source.story}

    def found(passage: str) -> bool:
        return any(passage_in(passage, text) for text in corpus)

    draft.hook = _clean(draft.hook, HOOK_MAX)
    draft.title = _clean(draft.title, 500)
    for name in ("what_changed", "why_it_matters", "what_next"):
        setattr(draft, name, _clean(getattr(draft, name), 600))
    draft.takeaways = [t for t in draft.takeaways if found(t.passage)][:5]
    draft.implications = [i for i in draft.implications if found(i.passage)][:5]
    draft.timeline = [
        e for e in draft.timeline if (e.article_id in story_ids) or (e.passage and found(e.passage))
    ][:12]
    for item in draft.takeaways:
        item.text = _clean(item.text, 400)
    for item in draft.implications:
        item.prediction, item.reasoning = _clean(item.prediction, 400), _clean(item.reasoning, 400)
    for item in draft.timeline:
        item.text = _clean(item.text, 300)
    draft.audiences = {
        slug: _clean(reason, 200) for slug, reason in draft.audiences.items() if slug in source.audiences
    }
    return draft


def enrich_article(
    article_id: int, *, force: bool = False, backend: str | None = None, now: datetime | None = None
) -> str:
    """Write (or, with force, rewrite) the card of one extracted article."""
    now = now or timezone.now()
    article = Article.objects.filter(pk=article_id).select_related("source", "category").first()
    if article is None:
        return "skipped: no such article"
    from_state = (
        article.state if force and article.state in (State.EXTRACTED, State.ENRICHED) else State.EXTRACTED
    )
    if not article.claim(from_state=from_state, to_state=State.ENRICHING, now=now):
        return "skipped: not waiting for enrichment"
    enricher = get_enricher(backend)
    source = source_text(article)
    try:
        draft = grounded(enricher.enrich(source), source)
    except (EnrichmentError, ValueError, KeyError, TypeError) as exc:
        logger.exception("enriching article %s failed", article.pk)
        Article.objects.filter(pk=article.pk, state=State.ENRICHING).update(
            state=State.ENRICHED, state_changed_at=timezone.now()
        )
        Insight.objects.filter(article=article).update(error=f"{enricher.name}: {exc}")
        return f"failed: {exc}"
    article_related = related_ids(article)
    with transaction.atomic():
        Insight.objects.update_or_create(
            article=article,
            defaults={
                **draft.as_fields(),
                "related_ids": article_related,
                "error": "",
                "generated_at": timezone.now(),
            },
        )
        audiences = AudienceTag.objects.filter(slug__in=list(draft.audiences))
        article.audiences.set(audiences)
        changes = {"state": State.ENRICHED, "state_changed_at": timezone.now()}
        if draft.category and (article.category is None or article.category.slug != draft.category):
            category = Category.objects.filter(slug=draft.category).first()
            if category:
                changes["category"] = category
        Article.objects.filter(pk=article.pk, state=State.ENRICHING).update(**changes)
    return (
        f"enriched by {enricher.name}: {len(draft.takeaways)} takeaways, "
        f"{len(draft.timeline)} timeline entries"
    )


def recover_stuck_enrichment(*, now: datetime | None = None) -> list[int]:
    """Articles left enriching by a dead worker, or extracted but never enriched."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.STUCK_AFTER_MINUTES)
    Article.objects.filter(state=State.ENRICHING, state_changed_at__lt=cutoff).update(
        state=State.EXTRACTED, state_changed_at=cutoff
    )
    waiting = list(
        Article.objects.filter(state=State.EXTRACTED, state_changed_at__lte=cutoff).values_list(
            "pk", flat=True
        )[:500]
    )
    Article.objects.filter(pk__in=waiting, state=State.EXTRACTED).update(state_changed_at=now)
    return waiting
