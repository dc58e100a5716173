"""The front page (one card per story) at 1k, 10k and 100k stored articles, against the
per-article listing it replaced, in the same run; the 1k figures are the baseline.

The corpus grows the way a site's does (300 articles a day, so more articles = a longer
history); stories have one report (70%), two or three (20%) or four to six (10%).
Times are medians of repeated renders with the page cache off. At each size it also
times the story ranking of the front page's window joined with the story table in SQL
(before) against ranked_window (after), and search (the search page's counted story
listing) with the vector computed per row (before; icontains on SQLite) against the
stored index, for a common word, two words, a rarer word and a Chinese word. On
PostgreSQL the plan of every listing order and of search is printed for the largest size.

    .venv/bin/python bench/front_page.py [--sizes 1000,10000,100000] [--repeat 7]
    DATABASE_URL=postgres://... .venv/bin/python bench/front_page.py --keep-database-url
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="bench-front-"))
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
os.environ["PAGE_CACHE_SECONDS"] = "0"
os.environ.setdefault("DEBUG", "1")  # static files without a collected manifest
os.environ.pop("DATABASE_URL", None) if "--keep-database-url" not in sys.argv else None

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F, OuterRef, Q, Subquery  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from aggregator.listings import ranked_stories, ranked_window, story_page, window_start  # noqa: E402
from aggregator.models import Article, AudienceTag, Category, Source, Story  # noqa: E402
from aggregator.search import search_articles  # noqa: E402

PER_DAY = 300
SOURCES = 40
rng = random.Random(11)
# Words for titles and texts: a few thousand made-up words, so a search for one matches a
# realistic share of the archive (a few hundred of 100k), and texts as long as a report's.
_SYLLABLES = [
    "ka",
    "lo",
    "mer",
    "tin",
    "sa",
    "vor",
    "del",
    "qui",
    "ra",
    "ben",
    "tol",
    "us",
    "an",
    "gre",
    "pho",
]
WORDS = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(4000)})
ZH_WORDS = [
    "研究",
    "大学",
    "模型",
    "人工智能",
    "投资",
    "市场",
    "政府",
    "气候",
    "城市",
    "科学家",
    "数据",
    "芯片",
]
TEXT_WORDS = 250  # words in a report's text


def report_text(language: str) -> str:
    if language == "zh":
        return "。".join("".join(rng.choices(ZH_WORDS, k=8)) for _ in range(TEXT_WORDS // 8)) + "。"
    return " ".join(rng.choices(WORDS, k=TEXT_WORDS)) + "."


def build(n: int) -> None:
    if connection.vendor == "postgresql":  # the ORM's cascade reads every row first
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE aggregator_source, aggregator_story, aggregator_article CASCADE")
    Article.objects.all().delete()
    Story.objects.all().delete()
    Source.objects.all().delete()
    sources = Source.objects.bulk_create(
        Source(
            name=f"Publisher {i}",
            slug=f"p{i}",
            feed_url=f"http://127.0.0.1:9/{i}",
            language="zh" if i % 10 == 9 else "en",
        )
        for i in range(SOURCES)
    )
    categories = list(Category.objects.all())
    tags = list(AudienceTag.objects.all())
    Through = Article.audiences.through
    now = datetime.now(UTC)
    made = 0
    batch_stories, batch_articles = [], []
    while made < n:
        size = rng.choices([1, rng.randint(2, 3), rng.randint(4, 6)], weights=[70, 20, 10])[0]
        size = min(size, n - made)
        at = now - timedelta(days=made / PER_DAY, minutes=rng.randint(0, 60))
        publishers = rng.sample(sources, size)
        story = Story(
            headline=f"Story {made}",
            first_seen_at=at,
            last_seen_at=at,
            article_count=size,
            publisher_count=size,
        )
        batch_stories.append(
            (story, [(publisher, at - timedelta(minutes=k * 7)) for k, publisher in enumerate(publishers)])
        )
        made += size
        if len(batch_stories) >= 2000 or made >= n:
            Story.objects.bulk_create([s for s, _ in batch_stories])
            for story, reports in batch_stories:
                topic = " ".join(rng.choices(WORDS, k=3))
                category = rng.choice(categories)
                for publisher, when in reports:
                    batch_articles.append(
                        Article(
                            source=publisher,
                            guid=f"{story.pk}-{publisher.pk}",
                            url=f"https://{publisher.slug}.example/{story.pk}",
                            title=f"{story.headline}: {topic} by {publisher.name}",
                            excerpt="An excerpt of the report.",
                            text=report_text(publisher.language),
                            language=publisher.language,
                            category=category,
                            published_at=when,
                            collected_at=when,
                            sort_at=when,
                            story=story,
                            state=Article.State.ENRICHED,
                        )
                    )
            Article.objects.bulk_create(batch_articles, batch_size=2000)
            Through.objects.bulk_create(
                [Through(article_id=a.pk, audiencetag_id=rng.choice(tags).pk) for a in batch_articles],
                batch_size=2000,
            )
            batch_stories, batch_articles = [], []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def median_ms(fn, repeat: int) -> tuple[float, int]:
    fn()  # warm
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(ctx.captured_queries)


def once_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def per_article_listing(page: int) -> None:
    """The listing before stories: 20 articles a page (what it replaced)."""
    list(Paginator(Article.objects.visible().for_cards(), 20).get_page(page).object_list)


def story_listing(page: int) -> None:
    list(story_page(str(page), Article.objects.visible(), per_page=20).object_list)


def front_window() -> tuple:
    articles = Article.objects.visible()
    start = window_start(articles, 21)
    featured = list(Story.objects.filter(is_featured=True).values_list("pk", flat=True))
    return articles.filter(Q(sort_at__gte=start) | Q(is_featured=True) | Q(story_id__in=featured)), featured


def ranking_joined() -> None:
    """The ranking before: grouped in SQL with the story table joined (baseline)."""
    window, _ = front_window()
    list(ranked_stories(window)[:21])


def ranking_windowed() -> None:
    window, featured = front_window()
    ranked_window(window, featured)[:21]


def search_before(articles, query: str):
    """Search as it was: on PostgreSQL the vector computed for every row at query time,
    on SQLite icontains on every column (the baseline of the same run)."""
    if connection.vendor != "postgresql":
        condition = Q()
        for word in query.split():
            condition &= Q(title__icontains=word) | Q(excerpt__icontains=word) | Q(text__icontains=word)
        return articles.filter(condition)
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    vector = (
        SearchVector("title", weight="A", config="simple")
        + SearchVector("excerpt", weight="B", config="simple")
        + SearchVector("text", weight="C", config="simple")
    )
    search_query = SearchQuery(query, search_type="websearch", config="simple")
    return (
        articles.annotate(document=vector, rank=SearchRank(vector, search_query))
        .filter(document=search_query)
        .order_by("-rank", "-sort_at")
    )


def search_listing(search, query: str) -> int:
    """What the search page does: the matches ranked and counted by story, one page of cards."""
    page = story_page("1", search(Article.objects.visible(), query), per_page=20, counted=True)
    list(page.object_list)
    return page.paginator.count


def search_queries() -> list[str]:
    """One story's headline words (a precise search), a word of a few per cent of the
    articles (every made-up word is that common), two such words, another, and Chinese."""
    common = Counter(w for t in Article.objects.values_list("title", flat=True)[:3000] for w in t.split())
    word = next(w for w, _ in common.most_common() if w in WORDS)
    headline = Story.objects.order_by("pk").values_list("headline", flat=True)[Story.objects.count() // 2]
    return [headline, word, f"{word} {WORDS[7]}", WORDS[len(WORDS) // 2], "研究"]


def explain(label: str, queryset) -> None:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN ANALYZE " + sql, params)
        lines = [line for (line,) in cursor.fetchall()]
    print(f"\n{label}:")
    for line in lines:
        print("  " + line)
    plan = "\n".join(lines)
    found = re.findall(r"Index (?:Only )?Scan (?:Backward )?using (\w+)|Bitmap Index Scan on (\w+)", plan)
    uses = sorted({a or b for a, b in found})
    seq = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    print(f"  -> indexes: {', '.join(uses) or 'none'}; sequential scans: {', '.join(seq) or 'none'}")


def explain_listings() -> None:
    """The plan of every listing order's heaviest query, at the largest size."""
    articles = Article.objects.visible()
    window, featured = front_window()
    explain(
        "front page: the window start (newest first)", articles.order_by("-sort_at").values("sort_at")[:63]
    )
    explain(
        "front page: the window, with publisher counts (ranked_window)",
        window.order_by().annotate(**_window_annotations()).values_list("key", "sort_at", "is_featured", "n"),
    )
    explain("front page before: the window grouped with the story table joined", ranked_stories(window)[:21])
    category = Category.objects.order_by("pk").first()
    explain(
        f"category page ({category.slug}): window start",
        articles.filter(category=category).order_by("-sort_at").values("sort_at")[:63],
    )
    explain("category feed", articles.filter(category=category).order_by("-sort_at", "-pk").values("pk")[:50])
    tag = AudienceTag.objects.order_by("pk").first()
    explain(
        f"audience page ({tag.slug}): window start",
        articles.filter(audiences=tag).order_by("-sort_at").values("sort_at")[:63],
    )
    source = Source.objects.order_by("pk").first()
    explain(
        "source page (featured first)",
        articles.filter(source=source).order_by("-is_featured", "-sort_at", "-pk").values("pk")[:20],
    )
    explain("source feed", articles.filter(source=source).order_by("-sort_at", "-pk").values("pk")[:50])
    week_end = Article.objects.latest("sort_at").sort_at
    explain(
        "week page: window start",
        articles.filter(sort_at__gte=week_end - timedelta(days=7), sort_at__lt=week_end)
        .order_by("-sort_at")
        .values("sort_at")[:63],
    )
    query = search_queries()[0]
    explain(f"search {query!r}: stored vector", search_articles(articles, query).values("pk"))
    explain(f"search {query!r} before: vector per row", search_before(articles, query).values("pk"))
    story = Story.objects.order_by("-publisher_count", "pk").first()
    explain(
        "story page: its reports",
        articles.filter(story=story)
        .order_by(F("published_at").asc(nulls_last=True), "collected_at", "pk")
        .values("pk")[:30],
    )


def _window_annotations() -> dict:
    from aggregator.listings import story_key

    return {
        "key": story_key(),
        "n": Subquery(Story.objects.filter(pk=OuterRef("story_id")).values("publisher_count")[:1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep-database-url", action="store_true")
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    client = Client()
    print(f"database: {connection.vendor}; medians of {args.repeat} runs, page cache off")
    print(
        f"{'articles':>9} {'stories':>8} | {'front page':>11} {'page 5':>8} | {'story query':>11} "
        f"{'per-article':>11} | {'ranking: joined':>15} {'windowed':>9} | queries"
    )
    baseline = None
    sizes = [int(s) for s in args.sizes.split(",")]
    for n in sizes:
        start = time.perf_counter()
        build(n)
        built = time.perf_counter() - start
        front, queries = median_ms(lambda: client.get("/"), args.repeat)
        page5, _ = median_ms(lambda: client.get("/?page=5"), args.repeat)
        stories_q, _ = median_ms(lambda: story_listing(1), args.repeat)
        articles_q, _ = median_ms(lambda: per_article_listing(1), args.repeat)
        joined, _ = median_ms(ranking_joined, args.repeat)
        windowed, _ = median_ms(ranking_windowed, args.repeat)
        searches = []
        for query in search_queries():
            # The baseline once, without a warm-up: at 100k it takes seconds a run. A Chinese
            # word has no baseline: the per-row vector never found it inside a sentence.
            before = (
                None
                if re.search(r"[\u4e00-\u9fff]", query)
                else once_ms(lambda q=query: search_listing(search_before, q))
            )
            after, _ = median_ms(lambda q=query: search_listing(search_articles, q), args.repeat)
            page, _ = median_ms(lambda q=query: client.get("/search/", {"q": q}), args.repeat)
            searches.append((query, search_listing(search_articles, query), before, after, page))
        baseline = baseline or front
        print(
            f"{n:>9} {Story.objects.count():>8} | {front:>9.1f}ms {page5:>6.1f}ms | {stories_q:>9.1f}ms "
            f"{articles_q:>9.1f}ms | {joined:>13.1f}ms {windowed:>7.1f}ms | {queries}   "
            f"(front page x{front / baseline:.2f} of the first size; built in {built:.0f}s)"
        )
        for query, stories, before, after, page in searches:
            print(
                f"{'':>9} search {query!r:<26} {stories:>6} stories: "
                + (f"before {before:>8.1f}ms, " if before else f"{'before —,':>17} ")
                + f"stored index {after:>7.1f}ms"
                + (f" ({before / after:.1f}x)" if before else "")
                + f", whole page {page:.1f}ms"
            )
    if connection.vendor == "postgresql":
        print(f"\nEXPLAIN ANALYZE of each listing order at {sizes[-1]} articles")
        explain_listings()


if __name__ == "__main__":
    main()
