"""Related updates: the story's other articles first, then close neighbours from the
last days. Computed once when an article is enriched, stored on its insight."""

from __future__ import annotations

from datetime import timedelta

from aggregator.models import Article
from enrichment import text as tx
from enrichment.stories import around

WINDOW = timedelta(days=7)
CANDIDATES = 300
LIMIT = 5
MIN_OVERLAP = 0.12  # Jaccard overlap of content words


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
    mine = set(tx.keyword_counts(f"{article.title} {article.title} {article.body_text[:3000]}"))
    if not mine:
        return ids
    low, high = around(article.sort_at, WINDOW)
    candidates = (
        Article.objects.visible()
        .filter(sort_at__gte=low, sort_at__lte=high)
        .exclude(pk__in=[article.pk, *ids])
        .only("pk", "title", "text", "summary_html")
        .order_by("-sort_at")[:CANDIDATES]
    )
    scored = []
    for other in candidates:
        theirs = set(tx.keyword_counts(f"{other.title} {other.text[:3000] or other.summary_html}"))
        overlap = len(mine & theirs) / (len(mine | theirs) or 1)
        if overlap >= MIN_OVERLAP:
            scored.append((overlap, other.pk))
    scored.sort(reverse=True)
    return ids + [pk for _score, pk in scored[: limit - len(ids)]]
