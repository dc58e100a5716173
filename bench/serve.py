"""Pages under production settings against a static file, in the same run.

gunicorn (DEBUG off, whitenoise, the settings the Dockerfile uses) serves the demo
corpus; `wrk` asks for the front page, an article, a story, a search and the RSS feed,
and a hashed static file served by whitenoise from the same server. Each page is
measured twice: with the page cache (PAGE_CACHE_SECONDS=60) and without it (0), so
the table shows what the cache buys. Requests carry `Accept-Encoding: gzip, deflate, br`
(--accept-encoding), as a browser's do; the sizes of each page in every encoding are
printed too. Goal: cached pages at >= 50% of the static file's rate.

Then the same pages under churn, as on a news site that ingests all the time: a writer
process commits a new article with its card and story every --write-every seconds (as
the workers do: new content) while wrk runs, once with PAGE_FRESH_SECONDS=0 (every
change shown at the next request: every new article makes every page a miss) and once
with the bound (--fresh, default 10: new content may show that late; editors' changes
still show at once). wrk counts the X-Cache header of every answer, so the hit ratio is
printed next to the rate against the static file (measured during the churn too).

    .venv/bin/python bench/serve.py [--seconds 5] [--connections 8] [--workers 2] [--port 8331]
        [--write-every 1] [--fresh 10]     (--write-every 0: no churn phase)

Needs `wrk` (Debian: apt-get install wrk). With --keep-database-url it uses
DATABASE_URL (PostgreSQL) instead of a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA_DIR = tempfile.mkdtemp(prefix="bench-serve-")
os.environ["DATA_DIR"] = DATA_DIR
os.environ.setdefault("SECRET_KEY", "bench-serve-secret-key")
os.environ["DEBUG"] = "0"
os.environ["DJANGO_SETTINGS_MODULE"] = "aggregator.settings"
os.environ["FETCH_ALLOWED_NETWORKS"] = "127.0.0.0/8"
os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
os.environ["LOG_LEVEL"] = "WARNING"
if "--keep-database-url" not in sys.argv:
    os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from aggregator.demo.server import make_server  # noqa: E402
from aggregator.models import Article, Story  # noqa: E402


def load_corpus() -> None:
    print("Loading the demo corpus (migrate, poll, read, enrich) …", flush=True)
    call_command("migrate", verbosity=0)
    httpd, site = make_server("127.0.0.1", 0, anchor=datetime.now(UTC))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        call_command("load_demo", base_url=site.base_url, verbosity=0)
        call_command("poll", all=True, extract=True, verbosity=0)
    finally:
        httpd.shutdown()
    call_command("collectstatic", interactive=False, verbosity=0)
    print(f"  {Article.objects.count()} articles, {Story.objects.count()} stories", flush=True)


def static_path() -> str:
    manifest = json.loads((Path(DATA_DIR) / "staticfiles" / "staticfiles.json").read_text())
    return "/static/" + manifest["paths"]["site.css"]


def wait_for(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=20):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer {url} within {seconds:g} s")


def start_gunicorn(port: int, workers: int, cache_seconds: int, fresh: int = 10) -> subprocess.Popen:
    env = {**os.environ, "PAGE_CACHE_SECONDS": str(cache_seconds), "PAGE_FRESH_SECONDS": str(fresh)}
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "aggregator.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


# wrk counts the X-Cache header of every answer, per thread, and adds them up at the end.
COUNT_CACHE_OUTCOMES = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) HIT = 0; STALE = 0; WAIT = 0; MISS = 0; NONE = 0 end
function response(status, headers, body)
  local outcome = headers["X-Cache"] or "NONE"
  _G[outcome] = (_G[outcome] or 0) + 1
end
function done(summary, latency, requests)
  local line = "X-Cache"
  for _, name in ipairs({"HIT", "STALE", "WAIT", "MISS", "NONE"}) do
    local total = 0
    for _, thread in ipairs(threads) do total = total + (thread:get(name) or 0) end
    line = line .. " " .. name .. " " .. total
  end
  io.write(line .. "\\n")
end
"""


def stop_gunicorn(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:  # a worker stuck in a long render
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def wrk(
    url: str, *, seconds: int, connections: int, accept_encoding: str, script: str | None = None
) -> tuple[float, dict[str, int]]:
    """Requests/s, and with a script the count of each X-Cache outcome."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", f"Accept-Encoding: {accept_encoding}"]
    if script:
        command += ["-s", script]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses; wrk said:\n{out}")
    counted = re.search(r"^X-Cache (.*)$", out, re.M)
    outcomes = {}
    if script and not counted:
        raise SystemExit(f"wrk did not run the script {script}; it said:\n{out}")
    if counted:
        words = counted.group(1).split()
        outcomes = {name: int(n) for name, n in zip(words[::2], words[1::2], strict=True)}
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), outcomes


def write_new_content(every: float, stop) -> None:
    """The writer process: a new article with its story and card every `every` seconds,
    committed as the workers commit theirs (new content)."""
    from django.db import connections, transaction
    from django.utils import timezone

    from aggregator.pagecache import new_content

    connections.close_all()  # the parent's connections are not this process's
    model = Article.objects.visible().exclude(insight=None).order_by("-sort_at").first()
    insight = model.insight
    n = 0
    while not stop.wait(every):
        n += 1
        title = f"Bench wire story {n} ({os.getpid()})"
        with new_content(), transaction.atomic():
            model.pk = insight.pk = None
            model.guid = model.url = model.canonical_url = f"https://example.org/bench/{os.getpid()}/{n}"
            model.title, model.sort_at, model.is_featured = title, timezone.now(), False
            model.story = Story.objects.create(headline=title, article_count=1, publisher_count=1)
            model.save()
            insight.article, insight.title = model, title
            insight.save()
    connections.close_all()


def churn(args, paths: dict[str, str], base: str) -> None:
    """Every page and the static file under constant new content, with no bound and with
    --fresh, in the same run."""
    from django.db import connections

    script = Path(DATA_DIR) / "count.lua"
    script.write_text(COUNT_CACHE_OUTCOMES)
    ask = {"connections": args.connections, "accept_encoding": args.accept_encoding, "script": str(script)}
    # A site has many pages: readers spread over the front page and the latest articles and
    # stories (--site-pages of them, each asked in turn), so each page is asked for a few
    # times a second, not hundreds: every new article makes each of them a miss.
    latest = Article.objects.visible().order_by("-sort_at")
    site = ["/"]
    for item in latest[: args.site_pages]:
        site += [item.get_absolute_url(), *([item.story.get_absolute_url()] if item.story_id else [])]
    site = list(dict.fromkeys(site))[: args.site_pages]
    rotate = Path(DATA_DIR) / "rotate.lua"
    rotate.write_text(
        "local paths = {" + ", ".join(json.dumps(u) for u in site) + "}\n"
        "local i = 0\n"
        "function request()\n  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\n end\n"
        + COUNT_CACHE_OUTCOMES
    )
    everywhere = f"{len(site)} pages in turn"
    rows: dict[str, dict[int, tuple[float, dict[str, int]]]] = {}
    connections.close_all()
    stop = multiprocessing.get_context("fork").Event()
    writer = multiprocessing.get_context("fork").Process(
        target=write_new_content, args=(args.write_every, stop)
    )
    writer.start()
    written = Article.objects.count()
    try:
        for fresh in (0, args.fresh):
            server = start_gunicorn(args.port, args.workers, 60, fresh=fresh)
            try:
                wait_for(base + "/")
                for name, path in [*paths.items(), (everywhere, "/")]:
                    mix = {**ask, "script": str(rotate)} if name == everywhere else ask
                    # The mix warms up and runs longer: every page is first rendered in each process.
                    warm, seconds = (
                        (2 * args.seconds, 3 * args.seconds) if name == everywhere else (1, args.seconds)
                    )
                    wrk(base + path, seconds=warm, **mix)
                    rows.setdefault(name, {})[fresh] = found = wrk(base + path, seconds=seconds, **mix)
                    print(
                        f"  churn, PAGE_FRESH_SECONDS={fresh:<3} {name:34} {found[0]:10,.0f} req/s {found[1]}"
                    )
            finally:
                stop_gunicorn(server)
    finally:
        stop.set()
        writer.join(30)
    written = Article.objects.count() - written
    print()
    print(
        f"Under churn: a new article, story and card committed every {args.write_every:g} s "
        f"({written} while measuring); load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'path':36} {'PAGE_FRESH_SECONDS=0':>30} {f'PAGE_FRESH_SECONDS={args.fresh}':>30}")
    print(f"{'':36} {'req/s  /static  hits':>30} {'req/s  /static  hits':>30}")
    statics = {fresh: rows[next(iter(paths))][fresh][0] for fresh in (0, args.fresh)}
    for name in [*paths, everywhere]:
        cells = []
        for fresh in (0, args.fresh):
            rate, outcomes = rows[name][fresh]
            total = sum(outcomes.values()) or 1
            served = outcomes.get("HIT", 0) + outcomes.get("STALE", 0) + outcomes.get("WAIT", 0)
            hits = "—" if name.startswith("static") else f"{served / total:.0%}"
            cells.append(f"{rate:7,.0f} {rate / statics[fresh]:7.0%} {hits:>5}")
        print(f"{name:36} {cells[0]:>30} {cells[1]:>30}")
    pages = [n for n in [*paths, everywhere] if not n.startswith("static")]
    worst = min(rows[n][args.fresh][0] / statics[args.fresh] for n in pages)
    print(f"\nUnder churn with the bound, the slowest cached page is at {worst:.0%} of the static rate.")


def sizes(url: str) -> str:
    """The body's size in each encoding the server offers."""
    found = []
    for encoding in ("identity", "gzip", "br"):
        request = urllib.request.Request(url, headers={"Accept-Encoding": encoding})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            found.append(f"{response.headers.get('Content-Encoding', 'identity')} {len(response.read()):,}")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8331)
    parser.add_argument("--keep-database-url", action="store_true")
    parser.add_argument("--accept-encoding", default="gzip, deflate, br")
    parser.add_argument(
        "--write-every", type=float, default=1.0, help="seconds between new articles (0: no churn)"
    )
    parser.add_argument(
        "--fresh", type=int, default=10, help="PAGE_FRESH_SECONDS for the churn's second half"
    )
    parser.add_argument("--churn-only", action="store_true", help="skip the cached/uncached table")
    parser.add_argument("--site-pages", type=int, default=20, help="pages asked in turn in the churn's mix")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian/Ubuntu), then run again")

    load_corpus()
    article = Article.objects.visible().exclude(insight=None).order_by("-sort_at").first()
    story = Story.objects.filter(article_count__gt=1).first() or Story.objects.first()
    english = Article.objects.visible().filter(source__language__startswith="en").first() or article
    word = quote(max(english.title.split(), key=len).strip(".,:;'\""))
    paths = {
        "static file (hashed, whitenoise)": static_path(),
        "front page /": "/",
        "article": article.get_absolute_url(),
        "story": story.get_absolute_url(),
        "search": f"/search/?q={word}",
        "RSS /feeds/rss/": "/feeds/rss/",
    }
    base = f"http://127.0.0.1:{args.port}"
    rates: dict[str, dict[str, float]] = {}
    for label, seconds in () if args.churn_only else (("cached", 60), ("uncached", 0)):
        server = start_gunicorn(args.port, args.workers, seconds)
        try:
            wait_for(base + "/")
            for name, path in paths.items():
                if label == "cached":
                    print(f"  {'bytes':8} {name:34} {sizes(base + path)}", flush=True)
                ask = {"connections": args.connections, "accept_encoding": args.accept_encoding}
                wrk(base + path, seconds=1, **ask)  # warm up
                rate = wrk(base + path, seconds=args.seconds, **ask)[0]
                rates.setdefault(name, {})[label] = rate
                print(f"  {label:8} {name:34} {rate:10,.0f} req/s", flush=True)
        finally:
            stop_gunicorn(server)

    if not args.churn_only:
        report(args, paths, rates)
    if args.write_every > 0:
        churn(args, paths, base)
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def report(args, paths: dict[str, str], rates: dict[str, dict[str, float]]) -> None:
    static = rates[next(iter(paths))]["cached"]
    print()
    print(
        f"gunicorn --workers {args.workers}, wrk -c{args.connections} -d{args.seconds}s, "
        f"Accept-Encoding: {args.accept_encoding}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, database: {django.db.connection.vendor}"
    )
    print(f"{'path':36} {'cached':>10} {'uncached':>10} {'cached/static':>14} {'uncached/static':>16}")
    for name in paths:
        cached, uncached = rates[name]["cached"], rates[name]["uncached"]
        print(
            f"{name:36} {cached:10,.0f} {uncached:10,.0f} {cached / static:14.0%} {uncached / static:16.0%}"
        )
    pages = [n for n in paths if not n.startswith("static")]
    worst = min(rates[n]["cached"] / static for n in pages)
    print(f"\nGoal: cached pages >= 50% of the static rate. Slowest cached page: {worst:.0%} — ", end="")
    print("met." if worst >= 0.5 else "not met.")


if __name__ == "__main__":
    main()
