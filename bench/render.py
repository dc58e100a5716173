"""What an uncached page costs to render: the front page, an article, a story and a
search (a word in most demo reports: a full page of 20 cards) on the demo corpus,
rendered in-process under production settings (DEBUG off, the page cache on), each
render one of the page cache's misses (a new query string each time) right after new
content (the content generation moved, as every new article moves it); and the story
again in the same generation (another encoding or query string, an editor's request),
where a story card built once is reused. Printed: ms per render, the number of queries,
the time in SQL.

    .venv/bin/python bench/render.py [--against REV] [--rounds 3] [--repeat 20] [--profile]

Each contender renders in a process of its own, on the same database: this tree, and
with --against the code of REV (git archive) as the baseline of the same run; they take
turns for --rounds rounds and the table shows each one's median, side by side with the
ratio (the machine's load is printed with it: absolute times swing 2-3x with the load).

With --against, the HTML of every demo page (every listing, category, audience,
source, story, article, some searches, the week and the recaps) is also rendered by both
at the same frozen instant and compared, CSP nonces and CSRF tokens left out: the bench
fails if a page differs (--allow-html-changes lists the differences and goes on).
--profile profiles this tree's renders (pyinstrument when installed, else cProfile).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT, ROUNDS = 20, 3
SEARCH_WORD = "company"  # in most demo reports, in all five publishers' languages' English ones
# What changes from one render to the next whatever the code: a CSP nonce, a CSRF token.
_VOLATILE = re.compile(r'(nonce|csrfmiddlewaretoken"? value)="[^"]*"')


def child() -> None:
    """Render the pages asked on stdin with the code of BENCH_CODE; print the figures as
    the last line of JSON."""
    sys.path.insert(0, os.environ["BENCH_CODE"])
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    job = json.loads(sys.stdin.read())
    client = Client(HTTP_ACCEPT_ENCODING="identity", HTTP_HOST="localhost")
    sql: list[float] = []

    def timed(execute, sql_text, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            sql.append(time.perf_counter() - started)

    def new_content() -> None:
        """What a new article does to every cached page and card: the content generation
        moves (aggregator.pagecache), so what follows is a render after new content."""
        with connection.cursor() as cursor:
            cursor.execute("UPDATE aggregator_contentgeneration SET value = value + 1 WHERE id = 2")

    renders = iter(range(1, 10**9))

    def get(path: str):
        """A page cache miss: the page cache keys the full path, so a new query string
        each time makes it render (and store) the page, as a reader's first request does."""
        response = client.get(f"{path}{'&' if '?' in path else '?'}render={next(renders)}")
        assert response.status_code == 200 and response["X-Cache"] == "MISS", (path, response.status_code)
        return response

    def render(path: str, fresh: bool) -> float:
        if fresh:
            new_content()
        started = time.perf_counter()
        get(path)
        return time.perf_counter() - started

    figures = {}
    for name, (path, fresh) in job["paths"].items():
        for _ in range(2):  # warm: imports, templates, the first query of each shape
            get(path)
        if fresh:
            new_content()
        sql.clear()
        with connection.execute_wrapper(timed):
            get(path)
        queries, sql_ms = len(sql), sum(sql) * 1000
        ms = sum(render(path, fresh) for _ in range(job["repeat"])) / job["repeat"] * 1000
        figures[name] = {"ms": ms, "queries": queries, "sql_ms": sql_ms}
    if job.get("profile"):
        profile(render, job["paths"], Path(job["profile"]))
    if job.get("html_dir"):
        html(client, job["html_pages"], Path(job["html_dir"]), job["now"])
    import aggregator

    print(json.dumps({"code": str(Path(aggregator.__file__).parent.parent), "pages": figures}))


def profile(render, paths: dict[str, list], out: Path) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None
    texts = []
    for name, (path, fresh) in paths.items():
        if Profiler is not None:
            profiler = Profiler(interval=0.0005)
            profiler.start()
            for _ in range(20):
                render(path, fresh)
            profiler.stop()
            texts.append(f"== {name} ({path}), 20 renders\n" + profiler.output_text(unicode=False))
        else:
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(20):
                render(path, fresh)
            profiler.disable()
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(40)
            texts.append(f"== {name} ({path}), 20 renders\n{stream.getvalue()}")
    out.write_text("\n".join(texts))


def html(client, pages: list[str], out: Path, now: str) -> None:
    """Every page at the same instant (`now`), whichever code renders it: relative times
    ("3 minutes ago") and age badges then read the same."""
    from datetime import datetime

    from django.utils import timezone

    frozen = datetime.fromisoformat(now)
    timezone.now = lambda: frozen
    out.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(pages):
        response = client.get(path)
        body = _VOLATILE.sub(r'\1=""', response.content.decode())
        (out / f"{n:04d}.html").write_text(f"{response.status_code} {path}\n{body}")


def run(code: Path, job: dict, data_dir: str) -> dict:
    # The page cache on, as in production: each render is one of its misses (see get).
    env = {**os.environ, "BENCH_CODE": str(code), "DATA_DIR": data_dir, "PAGE_CACHE_SECONDS": "60"}
    done = subprocess.run(
        [sys.executable, __file__, "--child"],
        env=env,
        input=json.dumps(job),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(answer["code"]) == code, f"the child ran {answer['code']}, not {code}"
    return answer["pages"]


def demo_pages() -> list[str]:
    """Every reader's page of the demo corpus that the card templates build."""
    from django.utils import timezone

    from aggregator.models import Article, AudienceTag, Category, Source, Story

    year, week, _ = timezone.localdate().isocalendar()
    pages = ["/", "/?page=2", "/?page=3", f"/week/{year}/{week}/", "/recap/"]
    pages += [c.get_absolute_url() for c in Category.objects.all()]
    pages += [t.get_absolute_url() for t in AudienceTag.objects.all()]
    pages += [s.get_absolute_url() for s in Source.objects.all()]
    pages += [s.get_absolute_url() for s in Story.objects.order_by("pk")]
    pages += [a.get_absolute_url() for a in Article.objects.order_by("pk")]
    pages += [f"/search/?q={q}" for q in (SEARCH_WORD, "aurora", "percent", "", "zzzqqq", "werden")]
    pages += [f"/search/?q={SEARCH_WORD}&page=2"]
    return pages


def compare_html(before: Path, after: Path) -> list[str]:
    """The pages whose HTML differs, each with the first lines of its diff."""
    differences = []
    for page in sorted(before.iterdir()):
        old, new = page.read_text(), (after / page.name).read_text()
        if old != new:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), "before", "after", lineterm="", n=0
            )
            differences.append("\n".join(list(diff)[:12]))
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="REV", help="the baseline: the code of a git revision")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--repeat", type=int, default=REPEAT, help="renders of each page a round")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--allow-html-changes", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child()

    os.environ["PAGE_CACHE_SECONDS"] = "0"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import baseline
    from serve import DATA_DIR, load_corpus  # sets up Django on a fresh SQLite file

    from aggregator.models import Article, Story

    try:
        load_corpus()
        article = Article.objects.visible().exclude(insight=None).order_by("-sort_at").first()
        story = Story.objects.filter(article_count__gt=1).first() or Story.objects.first()
        # Each render follows new content (the generation moved), as a page cache miss
        # does, but for the last line: the story again in the same generation (another
        # encoding, an editor's request), where a card built once may be reused.
        paths = {
            "front page": ["/", True],
            "article": [article.get_absolute_url(), True],
            "story": [story.get_absolute_url(), True],
            "search": [f"/search/?q={SEARCH_WORD}", True],
            "story, same generation": [story.get_absolute_url(), False],
        }
        contenders = {"this tree": ROOT}
        if args.against:
            rev, code = baseline.checkout(args.against)
            contenders = {f"before ({rev})": code, **contenders}
        load = os.getloadavg()
        results: dict[str, list[dict]] = {name: [] for name in contenders}
        for n in range(args.rounds):
            for name, code in contenders.items():
                print(f"  round {n + 1}: {name} …", flush=True)
                results[name].append(run(code, {"paths": paths, "repeat": args.repeat}, DATA_DIR))
        load = [(a + b) / 2 for a, b in zip(load, os.getloadavg(), strict=True)]
        report(paths, results, load, args)
        if args.profile:
            out = Path(DATA_DIR) / "profile.txt"
            run(ROOT, {"paths": paths, "repeat": 1, "profile": str(out)}, DATA_DIR)
            print(out.read_text())
        if args.against:
            check_html(contenders, DATA_DIR, args)
    finally:
        shutil.rmtree(DATA_DIR, ignore_errors=True)


def report(paths: dict[str, list], results: dict[str, list[dict]], load: list[float], args) -> None:
    names = list(results)
    print(
        f"\nms per render (median of {args.rounds} rounds of {args.repeat}), load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (1, 5, 15 min, mean of start and end)"
    )
    header = f"{'page':24}" + "".join(f"{name:>22}" for name in names)
    if len(names) == 2:
        header += f"{'after/before':>14}"
    print(header + "   queries   SQL ms")
    for page in paths:
        medians = [statistics.median(r[page]["ms"] for r in results[name]) for name in names]
        line = f"{page:24}" + "".join(f"{m:22.1f}" for m in medians)
        if len(names) == 2:
            line += f"{medians[1] / medians[0]:14.2f}"
        queries = " → ".join(str(results[name][-1][page]["queries"]) for name in names)
        sql = " → ".join(
            f"{statistics.median(r[page]['sql_ms'] for r in results[name]):.1f}" for name in names
        )
        print(f"{line}   {queries:>7}   {sql}")


def check_html(contenders: dict[str, Path], data_dir: str, args) -> None:
    from django.utils import timezone

    pages = demo_pages()
    now = timezone.now().isoformat()
    dirs = []
    for code in contenders.values():
        out = Path(data_dir) / f"html-{len(dirs)}"
        run(code, {"paths": {}, "repeat": 0, "html_dir": str(out), "html_pages": pages, "now": now}, data_dir)
        dirs.append(out)
    differences = compare_html(*dirs)
    print(f"\nHTML of {len(pages)} demo pages, before and after: {len(pages) - len(differences)} identical")
    for diff in differences:
        print(diff)
    if differences and not args.allow_html_changes:
        raise SystemExit(f"{len(differences)} pages differ (--allow-html-changes to go on)")


if __name__ == "__main__":
    main()
