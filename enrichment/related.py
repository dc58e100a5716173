"""Related updates: the story's other articles first, then close neighbours from the
last days. Computed once when an article is enriched, stored on its insight."""

from __future__ import annotations

import functools
from datetime import timedelta

from django.db.models.functions import Substr

from aggregator.models import Article
from enrichment import text as tx
from enrichment.stories import around

WINDOW = timedelta(days=7)
CANDIDATES = 300
LIMIT = 5
MIN_OVERLAP = 0.12  # Jaccard overlap of content words
HEAD = 3000  # characters of a candidate's text compared


@functools.lru_cache(maxsize=1024)
def _keywords(text: str) -> frozenset[str]:
    """A candidate's content words. Every article enriched in the same days compares
    itself with the same recent candidates: each is tokenized once per process."""
    return frozenset(tx.keyword_counts(text))


def related_ids(article: Article, *, limit: int = LIMIT) -> list[int]:
    ids: list[int] = []
    if article.story_id:
        ids = list(
            Article.objects.visible()
            .filter(story_id=article.story_id)
            .exclude(pk=article.pk)
            .order_by("-sort_at")
            .values_list("pk", flat=True)[:limit]
        )
    if len(ids) >= limit:
        return ids
    mine = set(tx.keyword_counts(f"{article.title} {article.title} {article.body_text[:HEAD]}"))
    if not mine:
        return ids
    low, high = around(article.sort_at, WINDOW)
    candidates = (
        Article.objects.visible()
        .filter(sort_at__gte=low, sort_at__lte=high)
        .exclude(pk__in=[article.pk, *ids])
        .annotate(head=Substr("text", 1, HEAD))
        .order_by("-sort_at")
        .values_list("pk", "title", "head", "summary_html")[:CANDIDATES]
    )
    scored = []
    for pk, title, head, summary_html in candidates:
        theirs = _keywords(f"{title} {head or summary_html}")
        overlap = len(mine & theirs) / (len(mine | theirs) or 1)
        if overlap >= MIN_OVERLAP:
            scored.append((overlap, pk))
    scored.sort(reverse=True)
    return ids + [pk for _score, pk in scored[: limit - len(ids)]]
