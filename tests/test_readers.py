"""`manage.py poll --all --extract` with reader processes (INGEST_PROCESSES): the demo
publications polled over loopback HTTP, each fetched page read (extracted, clustered,
carded) by one of two forked readers, on a database of its own (SQLite file, or
PostgreSQL in CI's second run). Every article must end read, in a story and with one
card, nothing twice and no lease left behind; and the stories must be the ones a single
process makes of the same articles."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aggregator.demo.server import load_publications
from tests.conftest import REPO, assert_each_article_once, query

pytestmark = pytest.mark.slow


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, timeout=600
    )
    return done.stdout.decode()


def stories(env: dict[str, str]) -> set[frozenset[str]]:
    rows = query(env, "SELECT story_id, url FROM aggregator_article")
    grouped: dict[int, set[str]] = {}
    for story_id, url in rows:
        grouped.setdefault(story_id, set()).add(url.split("/", 3)[-1])  # without the port
    return {frozenset(urls) for urls in grouped.values()}


def test_reader_processes_read_every_article_once_and_cluster_as_one_process_does(
    demo_site, worker_env, tmp_path
):
    expected = sum(len(p.articles) for p in load_publications())
    env = {**worker_env, "INGEST_PROCESSES": "2"}
    manage(env, "migrate", "--noinput")
    manage(env, "load_demo", "--base-url", demo_site.base_url)
    out = manage(env, "poll", "--all", "--extract")
    assert "Reading new articles in 2 reader processes." in out

    [(total, distinct, final)] = query(
        env,
        "SELECT COUNT(*), COUNT(DISTINCT url),"
        " COALESCE(SUM(CASE WHEN state = 'enriched' AND story_id IS NOT NULL THEN 1 ELSE 0 END), 0)"
        " FROM aggregator_article",
    )
    assert total == distinct == final == expected
    assert out.count("\n    article ") == expected, out[-2000:]
    assert_each_article_once(env, expected)
    assert query(env, "SELECT COUNT(*) FROM aggregator_lease WHERE token <> ''") == [(0,)]

    # The same articles read by one process, on a SQLite file of its own.
    one = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    one.update(INGEST_PROCESSES="1", DATA_DIR=str(tmp_path / "one"))
    (tmp_path / "one").mkdir()
    manage(one, "migrate", "--noinput")
    manage(one, "load_demo", "--base-url", demo_site.base_url)
    assert "Reading new articles in this process." in manage(one, "poll", "--all", "--extract")
    assert stories(env) == stories(one)
