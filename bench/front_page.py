"""The front page (one card per story) at 1k, 10k and 100k stored articles, against the
per-article listing it replaced, in the same run; the 1k figures are the baseline.

The corpus grows the way a site's does (300 articles a day, so more articles = a longer
history); stories have one report (70%), two or three (20%) or four to six (10%).
Times are medians of repeated renders with the page cache off; the query plan of the
story ranking is printed for the largest size.

    .venv/bin/python bench/front_page.py [--sizes 1000,10000,100000] [--repeat 7]
    DATABASE_URL=postgres://... .venv/bin/python bench/front_page.py --keep-database-url
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
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
from django.db.models import Q  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from aggregator.listings import ranked_stories, story_page, window_start  # noqa: E402
from aggregator.models import Article, Source, Story  # noqa: E402

PER_DAY = 300
SOURCES = 40
rng = random.Random(11)


def build(n: int) -> None:
    Article.objects.all().delete()
    Story.objects.all().delete()
    Source.objects.all().delete()
    sources = Source.objects.bulk_create(
        Source(name=f"Publisher {i}", slug=f"p{i}", feed_url=f"http://127.0.0.1:9/{i}", language="en")
        for i in range(SOURCES)
    )
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
                for publisher, when in reports:
                    batch_articles.append(
                        Article(
                            source=publisher,
                            guid=f"{story.pk}-{publisher.pk}",
                            url=f"https://{publisher.slug}.example/{story.pk}",
                            title=f"{story.headline} by {publisher.name}",
                            excerpt="An excerpt of the report.",
                            text="Text. " * 150,
                            language="en",
                            published_at=when,
                            collected_at=when,
                            sort_at=when,
                            story=story,
                            state=Article.State.ENRICHED,
                        )
                    )
            Article.objects.bulk_create(batch_articles, batch_size=2000)
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


def per_article_listing(page: int) -> None:
    """The listing before stories: 20 articles a page (what it replaced)."""
    list(Paginator(Article.objects.visible().for_cards(), 20).get_page(page).object_list)


def story_listing(page: int) -> None:
    list(story_page(str(page), Article.objects.visible(), per_page=20).object_list)


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
        f"{'per-article':>11} | queries"
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
        baseline = baseline or front
        print(
            f"{n:>9} {Story.objects.count():>8} | {front:>9.1f}ms {page5:>6.1f}ms | {stories_q:>9.1f}ms "
            f"{articles_q:>9.1f}ms | {queries}   (x{front / baseline:.2f} of the first size; built in {built:.0f}s)"
        )
    if connection.vendor == "postgresql":
        articles = Article.objects.visible()
        start = window_start(articles, 21)
        featured = list(Story.objects.filter(is_featured=True).values_list("pk", flat=True))
        recent = Q(sort_at__gte=start) | Q(is_featured=True) | Q(story_id__in=featured)
        sql, params = ranked_stories(articles.filter(recent))[:21].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + sql, params)
            print(f"\nEXPLAIN ANALYZE of the story ranking (page 1 window) at {sizes[-1]} articles:")
            for (line,) in cursor.fetchall():
                print("  " + line)


if __name__ == "__main__":
    main()
