"""The real thing: a qcluster process, its scheduler and workers, polling the demo
publications over loopback HTTP and reading every article, as `make run` does; on
SQLite with the ORM broker, and on PostgreSQL with Redis when DATABASE_URL and
REDIS_URL are set (CI's second run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from aggregator.demo.server import load_publications
from tests.conftest import REPO, query

pytestmark = pytest.mark.slow


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, timeout=300
    )


def test_workers_collect_and_read_every_demo_article(demo_site, worker_env):
    env = {**worker_env, "Q_WORKERS": "2"}
    manage(env, "migrate", "--noinput")
    manage(env, "load_demo", "--base-url", demo_site.base_url)
    manage(env, "setup_schedules")
    expected = sum(len(p.articles) for p in load_publications())

    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "workers"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        counts = {}
        while time.monotonic() < deadline:
            counts = dict(query(env, "SELECT state, COUNT(*) FROM aggregator_article GROUP BY state"))
            if counts.get("enriched", 0) >= expected:
                break
            assert cluster.poll() is None, cluster.stderr.read().decode()[-2000:]
            time.sleep(2)
        assert counts.get("enriched", 0) == expected, counts
        [(total, distinct)] = query(env, "SELECT COUNT(*), COUNT(DISTINCT url) FROM aggregator_article")
        assert total == distinct == expected
        failing = query(env, "SELECT COUNT(*) FROM aggregator_source WHERE consecutive_failures > 0")
        assert failing == [(0,)]
        short = query(env, "SELECT COUNT(*) FROM aggregator_article WHERE length(text) < 400")
        assert short == [(0,)], "every demo article is read in full from its page"
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
