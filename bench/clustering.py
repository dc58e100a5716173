"""Clustering and the front page at 1k, 10k and 100k stored articles.

For each size it prints:
- clustering one new article: median ms and queries, one worker alone; then two worker
  processes clustering different new articles at the same time (median ms each, and
  throughput against one worker), and the same two workers made to take one global
  lock first, as clustering did before (the baseline of this run);
- related updates of a new article (median ms);
- the front page for an anonymous reader (page cache off): median ms, queries, and
  EXPLAIN ANALYZE of its slowest query.
The smallest size is the baseline the others are compared with.

The corpus grows the way a site's does: PER_DAY articles a day, each a report of an
event (a few reports per event, from a pool of fresh names) that shares dates, common
names and headline words with the rest of the day's news.

    DATABASE_URL=postgres://... .venv/bin/python bench/clustering.py [--sizes 1000,10000,100000]
        [--probes 40]

Without DATABASE_URL it runs on a temporary SQLite file, one worker only (SQLite
serializes writers, so there is nothing to measure about two).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="bench-clustering-"))
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
os.environ["PAGE_CACHE_SECONDS"] = "0"  # measure the page, not the cache
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# Pages render without a collectstatic run (the manifest storage would need one).
settings.STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from aggregator.models import Article, ArticleVector, KeyStat, Source, Story, StoryKey  # noqa: E402
from enrichment.related import related_ids  # noqa: E402
from enrichment.stories import Vector, assign_story, count_keys, place_article  # noqa: E402

PER_DAY = 300
START = datetime(2026, 1, 1, tzinfo=UTC)
_SYL = [
    "ka",
    "lo",
    "mer",
    "tis",
    "va",
    "dun",
    "ri",
    "so",
    "bel",
    "tor",
    "an",
    "qui",
    "zel",
    "hom",
    "pra",
    "ve",
]
COMMON_NAMES = ["Norland", "Eastmere", "Brightholm", "Helios", "Stratus", "Calder", "Ravensfjord", "Quorra"]
WORDS = (
    "market model city council chip storage battery outage strike recall breach funding research launch "
    "report plan vote price users data cloud energy court study team factory bridge flood school budget "
    "airline route hospital insurer contract satellite rocket election mayor union teachers pay tram "
    "depot bank rate profit loss shares merger takeover licence regulator fine law parliament minister "
    "police fire storm rain harvest farm port ship cargo train station airport museum library festival "
    "concert film book prize award league match coach player season stadium transfer injury record"
).split()


def name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYL) for _ in range(3)).capitalize()


def synthetic(event: int, report: int, day: int) -> tuple[str, str]:
    """One report of one event: the event's own names and words, plus the day's date and
    common names that many other articles share."""
    rng = random.Random(event)
    people, places = [name(rng) for _ in range(3)], [name(rng) for _ in range(2)]
    words = rng.sample(WORDS, 8)
    other = random.Random(event * 1000 + report)
    common = other.sample(COMMON_NAMES, 2)
    date = (START + timedelta(days=day)).strftime("%-d %B %Y")
    title = f"{people[0]} {words[0]} {words[1]} in {places[0]}" + (
        f" ({other.choice(WORDS)})" if report else ""
    )
    text = (
        f"{people[0]} said on {date} that the {words[2]} {words[3]} in {places[0]} would change. "
        f"{people[1]} of {common[0]} and {people[2]} disagreed about the {words[4]} and the {words[5]}. "
        f"Officials in {places[1]} expect the {words[6]} to follow, {common[1]} said. "
        f"The {other.choice(WORDS)} and the {other.choice(WORDS)} were also discussed. "
    ) * 2
    return title, text


def fill(total: int, source: Source) -> None:
    """Grow the corpus to `total` articles, in stories, indexed as clustering indexes
    them (keys, vectors weighted with the counts of their time, KeyStat)."""
    have = Article.objects.count()
    stats: dict[str, int] = dict(KeyStat.objects.values_list("key", "articles"))
    batch: list[tuple[Article, int, Vector]] = []
    stories: dict[int, Story] = {}
    for n in range(have, total):
        event, report = n // 3, n % 3  # three reports per event, one after the other
        when = START + timedelta(days=n / PER_DAY)
        title, text = synthetic(event, report, n // PER_DAY)
        article = Article(
            source=source,
            guid=f"g{n}",
            url=f"http://127.0.0.1:9/{n}",
            title=title,
            text=text,
            published_at=when,
            collected_at=when,
            sort_at=when,
            state=Article.State.ENRICHED,
        )
        batch.append((article, event, None))
        if len(batch) == 2000 or n == total - 1:
            new_events = {e for _a, e, _v in batch if e not in stories}
            made = Story.objects.bulk_create(
                [
                    Story(headline=f"event {e}", first_seen_at=START, last_seen_at=START)
                    for e in sorted(new_events)
                ]
            )
            stories.update(zip(sorted(new_events), made, strict=True))
            vectors = []
            for article, event, _v in batch:
                article.story = stories[event]
                vectors.append(_vector(article, stats))
            saved = Article.objects.bulk_create([a for a, _e, _v in batch])
            keys, rows = [], []
            for article, vector in zip(saved, vectors, strict=True):
                keys.extend(StoryKey(article=article, key=k, sort_at=article.sort_at) for k in vector.keys)
                rows.append(ArticleVector(article=article, counted=True, **vector.fields()))
                for k in ["", *vector.keys, *("b:" + w for w in vector.words)]:
                    stats[k] = stats.get(k, 0) + 1
            StoryKey.objects.bulk_create(keys, batch_size=5000)
            ArticleVector.objects.bulk_create(rows, batch_size=2000)
            batch = []
            print(f"  … {n + 1:,} articles", file=sys.stderr, flush=True)
    for story in stories.values():
        Story.objects.filter(pk=story.pk).update(article_count=3, publisher_count=1)
    KeyStat.objects.all().delete()
    KeyStat.objects.bulk_create([KeyStat(key=k, articles=v) for k, v in stats.items()], batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE") if connection.vendor == "postgresql" else None


def _vector(article: Article, stats: dict[str, int]) -> Vector:
    """Vector.of without the KeyStat query (fill keeps the counts in memory)."""
    import math

    from enrichment.stories import story_keys, top_words

    keys, words = story_keys(article.title, article.text), top_words(article.title, article.text)
    total = max(stats.get("", 1), 1)
    idf = lambda k: round(math.log((total + 1) / (stats.get(k, 0) + 1)) + 0.1, 4)  # noqa: E731
    weights = {w: idf("b:" + w) for w in words}
    return Vector(
        keys={k: idf(k) for k in keys},
        words=weights,
        words_norm=math.sqrt(sum(v * v for v in weights.values())),
        language="",
    )


def new_articles(source: Source, count: int, tag: str, *, offset: int = 0) -> list[int]:
    """New reports at the newest end: every other one a follow-up of a recent event (of
    its own: `offset` keeps two workers' follow-ups to different events)."""
    newest = Article.objects.order_by("-sort_at").first()
    day = int((newest.sort_at - START).total_seconds() // 86400)
    last_event = Article.objects.count() // 3
    ids = []
    for i in range(count):
        event = (
            last_event - 1 - i - offset * count
            if i % 2
            else 10_000_000 + zlib.crc32(tag.encode()) % 1_000_000 * 100 + i
        )
        title, text = synthetic(event, 3 + i, day)
        ids.append(
            Article.objects.create(
                source=source,
                guid=f"probe-{tag}-{i}",
                url=f"http://127.0.0.1:9/p-{tag}-{i}",
                title=title,
                text=text,
                published_at=newest.sort_at,
                sort_at=newest.sort_at,
                state=Article.State.EXTRACTED,
            ).pk
        )
    return ids


def cluster_all(ids: list[int], global_lock: bool = False) -> list[float]:
    """Cluster each article as a worker does; returns the ms of each."""
    times = []
    for article_id in ids:
        t0 = time.perf_counter()
        if global_lock:  # the way it was: every worker queued on one advisory lock
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x5707])
                place_article(article_id)
            count_keys(article_id)
        else:
            assign_story(article_id)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _worker(ids: list[int], global_lock: bool, start, out) -> None:
    connections.close_all()  # a fresh connection of its own after the fork
    start.wait()
    out.put(cluster_all(ids, global_lock))
    connections.close_all()


def concurrently(groups: list[list[int]], global_lock: bool = False) -> tuple[list[float], float]:
    """Each group clustered by its own worker process, all at once; (ms each, wall s)."""
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(len(groups) + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(g, global_lock, start, out)) for g in groups]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    times = [t for _ in procs for t in out.get()]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return times, wall


def remove(ids: list[int]) -> None:
    """Leave the corpus as it was for the next size (KeyStat uncounted on delete)."""
    stories = set(Article.objects.filter(pk__in=ids).values_list("story_id", flat=True))
    Article.objects.filter(pk__in=ids).delete()
    Story.objects.filter(pk__in=stories, articles__isnull=True).delete()


def front_page(repeat: int = 5) -> tuple[float, int, str]:
    client = Client()
    client.get("/")  # warm up
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = client.get("/")
            times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
    plan = ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + slowest["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
    else:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + slowest["sql"])
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    return (
        statistics.median(times),
        len(ctx.captured_queries),
        f"slowest query ({slowest['time']} s):\n{plan}",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--probes", type=int, default=40, help="new articles per worker and measurement")
    parser.add_argument("--plans", action="store_true", help="print the whole EXPLAIN of every size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    call_command("migrate", verbosity=0)
    source, _ = Source.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "feed_url": "http://127.0.0.1:9/"}
    )
    pg = connection.vendor == "postgresql"
    print(f"database: {connection.vendor}; {PER_DAY} articles a day; {args.probes} new articles per worker")
    head = (
        f"{'stored':>9} | {'1 worker ms':>11} {'queries':>7} | {'2 workers ms':>12} {'x of 1':>7}"
        f" | {'global lock: ms':>15} {'x of 1':>7} | {'related ms':>10} | {'front ms':>8} {'queries':>7} {'vs first':>8}"
    )
    print(head)
    plans, base_front = [], None
    for size in sizes:
        fill(size, source)
        probe = new_articles(source, args.probes, f"{size}-one")
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            one = cluster_all(probe)
            one_wall = time.perf_counter() - t0
        queries = len(ctx.captured_queries) / len(probe)
        related = []
        for article in Article.objects.filter(pk__in=probe):
            t0 = time.perf_counter()
            related_ids(article)
            related.append((time.perf_counter() - t0) * 1000)
        made = list(probe)
        two = lock = ""
        if pg:
            groups = [new_articles(source, args.probes, f"{size}-two-{w}", offset=w) for w in range(2)]
            times, wall = concurrently(groups)
            two = f"{statistics.median(times):>12.1f} {(2 * len(probe) / wall) / (len(probe) / one_wall):>6.2f}x"
            locked_groups = [
                new_articles(source, args.probes, f"{size}-lock-{w}", offset=2 + w) for w in range(2)
            ]
            ltimes, lwall = concurrently(locked_groups, global_lock=True)
            lock = f"{statistics.median(ltimes):>15.1f} {(2 * len(probe) / lwall) / (len(probe) / one_wall):>6.2f}x"
            made += [i for g in groups + locked_groups for i in g]
        remove(made)
        front_ms, front_queries, plan = front_page()
        base_front = base_front or front_ms
        print(
            f"{size:>9,} | {statistics.median(one):>11.1f} {queries:>7.0f} | {two or '-':>20}"
            f" | {lock or '-':>23} | {statistics.median(related):>10.1f}"
            f" | {front_ms:>8.1f} {front_queries:>7} {front_ms / base_front:>7.2f}x",
            flush=True,
        )
        plans.append((size, plan))
    for size, plan in plans:
        lines = plan.splitlines()
        shown = lines if args.plans else lines[:30]
        print(f"\nfront page at {size:,} articles, {shown[0]}")
        print("\n".join("    " + line for line in shown[1:]))
        if len(lines) > len(shown):
            print(f"    … {len(lines) - len(shown)} more lines (--plans)")


if __name__ == "__main__":
    main()
