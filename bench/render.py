"""What an uncached page costs to render: the front page, an article and a story on the
demo corpus, rendered in-process (production settings, DEBUG off, page cache off), with
the number of queries, the time in SQL and the rest (view code and templates), and with
--profile the functions where the time goes.

    .venv/bin/python bench/render.py [--repeat 30] [--profile]

Compare two checkouts in the same run by running each one's copy in turn
(`for i in 1 2; do (cd ../before && python bench/render.py); python bench/render.py; done`):
absolute times swing with the machine's load, so read them side by side.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

os.environ["PAGE_CACHE_SECONDS"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from serve import DATA_DIR, load_corpus  # noqa: E402  (sets up Django on a fresh SQLite file)

from aggregator.models import Article, Story  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    load_corpus()
    article = Article.objects.visible().exclude(insight=None).order_by("-sort_at").first()
    story = Story.objects.filter(article_count__gt=1).first() or Story.objects.first()
    paths = {"front page": "/", "article": article.get_absolute_url(), "story": story.get_absolute_url()}
    client = Client(HTTP_ACCEPT_ENCODING="identity", HTTP_HOST="localhost")
    print(
        f"{'page':12} {'ms/render':>10} {'queries':>8} {'SQL ms':>8} {'other ms':>9}   load {os.getloadavg()[0]:.1f}"
    )
    for name, path in paths.items():
        assert client.get(path).status_code == 200, path  # warm: imports, template loading
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        started = time.perf_counter()
        for _ in range(args.repeat):
            client.get(path)
        per = (time.perf_counter() - started) / args.repeat * 1000
        # The SQL's own time, measured apart (CaptureQueriesContext's timing adds its own cost).
        with CaptureQueriesContext(connection) as timed:
            client.get(path)
        sql = sum(float(q["time"]) for q in timed.captured_queries) * 1000
        print(f"{name:12} {per:10.1f} {len(queries):8} {sql:8.1f} {per - sql:9.1f}", flush=True)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(10):
                client.get(path)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            print(out.getvalue())
    import shutil

    shutil.rmtree(DATA_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
