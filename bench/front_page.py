"""The front page (one card per story) at 1k, 10k and 100k stored articles, against the
per-article listing it replaced, in the same run; the 1k figures are the baseline.

The corpus grows the way a site's does (300 articles a day, so more articles = a longer
history); stories have one report (70%), two or three (20%) or four to six (10%).
Times are medians of repeated renders with the page cache off. At each size it also
times the story ranking of the front page's window joined with the story table in SQL
(before) against ranked_window (after), and search: the search page's listing as main
had it (every match ranked by story with ts_rank on the whole stored document, Chinese
matched as substrings of every article) against now (the best SEARCH_DEPTH matches ranked
on the head vector, counted in the same scan, Chinese through the index's character
pairs), alternating, for one story's headline words, a common word, two words, another
word and a Chinese word. On PostgreSQL the plan of every listing order and of each search
(before and after) is printed for the largest size; --search-only skips the listings.

    .venv/bin/python bench/front_page.py [--sizes 1000,10000,100000] [--repeat 7]
    DATABASE_URL=postgres://... .venv/bin/python bench/front_page.py --keep-database-url
    # build once, then measure again and again on the same corpus:
    DATABASE_URL=postgres://... .venv/bin/python bench/front_page.py --keep-database-url \
        --sizes 100000 --build-only
    DATABASE_URL=postgres://... .venv/bin/python bench/front_page.py --keep-database-url \
        --sizes 100000 --reuse
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

from aggregator.listings import (  # noqa: E402
    best_matches,
    listed_stories,
    ranked_stories,
    ranked_window,
    story_page,
    window_start,
)
from aggregator.models import Article, AudienceTag, Category, Source, Story  # noqa: E402
from aggregator.search import SEARCH_DEPTH, search_articles  # noqa: E402

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
    made = added = 0
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
        added += size
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
            if made // 10000 != (made - added) // 10000 or made >= n:
                print(f"  building: {made:,} of {n:,} articles", file=sys.stderr, flush=True)
            added = 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def reusable(n: int) -> bool:
    """A corpus this bench built, of `n` articles, is already in the database."""
    return (
        Article.objects.count() == n
        and Source.objects.filter(slug="p0", feed_url="http://127.0.0.1:9/0").exists()
        and Source.objects.count() == SOURCES
    )


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


def search_main(articles, query: str):
    """Search as main had it before the head vector and the character pairs (the
    baseline of the same run): matched through the GIN index, ranked with ts_rank on the
    whole stored document; Chinese words matched as substrings of every article."""
    if connection.vendor != "postgresql":
        return search_articles(articles, query)  # SQLite: the same FTS5 query as now
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVectorField
    from django.db.models.expressions import RawSQL

    words = query.split()
    unspaced = [w for w in words if re.search(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]", w)]
    for word in unspaced:
        articles = articles.filter(
            Q(title__icontains=word) | Q(excerpt__icontains=word) | Q(text__icontains=word)
        )
    indexed = [w for w in words if w not in unspaced]
    if not indexed:
        return articles.order_by("-sort_at", "-pk")
    document = RawSQL('"aggregator_article"."search_document"', [], output_field=SearchVectorField())
    search_query = SearchQuery(" ".join(indexed), search_type="websearch", config="simple")
    return (
        articles.alias(document=document)
        .filter(document=search_query)
        .annotate(rank=SearchRank(document, search_query))
        .order_by("-rank", "-sort_at")
    )


def search_listing_main(query: str) -> int:
    """The search page's listing as main had it: every match ranked by story in SQL
    (ranked_stories, the story table joined) and counted, then one page of cards."""
    page = Paginator(ranked_stories(search_main(Article.objects.visible(), query)), 20).get_page("1")
    list(listed_stories(list(page.object_list)))
    return page.paginator.count


def search_listing(query: str) -> int:
    """What the search page does now: the best SEARCH_DEPTH matches ranked into stories
    and every match counted (story_page, counted), one page of cards."""
    page = story_page("1", search_articles(Article.objects.visible(), query), per_page=20, counted=True)
    list(page.object_list)
    return page.paginator.matches


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
    story = Story.objects.order_by("-publisher_count", "pk").first()
    explain(
        "story page: its reports",
        articles.filter(story=story)
        .order_by(F("published_at").asc(nulls_last=True), "collected_at", "pk")
        .values("pk")[:30],
    )


def explain_search() -> None:
    """The plan of each search's heaviest query, before (main: every match ranked by
    story) and after (the best SEARCH_DEPTH matches, counted in the same scan)."""
    articles = Article.objects.visible()
    for query in search_queries():
        explain(
            f"search {query!r} before (main): every match ranked by story",
            ranked_stories(search_main(articles, query))[:20],
        )
        explain(
            f"search {query!r} after: the best {SEARCH_DEPTH} matches and the count",
            best_matches(search_articles(articles, query), SEARCH_DEPTH),
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
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a corpus already in the database when it has exactly the size asked for "
        "(a 100k build takes ~15 min on a loaded machine); only with a single size",
    )
    parser.add_argument("--search-only", action="store_true", help="time and explain search only")
    parser.add_argument(
        "--build-only", action="store_true", help="build the corpus (of the last size) and stop"
    )
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
        if args.reuse and reusable(n):
            print(f"reusing the {n} articles already in the database", flush=True)
            if connection.vendor == "postgresql":  # statistics of columns a migration rewrote
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE aggregator_article")
        else:
            build(n)
        built = time.perf_counter() - start
        if args.build_only:
            if n == sizes[-1]:
                print(f"built {n} articles ({Story.objects.count()} stories) in {built:.0f}s")
                return
            continue
        if args.search_only:
            front = queries = page5 = stories_q = articles_q = joined = windowed = 0.0
        else:
            front, queries = median_ms(lambda: client.get("/"), args.repeat)
            page5, _ = median_ms(lambda: client.get("/?page=5"), args.repeat)
            stories_q, _ = median_ms(lambda: story_listing(1), args.repeat)
            articles_q, _ = median_ms(lambda: per_article_listing(1), args.repeat)
            joined, _ = median_ms(ranking_joined, args.repeat)
            windowed, _ = median_ms(ranking_windowed, args.repeat)
        searches = []
        for query in search_queries():
            # Before and after alternate, so both see the same load.
            before, after, page = [], [], []
            search_listing_main(query), search_listing(query), client.get("/search/", {"q": query})  # warm
            for _ in range(args.repeat):
                before.append(once_ms(lambda q=query: search_listing_main(q)))
                after.append(once_ms(lambda q=query: search_listing(q)))
                page.append(once_ms(lambda q=query: client.get("/search/", {"q": q})))
            stories_before = search_listing_main(query)
            searches.append(
                (
                    query,
                    search_listing(query),
                    stories_before,
                    *(statistics.median(t) for t in (before, after, page)),
                )
            )
        baseline = baseline or front or 1.0
        print(
            f"{n:>9} {Story.objects.count():>8} | {front:>9.1f}ms {page5:>6.1f}ms | {stories_q:>9.1f}ms "
            f"{articles_q:>9.1f}ms | {joined:>13.1f}ms {windowed:>7.1f}ms | {queries}   "
            f"(front page x{front / baseline:.2f} of the first size; built in {built:.0f}s)"
        )
        for query, matches, stories, before, after, page in searches:
            print(
                f"{'':>9} search {query!r:<26} {matches:>6} matches, {stories:>5} stories: "
                f"before (main) {before:>8.1f}ms, after {after:>7.1f}ms ({before / after:.1f}x), "
                f"whole page after {page:.1f}ms   (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    if connection.vendor == "postgresql":
        print(f"\nEXPLAIN ANALYZE of each listing order at {sizes[-1]} articles")
        if not args.search_only:
            explain_listings()
        explain_search()


if __name__ == "__main__":
    main()
