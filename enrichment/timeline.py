"""A story's timeline: its articles (each linking itself) and the dated passages of
their text (each carrying its passage), duplicates merged, oldest first."""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregator.models import Article, Story
from enrichment.grounding import normalize


@dataclass
class Entry:
    date: str
    text: str
    passage: str = ""
    article_id: int | None = None
    source_name: str = ""
    also: list[str] = field(default_factory=list)


def story_timeline(story: Story, *, limit: int = 30, articles: list[Article] | None = None) -> list[Entry]:
    """`articles`: the reports to read (default: every visible one), e.g. a bounded sample."""
    if articles is None:
        articles = list(
            Article.objects.visible()
            .filter(story=story)
            .select_related("source", "insight")
            .order_by("sort_at")
        )
    else:
        articles = sorted(articles, key=lambda a: a.sort_at)
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
            # Within one story, two publishers giving the same day describe the same event:
            # keep the first report and name the others. Vaguer dates merge on their words.
            key = (
                (item["date"], "")
                if len(item["date"]) == 10
                else (item["date"], normalize(item["text"])[:80])
            )
            same = entries.get(key) or next(
                (e for k, e in entries.items() if k[0] == item["date"] and _same_event(k[1], key[1])), None
            )
            if same is not None:
                if article.source.name not in (same.source_name, *same.also):
                    same.also.append(article.source.name)
                continue
            entries[key] = Entry(
                date=item["date"], text=item["text"], passage=item["passage"], source_name=article.source.name
            )
    return sorted(entries.values(), key=lambda e: (e.date, e.article_id is None))[:limit]


def _same_event(a: str, b: str) -> bool:
    if not a or not b or a.startswith("article:") or b.startswith("article:"):
        return False
    words_a, words_b = set(a.split()), set(b.split())
    return len(words_a & words_b) / (min(len(words_a), len(words_b)) or 1) >= 0.5
