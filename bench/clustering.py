"""Cost of clustering one new article and of loading its related updates, at 1k, 10k
and 100k stored articles. The corpus grows the way a site's does (a steady number of
articles a day, so more articles = a longer history); the 1k figures are the baseline
the larger corpora are compared against, in the same run.

    .venv/bin/python bench/clustering.py [--sizes 1000,10000,100000] [--probes 30]
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
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="bench-clustering-"))
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
os.environ.pop("DATABASE_URL", None) if "--keep-database-url" not in sys.argv else None

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from aggregator.models import Article, KeyStat, Source, Story, StoryKey  # noqa: E402
from enrichment.related import related_ids  # noqa: E402
from enrichment.stories import assign_story, body_words, story_keys  # noqa: E402

PER_DAY = 300
rng = random.Random(7)
NAMES = [
    f"{a}{b}"
    for a in ("Hel", "Nor", "Str", "Bri", "Lin", "Que", "Kes", "Vel", "Ash", "Tor", "Mar", "Zen")
    for b in ("ios", "vale", "atus", "well", "port", "rra", "trel", "mar", "by", "ren", "ova", "ith")
]
WORDS = [
    "market",
    "model",
    "city",
    "council",
    "chip",
    "storage",
    "battery",
    "outage",
    "strike",
    "recall",
    "breach",
    "funding",
    "research",
    "launch",
    "report",
    "plan",
    "vote",
    "price",
    "users",
    "data",
    "cloud",
    "energy",
    "court",
    "study",
    "team",
    "factory",
]


def synthetic(n: int, day: int) -> tuple[str, str]:
    names = rng.sample(NAMES, 4)
    words = rng.sample(WORDS, 6)
    date = (datetime(2026, 1, 1) + timedelta(days=day)).strftime("%-d %B %Y")
    title = f"{names[0]} {words[0]} {words[1]} in {names[1]}"
    text = (
        f"{names[0]} said on {date} that the {words[2]} {words[3]} would change. "
        f"{names[2]} and {names[3]} disagreed about the {words[4]}. The {words[5]} is expected to follow. "
    ) * 3
    return title, text


def fill(total: int, source: Source) -> None:
    """Grow the corpus to `total` articles, indexed as clustering would have indexed them."""
    have = Article.objects.count()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch_articles, batch_keys = [], []
    stats: dict[str, int] = dict(KeyStat.objects.values_list("key", "articles"))
    for n in range(have, total):
        when = start + timedelta(days=n / PER_DAY)
        title, text = synthetic(n, n // PER_DAY)
        story = Story(
            headline=title, first_seen_at=when, last_seen_at=when, article_count=1, publisher_count=1
        )
        batch_articles.append(
            (
                Article(
                    source=source,
                    guid=f"g{n}",
                    url=f"http://127.0.0.1:9/{n}",
                    title=title,
                    text=text,
                    published_at=when,
                    collected_at=when,
                    sort_at=when,
                    state=Article.State.ENRICHED,
                ),
                story,
                story_keys(title, text),
            )
        )
        if len(batch_articles) == 5000 or n == total - 1:
            stories = Story.objects.bulk_create([s for _a, s, _k in batch_articles])
            for (article, _s, _k), story in zip(batch_articles, stories, strict=True):
                article.story = story
            saved = Article.objects.bulk_create([a for a, _s, _k in batch_articles])
            for article, (_a, _s, keys) in zip(saved, batch_articles, strict=True):
                batch_keys.extend(StoryKey(article=article, key=k, sort_at=article.sort_at) for k in keys)
                words = body_words(article.title, article.text)
                for k in [*keys, "", *("b:" + w for w in words)]:
                    stats[k] = stats.get(k, 0) + 1
            StoryKey.objects.bulk_create(batch_keys, batch_size=5000)
            batch_articles, batch_keys = [], []
            print(f"  … {n + 1:,} articles", file=sys.stderr, flush=True)
    KeyStat.objects.all().delete()
    KeyStat.objects.bulk_create([KeyStat(key=k, articles=v) for k, v in stats.items()], batch_size=5000)


def probe(source: Source, probes: int) -> dict[str, float]:
    """Cluster `probes` new articles (at the newest end of the corpus) and load their related updates."""
    newest = Article.objects.order_by("-sort_at").first().sort_at
    cluster_ms, related_ms, queries = [], [], []
    made = []
    for i in range(probes):
        title, text = synthetic(i, 0)
        article = Article.objects.create(
            source=source,
            guid=f"probe-{newest.timestamp()}-{i}",
            url=f"http://127.0.0.1:9/p{newest.timestamp()}-{i}",
            title=title,
            text=text,
            published_at=newest,
            sort_at=newest,
            state=Article.State.EXTRACTED,
        )
        made.append(article)
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            assign_story(article.pk)
            cluster_ms.append((time.perf_counter() - t0) * 1000)
        queries.append(len(ctx.captured_queries))
        article.refresh_from_db()
        t0 = time.perf_counter()
        related_ids(article)
        related_ms.append((time.perf_counter() - t0) * 1000)
    for article in made:  # leave the corpus as it was for the next size
        StoryKey.objects.filter(article=article).delete()
        story_id = article.story_id
        article.delete()
        Story.objects.filter(pk=story_id, articles__isnull=True).delete()
    return {
        "cluster_ms": statistics.median(cluster_ms),
        "related_ms": statistics.median(related_ms),
        "queries": statistics.median(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--probes", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    call_command("migrate", verbosity=0)
    source, _ = Source.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "feed_url": "http://127.0.0.1:9/"}
    )
    print(
        f"database: {connection.vendor}; {PER_DAY} articles a day; median of {args.probes} new articles per size"
    )
    print(f"{'stored':>10} {'cluster ms':>11} {'queries':>8} {'related ms':>11} {'vs baseline':>12}")
    baseline = None
    for size in sizes:
        fill(size, source)
        result = probe(source, args.probes)
        baseline = baseline or result
        ratio = result["cluster_ms"] / baseline["cluster_ms"]
        print(
            f"{size:>10,} {result['cluster_ms']:>11.2f} {result['queries']:>8.0f} {result['related_ms']:>11.2f} "
            f"{ratio:>11.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
