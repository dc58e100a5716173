"""The front page (one card per story) at 1k, 10k and 100k stored articles, against the
per-article listing it replaced, in the same run; the 1k figures are the baseline.

The corpus grows the way a site's does (300 articles a day, so more articles = a longer
history); stories have one report (70%), two or three (20%) or four to six (10%).
Times are medians of repeated renders with the page cache off. At each size it also
times the story ranking of the front page's window joined with the story table in SQL
(before) against ranked_window (after), and search: the search page's best matches and
count, and its whole listing, as main had them at 21d0abd (every match read to rank it on
the head vector and count it, best_matches_main) against now (search.best_matches:
counted up to COUNT_LIMIT, beyond that the head matches and a window of the newest
articles), alternating, for one story's headline words, a common word, two words, another
word and a Chinese word. On PostgreSQL the plan of every listing order and of each
search's queries (before and after, EXPLAIN (ANALYZE, BUFFERS): the pages each reads) is
printed for the largest size; --search-only skips the listings. The corpus is vacuumed
after it is built or reused, as autovacuum would (the visibility map, GIN's pending list).

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
from contextlib import contextmanager
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
    ranked_stories,
    ranked_window,
    story_page,
    window_start,
)
from aggregator.models import Article, AudienceTag, Category, Source, Story  # noqa: E402
from aggregator.search import COUNT_LIMIT, SEARCH_DEPTH, best_matches, search_articles  # noqa: E402

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
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would (visibility map, GIN pending list)


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


def best_matches_main(found, depth: int) -> tuple[list[tuple], int]:
    """Search as main had it at 21d0abd (the baseline of the same run): the same matches,
    ranked with ts_rank on the head vector, and every match read to rank and count it
    (a window count in the same query), the best `depth` + 1 kept."""
    from django.contrib.postgres.search import SearchRank
    from django.db.models import Count, Window

    from aggregator.listings import story_key

    if "search_query" in found.query.annotations:  # PostgreSQL: main's rank, ts_rank as it is
        found = found.annotate(rank_main=SearchRank(F("head"), F("search_query"))).order_by(
            "-rank_main", "-sort_at", "-pk"
        )
    fields = ["key", "sort_at", "is_featured", "story_id"]
    fields += [name for name in ("rank_main", "rank") if name in found.query.annotations][:1]
    rows = list(
        found.annotate(key=story_key(), total=Window(Count("pk"))).values_list(*fields, "total")[: depth + 1]
    )
    return [row[:-1] for row in rows], (rows[0][-1] if rows else 0)


@contextmanager
def main_search():
    """The listing's code as it is, with main's way of reading the best matches."""
    import aggregator.search

    now = aggregator.search.best_matches
    aggregator.search.best_matches = best_matches_main
    try:
        yield
    finally:
        aggregator.search.best_matches = now


def search_listing_main(query: str) -> int:
    """The search page's listing with main's search (best_matches_main): the best
    SEARCH_DEPTH matches ranked into stories, every match counted, one page of cards."""
    with main_search():
        return search_listing(query)


def search_listing(query: str) -> int:
    """What the search page does now: the best SEARCH_DEPTH matches ranked into stories
    and the matches counted up to COUNT_LIMIT (story_page, counted), one page of cards."""
    page = story_page("1", search_articles(Article.objects.visible(), query), per_page=20, counted=True)
    list(page.object_list)
    return page.paginator.matches + page.paginator.more_matches  # COUNT_LIMIT + 1: more than that


def search_queries() -> list[str]:
    """One story's headline words (a precise search), a word of a few per cent of the
    articles (every made-up word is that common), two such words, another, and Chinese."""
    common = Counter(w for t in Article.objects.values_list("title", flat=True)[:3000] for w in t.split())
    word = next(w for w, _ in common.most_common() if w in WORDS)
    headline = Story.objects.order_by("pk").values_list("headline", flat=True)[Story.objects.count() // 2]
    return [headline, word, f"{word} {WORDS[7]}", WORDS[len(WORDS) // 2], "研究"]


def explain(label: str, queryset) -> None:
    sql, params = queryset.query.sql_with_params()
    explain_sql(label, sql, params)


def explain_sql(label: str, sql: str, params, settings: tuple[str, ...] = ()) -> tuple[float, int, int]:
    """Print the plan (EXPLAIN ANALYZE, BUFFERS); its execution time, pages read or hit
    and rows."""
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(f"SET {setting}")
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        lines = [line for (line,) in cursor.fetchall()]
        for setting in settings:
            cursor.execute(f"RESET {setting.split()[0]}")
    print(f"\n{label}:")
    for line in lines:
        print("  " + line)
    plan = "\n".join(lines)
    found = re.findall(r"Index (?:Only )?Scan (?:Backward )?using (\w+)|Bitmap Index Scan on (\w+)", plan)
    uses = sorted({a or b for a, b in found})
    seq = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    print(f"  -> indexes: {', '.join(uses) or 'none'}; sequential scans: {', '.join(seq) or 'none'}")
    top = re.search(r"Buffers: shared((?: \w+=\d+)*)", plan)
    pages = sum(int(n) for n in re.findall(r"=(\d+)", top.group(1))) if top else 0
    ms = float(re.search(r"Execution Time: ([\d.]+) ms", plan).group(1))
    return ms, pages, int(re.search(r"rows=(\d+) loops", lines[0]).group(1))


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
    """The plan of each search's queries, before (main: every match read to rank and
    count it) and after (best_matches: the count up to COUNT_LIMIT, the head matches, the
    newest text matches by windows), with the pages (buffers read or hit) each reads."""
    articles = Article.objects.visible()
    summary = []
    for query in search_queries():
        found = search_articles(articles, query)
        with main_search(), CaptureQueriesContext(connection) as before:
            best_matches_main(found, SEARCH_DEPTH)
        with CaptureQueriesContext(connection) as after:
            best_matches(found, SEARCH_DEPTH)
        figures = []
        for label, captured in (("before (main)", before), ("after", after)):
            ms = pages = queries = 0
            settings: tuple[str, ...] = ()
            for captured_query in captured.captured_queries:
                sql = captured_query["sql"]
                if sql.startswith("SET LOCAL"):  # for the next query (see best_matches)
                    settings = (sql.removeprefix("SET LOCAL "),)
                elif sql.startswith("SELECT"):
                    queries += 1
                    t, p, _ = explain_sql(f"search {query!r} {label}, query {queries}", sql, None, settings)
                    ms, pages, settings = ms + t, pages + p, ()
            figures.append((ms, pages, queries))
        summary.append((query, *figures))
    print("\nsearch queries, EXPLAIN (ANALYZE, BUFFERS) summed: before (main) -> after")
    for query, (ms0, pages0, n0), (ms1, pages1, n1) in summary:
        print(
            f"  {query!r:<26} {ms0:>7.1f} ms, {pages0:>5} pages in {n0} quer{'y' if n0 == 1 else 'ies'} -> "
            f"{ms1:>6.1f} ms, {pages1:>5} pages in {n1} queries   (load average {os.getloadavg()[0]:.1f})"
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
                    cursor.execute("VACUUM ANALYZE aggregator_article")
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
            before, after, page, rows_before, rows_after = [], [], [], [], []
            found = search_articles(Article.objects.visible(), query)
            search_listing_main(query), search_listing(query), client.get("/search/", {"q": query})  # warm
            for _ in range(args.repeat):
                rows_before.append(once_ms(lambda f=found: best_matches_main(f, SEARCH_DEPTH)))
                rows_after.append(once_ms(lambda f=found: best_matches(f, SEARCH_DEPTH)))
                before.append(once_ms(lambda q=query: search_listing_main(q)))
                after.append(once_ms(lambda q=query: search_listing(q)))
                page.append(once_ms(lambda q=query: client.get("/search/", {"q": q})))
            counted = search_listing(query)
            searches.append(
                (
                    query,
                    best_matches_main(search_articles(Article.objects.visible(), query), 0)[1],
                    f"more than {counted - 1:,}" if counted > COUNT_LIMIT else f"{counted:,}",
                    *(statistics.median(t) for t in (rows_before, rows_after, before, after, page)),
                )
            )
        baseline = baseline or front or 1.0
        print(
            f"{n:>9} {Story.objects.count():>8} | {front:>9.1f}ms {page5:>6.1f}ms | {stories_q:>9.1f}ms "
            f"{articles_q:>9.1f}ms | {joined:>13.1f}ms {windowed:>7.1f}ms | {queries}   "
            f"(front page x{front / baseline:.2f} of the first size; built in {built:.0f}s)"
        )
        for query, matches, counted, rows_before, rows_after, before, after, page in searches:
            print(
                f"{'':>9} search {query!r:<26} {matches:>6,} matches (counted now: {counted:>15}): "
                f"best matches and count: before (main) {rows_before:>6.1f}ms, after {rows_after:>5.1f}ms; "
                f"listing: before (main) {before:>6.1f}ms, after {after:>5.1f}ms ({before / after:.1f}x), "
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
