"""Pages under production settings against a static file, in the same run.

gunicorn (DEBUG off, whitenoise, the settings the Dockerfile uses) serves the demo
corpus; `wrk` asks for the front page, an article, a story, a search and the RSS feed,
and a hashed static file served by whitenoise from the same server. Each page is
measured twice: with the page cache (PAGE_CACHE_SECONDS=60) and without it (0), so
the table shows what the cache buys. Requests carry `Accept-Encoding: gzip, deflate, br`
(--accept-encoding), as a browser's do; the sizes of each page in every encoding are
printed too. As a
browser's do. Goal: cached pages at >= 50% of the static file's rate.

    .venv/bin/python bench/serve.py [--seconds 5] [--connections 8] [--workers 2] [--port 8331]

Needs `wrk` (Debian: apt-get install wrk). With --keep-database-url it uses
DATABASE_URL (PostgreSQL) instead of a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
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


def start_gunicorn(port: int, workers: int, cache_seconds: int) -> subprocess.Popen:
    env = {**os.environ, "PAGE_CACHE_SECONDS": str(cache_seconds)}
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


def wrk(url: str, *, seconds: int, connections: int, accept_encoding: str) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", f"Accept-Encoding: {accept_encoding}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses; wrk said:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


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
    for label, seconds in (("cached", 60), ("uncached", 0)):
        server = start_gunicorn(args.port, args.workers, seconds)
        try:
            wait_for(base + "/")
            for name, path in paths.items():
                if label == "cached":
                    print(f"  {'bytes':8} {name:34} {sizes(base + path)}", flush=True)
                ask = {"connections": args.connections, "accept_encoding": args.accept_encoding}
                wrk(base + path, seconds=1, **ask)  # warm up
                rate = wrk(base + path, seconds=args.seconds, **ask)
                rates.setdefault(name, {})[label] = rate
                print(f"  {label:8} {name:34} {rate:10,.0f} req/s", flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)

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
    shutil.rmtree(DATA_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
