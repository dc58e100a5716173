"""A story's timeline: its articles (each linking itself) and the dated passages of
their text (each carrying its passage), duplicates merged, oldest first."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.models import Article, Story
from enrichment.grounding import normalize


@dataclass
class Entry:
    date: str
    text: str
    passage: str = ""
    article_id: int | None = None
    source_name: str = ""


def story_timeline(story: Story, *, limit: int = 30) -> list[Entry]:
    articles = list(
        Article.objects.visible().filter(story=story).select_related("source", "insight").order_by("sort_at")
    )
    entries: dict[tuple[str, str], Entry] = {}
    for article in articles:
        when = article.published_at or article.collected_at
        entries[(when.date().isoformat(), f"article:{article.pk}")] = Entry(
            date=when.date().isoformat(),
            text=f"{article.source.name}: {article.title}",
            article_id=article.pk,
            source_name=article.source.name,
        )
    for article in articles:
        insight = getattr(article, "insight", None)
        for item in insight.timeline if insight else []:
            if item.get("article_id") or not item.get("passage") or item.get("supported") is False:
                continue
            key = (item["date"], normalize(item["text"])[:80])
            # Two publishers dating the same event: keep one entry, the first reported.
            if any(k[0] == item["date"] and _same_event(k[1], key[1]) for k in entries):
                continue
            entries[key] = Entry(
                date=item["date"], text=item["text"], passage=item["passage"], source_name=article.source.name
            )
    return sorted(entries.values(), key=lambda e: (e.date, e.article_id is None))[:limit]


def _same_event(a: str, b: str) -> bool:
    if a.startswith("article:") or b.startswith("article:"):
        return False
    words_a, words_b = set(a.split()), set(b.split())
    return len(words_a & words_b) / (min(len(words_a), len(words_b)) or 1) >= 0.5
