"""Ingest speed: empty database to every card, against a naive loop, in the same run.

A loopback server answers every request after a fixed latency (50 ms by default, a
publisher's server across the internet), with N RSS feeds of M entries each and one
news page per entry. The pages are generated to look like real ones: a head full of
meta tags, inline styles and scripts, a cookie banner, a navigation of a hundred
links, the article (paragraphs from the demo publications, shuffled), related links,
comments and a footer — 60–90 KB each.

  - naive:   one process, sequential: urllib GET of each feed, feedparser, then for
             each entry a GET of its page and trafilatura.extract(). No database.
  - project: aggregator.ingest.run.poll_many() — what `manage.py poll --all --extract`
             runs — on an empty SQLite database: poll, store, fetch each page,
             extract, cluster and write its card (extractive enricher); once per
             `--processes` value (1: on the polling thread; more: reader processes).
  - before/after (`--against REV`): the project of this tree and that of REV (the
             baseline of the same run), each run in a child process of its own against
             the same site, taking turns `--rounds` times, with the stories each made
             compared (clustering must not depend on the code's speed or the readers).
  - re-poll: the same feeds polled again (unchanged, answered 304): time as a share of
             the first poll of the feeds alone (a fresh database, no page reads), and
             the statements that wrote during it (and whether anything readers see moved:
             the content generation). Each contender runs in a child process of its own
             against the same feed server: this tree, the code of `--against REV` (the
             baseline of the same run, taking turns `--rounds` times) and, when installed
             (`pip install -e '.[bench]'`), lemon24's `reader` polling the same feeds.

    .venv/bin/python bench/ingest.py [--feeds 20] [--entries 10] [--latency 0.05] [--threads 8]
        [--processes 1,2] [--no-repoll] [--profile --profile-out ingest-profile.txt]
    .venv/bin/python bench/ingest.py --no-repoll --against main --rounds 2 --processes 1,2
    .venv/bin/python bench/ingest.py --repoll-only --feeds 100 --against main~3 --rounds 3 [--profile]
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
# A child process may run another tree's code (--against: the baseline of the same run).
sys.path.insert(0, os.environ.get("BENCH_CODE", str(ROOT)))
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-ingest-")
atexit.register(shutil.rmtree, os.environ["DATA_DIR"], ignore_errors=True)  # this process's own
os.environ.setdefault("SECRET_KEY", "bench-ingest")
os.environ["DJANGO_SETTINGS_MODULE"] = "aggregator.settings"
os.environ["FETCH_ALLOWED_NETWORKS"] = "127.0.0.0/8"
os.environ["LOG_LEVEL"] = "ERROR"
os.environ.pop("ANTHROPIC_API_KEY", None)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

import baseline  # noqa: E402 (bench/baseline.py)
import feedparser  # noqa: E402
import trafilatura  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from aggregator.ingest.run import poll_many  # noqa: E402
from aggregator.models import Article, Source  # noqa: E402
from aggregator.pagecache import current_generation, written_table  # noqa: E402

CONTENT = ROOT / "aggregator" / "demo" / "content"
rng = random.Random(10)


def paragraphs() -> list[str]:
    found = []
    for path in sorted(CONTENT.glob("*.json")):
        data = json.loads(path.read_text())
        if data["source"]["language"] != "en":
            continue
        for article in data["articles"]:
            found.extend(article["paragraphs"])
    return found


PARAGRAPHS = paragraphs()
WORDS = " ".join(PARAGRAPHS).split()


def words(n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def script(kb: int) -> str:
    parts = []
    while sum(map(len, parts)) < kb * 1024:
        name = "".join(rng.choice("abcdefghijklmnop") for _ in range(6))
        parts.append(
            f"function {name}(a,b){{var c=a||{{}};c['{name}']=b;return window.dl&&window.dl.push(c)}};"
        )
    return "".join(parts)


def news_page(feed: int, entry: int, title: str, published: datetime) -> bytes:
    body = rng.sample(PARAGRAPHS, k=min(len(PARAGRAPHS), rng.randint(8, 14)))
    nav = "".join(f'<li><a href="/section/{i}">{escape(words(2))}</a></li>' for i in range(100))
    related = "".join(f'<li><a href="/p/{feed}/{i}.html">{escape(words(8))}</a></li>' for i in range(20))
    comments = "".join(
        f'<div class="comment"><b>{escape(words(2))}</b><p>{escape(words(30))}</p></div>' for _ in range(10)
    )
    footer = "".join(f'<a href="/about/{i}">{escape(words(2))}</a> ' for i in range(60))
    ld = json.dumps({"@type": "NewsArticle", "headline": title, "datePublished": published.isoformat()})
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{escape(title)} | The Bench Gazette {feed}</title>
<meta name="description" content="{escape(body[0][:150])}">
<meta property="og:title" content="{escape(title)}"><meta property="og:type" content="article">
<meta name="author" content="{escape(words(2))}">
<meta property="article:published_time" content="{published.isoformat()}">
<script type="application/ld+json">{ld}</script>
<style>{"".join(f".c{i}{{margin:{i}px;padding:{i % 7}px;color:#{i:06x}}}" for i in range(300))}</style>
<script>{script(20)}</script></head><body>
<div class="cookie-banner"><p>{escape(words(40))}</p><button>Accept all</button></div>
<header><a class="logo" href="/">The Bench Gazette</a><nav><ul>{nav}</ul></nav>
<form class="search"><input name="q"></form></header>
<div class="ad">{escape(words(12))}</div>
<main><article><h1>{escape(title)}</h1>
<p class="byline">By {escape(words(2))} · <time datetime="{published.isoformat()}">{published:%d %B %Y}</time></p>
<figure><img src="/img/{feed}-{entry}.jpg" alt="{escape(words(6))}"><figcaption>{escape(words(12))}</figcaption></figure>
{"".join(f"<p>{escape(p)}</p>" for p in body)}
</article>
<aside class="related"><h2>Related</h2><ul>{related}</ul></aside>
<section class="comments"><h2>Comments</h2>{comments}</section></main>
<footer>{footer}<p>© 2026 The Bench Gazette</p></footer>
<script>{script(8)}</script></body></html>"""
    return html.encode()


def rss(base: str, feed: int, entries: list[tuple[str, str, datetime]]) -> bytes:
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>{format_datetime(published)}</pubDate><description>{escape(words(40))}</description></item>"
        for title, link, published in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>The Bench Gazette {feed}</title><link>{base}/</link><description>Bench</description>"
        f"{items}</channel></rss>"
    ).encode()


class Site:
    """The publishers: `hosts` loopback addresses (127.0.0.1, 127.0.0.2, …, one server
    each), feed f and its pages on host f % hosts. Real feeds live on many hosts; on one,
    FETCH_PER_HOST (politeness) bounds how many fetches are in flight."""

    def __init__(self, feeds: int, entries: int, latency: float, *, pages: bool = True, hosts: int = 1):
        self.latency = latency
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.servers = []
        for h in range(max(1, min(hosts, feeds, 250))):
            httpd = ThreadingHTTPServer((f"127.0.0.{h + 1}", 0), self.handler())
            httpd.daemon_threads = True
            httpd.request_queue_size = 256
            self.servers.append(httpd)
        self.bases = [f"http://{h.server_address[0]}:{h.server_address[1]}" for h in self.servers]
        self.base = self.bases[0]
        self.feed_list: list[str] = []
        now = datetime.now(UTC).replace(microsecond=0)
        for f in range(feeds):
            base = self.bases[f % len(self.bases)]
            items = []
            for e in range(entries):
                title = f"{words(7).capitalize()} ({f}-{e})"
                published = now - timedelta(minutes=37 * e + 3 * f)
                path = f"/p/{f}/{e}.html"
                if pages:
                    self.routes[path] = (news_page(f, e, title, published), "text/html; charset=utf-8")
                items.append((title, base + path, published))
            self.routes[f"/feed/{f}.xml"] = (rss(base, f, items), "application/rss+xml")
            self.feed_list.append(f"{base}/feed/{f}.xml")
        self.requests = 0

    def handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                site.requests += 1
                time.sleep(site.latency)
                body, kind = site.routes.get(self.path, (b"not found", "text/plain"))
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200 if self.path in site.routes else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def feed_urls(self) -> list[str]:
        return list(self.feed_list)

    def __enter__(self) -> Site:
        for httpd in self.servers:
            threading.Thread(target=httpd.serve_forever, args=(0.5,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for httpd in self.servers:
            httpd.shutdown()


def naive(site: Site) -> tuple[int, float, float]:
    started = time.perf_counter()
    cpu = time.process_time()
    done = 0
    for url in site.feed_urls():
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 (loopback)
            parsed = feedparser.parse(response.read())
        for entry in parsed.entries:
            with urllib.request.urlopen(entry.link, timeout=20) as response:  # noqa: S310
                html = response.read()
            text = trafilatura.extract(html, url=entry.link)
            done += bool(text)
    return done, time.perf_counter() - started, time.process_time() - cpu


def fresh_database(urls: list[str]) -> None:
    connection.close()
    db = Path(settings.DATABASES["default"]["NAME"])
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    for n, url in enumerate(urls):
        Source.objects.create(name=f"Bench {n}", slug=f"bench-{n}", feed_url=url)


def cpu_seconds() -> float:
    """CPU of this process and of its children that ended (reader processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed_poll(*, read: bool, threads: int, processes: int = 1) -> tuple[float, object]:
    Source.objects.update(next_poll_at=None)
    started = time.perf_counter()
    cpu = cpu_seconds()
    totals = poll_many(list(Source.objects.all()), read=read, threads=threads, processes=processes)
    totals.cpu = cpu_seconds() - cpu
    return time.perf_counter() - started, totals


def _profiled_read(article_id, page):
    import cProfile

    from aggregator.ingest import run

    profiler = cProfile.Profile()
    result = profiler.runcall(run._unprofiled_read, article_id, page)
    profiler.dump_stats(Path(os.environ["DATA_DIR"]) / f"reader-{os.getpid()}-{article_id}.prof")
    return result


# Pickled by name for the readers: found as aggregator.ingest.run._read_safely there.
_profiled_read.__module__, _profiled_read.__qualname__ = "aggregator.ingest.run", "_read_safely"


def start_profile(args, processes: int):
    """With --profile: pyinstrument on this process, and cProfile in each reader process
    (the readers are forked, so they run this wrapper of aggregator.ingest.run's)."""
    if not args.profile:
        return None
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("--profile needs pyinstrument: .venv/bin/pip install -e '.[bench]'") from None

    from aggregator.ingest import run

    if processes > 1 and run._read_safely is not _profiled_read:
        run._unprofiled_read = run._read_safely
        run._read_safely = _profiled_read
    profiler = Profiler(interval=0.002)
    profiler.start()
    return profiler


def stop_profile(args, profiler, processes: int) -> None:
    if profiler is None:
        return
    import io
    import pstats

    profiler.stop()
    out = Path(args.profile_out)
    text = profiler.output_text(unicode=True, show_all=False)
    dumps = sorted(Path(os.environ["DATA_DIR"]).glob("reader-*.prof"))
    if dumps:
        stream = io.StringIO()
        stats = pstats.Stats(*map(str, dumps), stream=stream)
        stats.sort_stats("cumulative").print_stats(60)
        text += f"\n\nReader processes ({len(dumps)} articles, cProfile, cumulative):\n" + stream.getvalue()
        for dump in dumps:
            dump.unlink()
    out.write_text(text)
    print(f"  profile written to {out}", flush=True)


def dispatched_poll() -> tuple[float, None]:
    """The dispatcher's path without a broker: claim_due_sources, then poll_sources_task
    for each POLL_BATCH of them, one after the other (as one worker would run them)."""
    from aggregator import tasks

    Source.objects.update(next_poll_at=None)
    started = time.perf_counter()
    while ids := [source.pk for source in tasks.claim_due_sources(limit=500)]:
        for first in range(0, len(ids), settings.POLL_BATCH):
            tasks.poll_sources_task(ids[first : first + settings.POLL_BATCH])
    return time.perf_counter() - started, None


def repoll_child(urls: list[str], *, threads: int, profile: bool, dispatch: bool = False) -> dict:
    """In a child process: the first poll of the feeds alone on a fresh database, then a
    re-poll of the unchanged feeds (with `dispatch`, through the dispatcher's tasks),
    counting the statements that wrote during it."""
    fresh_database(urls)
    first_s, _ = timed_poll(read=False, threads=threads)
    generation = current_generation()[0]
    articles = Article.objects.count()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu = time.process_time()
    with CaptureQueriesContext(connection) as queries:
        repoll_s, _ = dispatched_poll() if dispatch else timed_poll(read=False, threads=threads)
    cpu = time.process_time() - cpu
    if profile:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    writes: dict[str, int] = {}
    for query in queries.captured_queries[1:]:  # [0]: the bench's own next_poll_at reset
        table = written_table(query["sql"])
        if table:
            writes[table] = writes.get(table, 0) + 1
    wrote = current_generation()[0] != generation or Article.objects.count() != articles
    return {"first": first_s, "repoll": repoll_s, "cpu": cpu, "wrote": wrote, "writes": writes}


def stories_made() -> list[list[str]]:
    """The stories, each as the sorted paths of its articles (no host or port: the same
    for every contender of a run)."""
    grouped: dict[int, list[str]] = {}
    for story_id, url in Article.objects.values_list("story_id", "url"):
        grouped.setdefault(story_id or 0, []).append("/" + url.split("/", 3)[-1])
    return sorted(sorted(paths) for paths in grouped.values())


def cards_child(urls: list[str], *, threads: int, processes: int) -> dict:
    """In a child process: empty database to every card (what the parent runs without
    --against), with the stories made."""
    fresh_database(urls)
    seconds, totals = timed_poll(read=True, threads=threads, processes=processes)
    cards = Article.objects.filter(insight__isnull=False).count()
    return {"cards": cards, "seconds": seconds, "cpu": totals.cpu, "stories": stories_made()}


def reader_child(urls: list[str], *, threads: int) -> dict:
    """lemon24's `reader` polling the same feeds: add them, update all (the first poll),
    then update all again (unchanged: its conditional GET is answered 304)."""
    from reader import make_reader

    lib = make_reader(str(Path(os.environ["DATA_DIR"]) / "reader.sqlite"))
    for url in urls:
        lib.add_feed(url)
    started = time.perf_counter()
    lib.update_feeds(scheduled=False, workers=threads)
    first_s = time.perf_counter() - started
    entries = lib.get_entry_counts().total
    started = time.perf_counter()
    lib.update_feeds(scheduled=False, workers=threads)
    repoll_s = time.perf_counter() - started
    wrote = lib.get_entry_counts().total != entries
    lib.close()
    return {"first": first_s, "repoll": repoll_s, "wrote": wrote, "writes": {}}


def reader_installed() -> bool:
    try:
        import reader  # noqa: F401
    except ImportError:
        return False
    return True


def run_child(kind: str, code: Path, site: Site, args, *, processes: int = 1) -> dict:
    env = {**os.environ, "BENCH_CODE": str(code)}
    env.pop("DATA_DIR", None)
    command = [sys.executable, __file__, "--child", kind, "--threads", str(args.threads)]
    command += ["--processes", str(processes)]
    if args.profile and kind == "repoll" and code == ROOT:
        command.append("--profile")
    done = subprocess.run(
        command, env=env, input=json.dumps(site.feed_urls()), stdout=subprocess.PIPE, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def contenders(args) -> list[tuple[str, Path]]:
    """This tree, after the code of --against REV (the baseline of the same run)."""
    found = [("project, this tree", ROOT)]
    if args.against:
        rev, code = baseline.checkout(args.against)
        found.insert(0, (f"project at {rev} (before)", code))
    return found


def repoll_runs(site: Site, args, contenders: list[tuple[str, Path]]) -> list[tuple[str, dict]]:
    """Each contender in a child process of its own (the feed server stays here), the
    baseline and this tree taking turns, `--rounds` times; then `reader` once."""
    runs = []
    for n in range(args.rounds):
        for name, code in contenders:
            print(f"  {name}, round {n + 1} …", flush=True)
            runs.append((name, run_child("repoll", code, site, args)))
    print("  this tree, re-poll through the dispatcher's tasks …", flush=True)
    runs.append(("this tree, dispatcher's tasks", run_child("dispatch", ROOT, site, args)))
    if reader_installed():
        print("  reader (lemon24) …", flush=True)
        runs.append(("reader " + version("reader"), run_child("reader", ROOT, site, args)))
    else:
        print("  reader is not installed (pip install reader): no comparison", flush=True)
    return runs


def print_repoll(runs: list[tuple[str, dict]]) -> None:
    print(
        f"{'re-poll of unchanged feeds (304)':34} {'first s':>8} {'re-poll s':>10} {'share':>7} {'CPU s':>6}"
        "  writes in the re-poll"
    )
    for name, run in runs:
        writes = ", ".join(f"{table} {n}" for table, n in sorted(run["writes"].items())) or "none"
        seen = "; readers' content changed!" if run["wrote"] else ""
        cpu = f"{run['cpu']:6.2f}" if "cpu" in run else f"{'':6}"
        print(
            f"{name:34} {run['first']:8.2f} {run['repoll']:10.3f} {run['repoll'] / run['first']:7.1%} {cpu}"
            f"  {writes}{seen}"
        )
    print(f"{'goal':34} {'':8} {'':10} {'<= 5%':>7}  no article written")
    medians = {}
    for name in dict.fromkeys(name for name, _ in runs):
        mine = [run for n, run in runs if n == name]
        medians[name] = (
            statistics.median(r["repoll"] for r in mine),
            statistics.median(r["first"] for r in mine),
        )
    print("medians:")
    for name, (repoll_s, first_s) in medians.items():
        print(f"  {name:32} re-poll {repoll_s:.3f} s, first poll {first_s:.2f} s")
    if len(medians) > 1:
        this = medians["project, this tree"][0]
        for name, (repoll_s, _) in medians.items():
            if name != "project, this tree":
                print(f"  this tree's re-poll is {repoll_s / this:.1f}x as fast as that of {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--entries", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=settings.INGEST_THREADS)
    parser.add_argument(
        "--repoll-only",
        action="store_true",
        help="only the first poll of the feeds and the re-poll (no pages, no naive loop)",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also run the project (empty to cards, and the re-poll) with the code of this git"
        " revision, each contender in a child process, taking turns (before/after)",
    )
    parser.add_argument(
        "--processes",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[1, settings.INGEST_PROCESSES] if settings.INGEST_PROCESSES > 1 else [1],
        help="reader processes of the project's runs, e.g. 1,2 (one run each, same site)",
    )
    parser.add_argument("--no-repoll", action="store_true", help="only empty-to-cards against the naive loop")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs per contender, taking turns (with --against)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of this tree's re-poll and write a pyinstrument profile of the project's run",
    )
    parser.add_argument(
        "--profile-out", default="ingest-profile.txt", help="where --profile writes the project's"
    )
    parser.add_argument("--child", choices=["repoll", "dispatch", "reader", "cards"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--hosts", type=int, default=1, help="loopback addresses the feeds are spread over (127.0.0.1, .2, …)"
    )
    args = parser.parse_args()

    if args.child:
        urls = json.loads(sys.stdin.read())  # the feeds' addresses, from the parent
        if args.child == "reader":
            result = reader_child(urls, threads=args.threads)
        elif args.child == "cards":
            result = cards_child(urls, threads=args.threads, processes=args.processes[0])
        else:
            result = repoll_child(
                urls, threads=args.threads, profile=args.profile, dispatch=args.child == "dispatch"
            )
        print(json.dumps(result))
        return

    if args.repoll_only:
        print(f"Serving {args.feeds} feeds x {args.entries} entries (no pages) …", flush=True)
        with Site(args.feeds, args.entries, args.latency, pages=False, hosts=args.hosts) as site:
            print("First poll of the feeds alone (fresh database), then a re-poll …", flush=True)
            runs = repoll_runs(site, args, contenders(args))
        print()
        print(
            f"{args.feeds} feeds x {args.entries} entries on {len(site.servers)} hosts, "
            f"{args.latency * 1000:.0f} ms latency, {args.threads} fetch threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        print_repoll(runs)
        return

    print(f"Generating {args.feeds} feeds x {args.entries} news pages …", flush=True)
    with Site(args.feeds, args.entries, args.latency, hosts=args.hosts) as site:
        sizes = [len(b) for p, (b, _) in site.routes.items() if p.startswith("/p/")]
        print(f"  pages {min(sizes) // 1024}–{max(sizes) // 1024} KB, latency {args.latency * 1000:.0f} ms")

        load_before = os.getloadavg()[0]
        them = contenders(args)
        naive_runs, results = [], []
        for n in range(args.rounds if args.against else 1):
            print("Naive loop (sequential: urllib, feedparser, trafilatura; no database) …", flush=True)
            naive_runs.append(naive(site))
            print(f"  {naive_runs[-1][0]} articles in {naive_runs[-1][1]:.1f} s", flush=True)
            for processes in args.processes:
                readers = f"{processes} reader process{'es' if processes > 1 else ''}"
                if args.against:
                    for name, code in them:
                        print(f"  {name}, {readers}, round {n + 1} …", flush=True)
                        run = run_child("cards", code, site, args, processes=processes)
                        print(f"    {run['cards']} cards in {run['seconds']:.1f} s", flush=True)
                        results.append((name, processes, run))
                    continue
                print(
                    f"Project: poll_many(read=True), {args.threads} fetch threads, {readers}, empty SQLite …",
                    flush=True,
                )
                fresh_database(site.feed_urls())
                profiler = start_profile(args, processes)
                project_s, totals = timed_poll(read=True, threads=args.threads, processes=processes)
                stop_profile(args, profiler, processes)
                cards = Article.objects.filter(insight__isnull=False).count()
                print(f"  {totals.new} articles, {cards} cards in {project_s:.1f} s", flush=True)
                run = {"cards": cards, "seconds": project_s, "cpu": totals.cpu, "stories": stories_made()}
                results.append(("project", processes, run))

        runs = []
        if not args.no_repoll:
            print(
                "First poll of the feeds alone (fresh database, no page reads), then a re-poll …", flush=True
            )
            runs = repoll_runs(site, args, them)

    naive_rate = statistics.median(done / seconds for done, seconds, _cpu in naive_runs)
    naive_cpu = statistics.median(cpu / max(done, 1) for done, _seconds, cpu in naive_runs)
    print()
    print(
        f"{args.feeds} feeds x {args.entries} entries, {args.latency * 1000:.0f} ms latency, "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        + (f"; medians of {args.rounds} rounds" if args.against and args.rounds > 1 else "")
    )
    print(
        f"{'naive sequential loop':44} {naive_rate:6.1f} articles/s, CPU {naive_cpu * 1000:5.1f} ms an article"
    )
    for name, processes in dict.fromkeys((name, processes) for name, processes, _run in results):
        mine = [run for n, p, run in results if (n, p) == (name, processes)]
        rate = statistics.median(run["cards"] / run["seconds"] for run in mine)
        cpu = statistics.median(run["cpu"] / max(run["cards"], 1) for run in mine)
        label = f"{name}, {processes} reader process{'es' if processes > 1 else ''}"
        print(
            f"{label:44} {rate:6.1f} articles/s, CPU {cpu * 1000:5.1f} ms an article"
            f" = {rate / naive_rate:.2f}x naive (goal >= 3x)"
        )
    made = {json.dumps(run["stories"]) for _name, _processes, run in results}
    counts = [len(run["stories"]) for _name, _processes, run in results]
    print(
        f"stories made: {counts[0]}, the same in every project run"
        if len(made) == 1
        else f"stories made: {', '.join(map(str, counts))} (runs in the order above): they differ"
    )
    project_s = results[-1][2]["seconds"]
    if runs:
        print_repoll(runs)
        mine = [run for name, run in runs if name == "project, this tree"][-1]
        print(f"{'re-poll / empty-to-cards':34} {mine['repoll'] / project_s:.1%}")


if __name__ == "__main__":
    main()
