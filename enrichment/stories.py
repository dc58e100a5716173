"""Story clustering: every new article joins the story of its closest recent neighbour,
or starts one.

An article is reduced to distinctive keys: explicit dates (language-independent: "18
November 2026" and "2026年11月18日" give the same key), names and other capitalised or
alphanumeric Latin-script tokens (kept across languages: "Helios Labs", "Aurora-3"), and
content words of the headline. Candidates come from the StoryKey index within a time
window (cost independent of the corpus size); the score is an IDF-weighted cosine over
keys, the IDF from KeyStat. Clustering is serialized by a lock, so two workers never
open two stories for one event.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from aggregator.models import Article, KeyStat, Story, StoryKey
from enrichment import text as tx

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=4)
CANDIDATES = 40
THRESHOLD = 0.21  # same language: IDF-weighted cosine of content words
CROSS_THRESHOLD = 0.30  # dates and names shared across languages
MIN_SHARED = 3
MAX_KEYS = 60
_LOCK_ID = 0x5707  # pg_advisory_xact_lock key for clustering
# Latin-script tokens, also inside CJK text (where \b sees no boundary).
_NAME = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9])")
COMMON = set(
    """The This That These Those There Their They It Its In On At For From With And But Or As By To Of
    A An If When While After Before Since Until During Under Over About Into Than Then So Yet Not No
    He She We I You Our His Her Who What Where Why How Which Monday Tuesday Wednesday Thursday Friday
    Saturday Sunday January February March April May June July August September October November
    December Mr Ms Mrs Dr CEO CFO CTO Inc Ltd Co Der Die Das Ein Eine Und Im Am Zum Zur Bei Mit Von
    Auf Nach Wie Es Sie Er Wir Auch Noch Laut Seit Bis Für Über Unter""".split()
)


def story_keys(title: str, text: str) -> set[str]:
    body = f"{title}\n{text[:6000]}"
    keys: set[str] = set()
    for sentence in tx.sentences(body):
        for found in tx.find_dates(sentence):
            if len(found.value) == 10:
                keys.add("d:" + found.value)
    for match in _NAME.finditer(body):
        token = match.group(0)
        if token in COMMON or len(token) < 3 and not any(c.isdigit() for c in token):
            continue
        if (token[0].isupper() or any(c.isdigit() for c in token)) and not token.isdigit():
            keys.add("n:" + token.lower())
    if not tx.is_cjk(title):
        for word in tx.tokens(title):
            keys.add("w:" + word)
    return set(sorted(keys)[: MAX_KEYS * 4])


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
    # SQLite: the IMMEDIATE transaction already holds the database's write lock.


def _idf(keys: set[str]) -> dict[str, float]:
    stats = dict(KeyStat.objects.filter(key__in=[*keys, ""]).values_list("key", "articles"))
    total = max(stats.get("", 1), 1)
    return {k: math.log((total + 1) / (stats.get(k, 0) + 1)) + 0.1 for k in keys}


def body_words(title: str, text: str) -> set[str]:
    return set(tx.tokens(f"{title} {text[:6000]}"))


def _language(article: Article) -> str:
    code = (article.language or article.source.language or "").split("-")[0].lower()
    return code or ("zh" if tx.is_cjk(article.title + article.text[:500]) else "")


def entity_overlap(mine: set[str], theirs: set[str], idf: dict[str, float]) -> tuple[float, set[str]]:
    """IDF-weighted overlap coefficient over language-independent keys (dates, names):
    the weight shared over the weight of the smaller side, so a short or foreign-language
    report can match a long one. Fewer than MIN_SHARED shared keys score nothing."""
    mine = {k for k in mine if k[0] in "dn"}
    theirs = {k for k in theirs if k[0] in "dn"}
    shared = mine & theirs
    if len(shared) < MIN_SHARED:
        return 0.0, shared
    weight = lambda keys: sum(idf.get(k, 1.0) for k in keys)  # noqa: E731
    return weight(shared) / min(weight(mine), weight(theirs)), shared


def word_cosine(mine: set[str], theirs: set[str], idf: dict[str, float]) -> float:
    """Cosine of two texts' content words, weighted by IDF."""
    shared = mine & theirs
    if not shared:
        return 0.0
    norm = math.sqrt(sum(idf[w] ** 2 for w in mine) * sum(idf[w] ** 2 for w in theirs))
    return sum(idf[w] ** 2 for w in shared) / norm if norm else 0.0


def similarity(
    article: Article,
    keys: set[str],
    other: Article,
    other_keys: set[str],
    *,
    key_idf: dict[str, float],
    word_idf: dict[str, float],
    words: dict[int, set[str]],
) -> float:
    """Across languages, only dates and names can match. Within one language, the
    content words decide, or dates and names when the two share an explicit date."""
    overlap, shared = entity_overlap(keys, other_keys, key_idf)
    if _language(article) != _language(other):
        return overlap if overlap >= CROSS_THRESHOLD else 0.0
    cosine = word_cosine(words[article.pk], words[other.pk], word_idf)
    dated = any(k.startswith("d:") for k in shared)
    return max(cosine, overlap if dated and overlap >= CROSS_THRESHOLD else 0.0)


@dataclass
class Match:
    article_id: int
    story_id: int | None
    score: float


def best_match(article: Article, keys: set[str]) -> Match | None:
    """The most similar article of the window, if similar enough."""
    if not keys:
        return None
    hits = (
        StoryKey.objects.filter(
            key__in=keys, sort_at__gte=article.sort_at - WINDOW, sort_at__lte=article.sort_at + WINDOW
        )
        .exclude(article_id=article.pk)
        .values("article_id")
        .annotate(n=Count("id"))
        .order_by("-n")[:CANDIDATES]
    )
    candidate_ids = [h["article_id"] for h in hits]
    if not candidate_ids:
        return None
    theirs: dict[int, set[str]] = defaultdict(set)
    for article_id, key in StoryKey.objects.filter(article_id__in=candidate_ids).values_list(
        "article_id", "key"
    ):
        theirs[article_id].add(key)
    key_idf = _idf(keys.union(*theirs.values()))
    candidates = list(
        Article.objects.filter(pk__in=candidate_ids)
        .select_related("source")
        .only(
            "pk", "title", "text", "summary_html", "content_html", "language", "story_id", "source__language"
        )
    )
    # Content words, weighted by how rare they are across all articles (KeyStat "b:" rows).
    words = {a.pk: body_words(a.title, a.body_text) for a in [article, *candidates]}
    stats = dict(
        KeyStat.objects.filter(key__in=["", *{"b:" + w for ws in words.values() for w in ws}]).values_list(
            "key", "articles"
        )
    )
    total = max(stats.get("", 1), 1)
    word_idf = {
        w: math.log((total + 1) / (stats.get("b:" + w, 0) + 1)) + 0.1 for ws in words.values() for w in ws
    }
    scored = [
        Match(
            c.pk,
            c.story_id,
            similarity(article, keys, c, theirs[c.pk], key_idf=key_idf, word_idf=word_idf, words=words),
        )
        for c in candidates
    ]
    best = max(scored, key=lambda m: (m.score, -m.article_id))
    return best if best.score >= THRESHOLD else None


def _index(article: Article, keys: set[str]) -> None:
    """Add the article's keys to the index, and its keys and words to the counts, once
    (a second run changes nothing). A few queries, whatever the number of keys."""
    if StoryKey.objects.filter(article=article).exists():
        return
    StoryKey.objects.bulk_create([StoryKey(article=article, key=k, sort_at=article.sort_at) for k in keys])
    counted = ["", *keys, *("b:" + w for w in body_words(article.title, article.body_text))]
    present = set(KeyStat.objects.filter(key__in=counted).values_list("key", flat=True))
    KeyStat.objects.filter(key__in=present).update(articles=F("articles") + 1)
    KeyStat.objects.bulk_create([KeyStat(key=k, articles=1) for k in set(counted) - present])


def refresh_story(story: Story) -> None:
    articles = Article.objects.filter(story=story)
    first = articles.order_by(F("published_at").asc(nulls_last=True), "collected_at").first()
    stats = articles.aggregate(n=Count("id"), publishers=Count("source", distinct=True))
    if first is None:
        return
    Story.objects.filter(pk=story.pk).update(
        article_count=stats["n"],
        publisher_count=stats["publishers"],
        lead_article=first,
        headline=first.title[:500],
        first_seen_at=first.published_at or first.collected_at,
        last_seen_at=max(a.sort_at for a in articles.only("sort_at")),
    )


def _link_related(story: Story, article: Article, *, limit: int = 5) -> None:
    """The story's other cards list the newcomer first among their related updates."""
    from enrichment.models import Insight

    for insight in Insight.objects.filter(article__story=story).exclude(article=article):
        ids = [article.pk, *[pk for pk in insight.related_ids if pk != article.pk]][:limit]
        if ids != insight.related_ids:
            Insight.objects.filter(pk=insight.pk).update(related_ids=ids)


def assign_story(article_id: int, *, now: datetime | None = None) -> Story | None:
    """Put one article in a story (idempotent: an article keeps the story it has)."""
    with transaction.atomic():
        _lock()
        article = Article.objects.filter(pk=article_id).first()
        if article is None:
            return None
        if article.story_id:
            return article.story
        keys = story_keys(article.title, article.body_text)
        match = best_match(article, keys)
        _index(article, keys)
        story = None
        if match is not None:
            story = Story.objects.filter(pk=match.story_id).first() if match.story_id else None
            if story is None:  # the neighbour predates clustering: give it a story now
                neighbour = Article.objects.get(pk=match.article_id)
                story = Story.objects.create(
                    headline=neighbour.title[:500],
                    first_seen_at=neighbour.published_at or neighbour.collected_at,
                )
                Article.objects.filter(pk=neighbour.pk).update(story=story)
        if story is None:
            story = Story.objects.create(
                headline=article.title[:500],
                first_seen_at=article.published_at or article.collected_at or timezone.now(),
            )
        Article.objects.filter(pk=article.pk).update(story=story)
        refresh_story(story)
        story.refresh_from_db()
        if match is not None:
            _link_related(story, article)
        logger.debug("article %s → story %s (%s)", article.pk, story.pk, match)
        return story


def recluster(*, progress=None) -> int:
    """Cluster every article again from scratch, oldest first; returns the number of
    stories. Idempotent, and safe while workers run: each step takes the same lock."""
    ids = list(Article.objects.order_by("sort_at", "pk").values_list("pk", flat=True))
    with transaction.atomic():
        _lock()
        Article.objects.update(story=None)
        StoryKey.objects.all().delete()
        KeyStat.objects.all().delete()
    for n, article_id in enumerate(ids, 1):
        assign_story(article_id)
        if progress:
            progress(n, len(ids))
    with transaction.atomic():
        _lock()
        Story.objects.filter(articles__isnull=True).delete()
    return Story.objects.count()
