"""The real thing: a qcluster process, its scheduler and workers, polling the demo
publications over loopback HTTP and reading every article, as `make run` does."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from aggregator.demo.server import load_publications
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, timeout=120
    )


def test_workers_collect_and_read_every_demo_article(demo_site, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DATA_DIR=str(tmp_path),
        SECRET_KEY="e2e-test",
        DEBUG="0",
        LOG_LEVEL="WARNING",
        FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
        Q_CLUSTER_NAME=f"e2e-{uuid.uuid4().hex[:8]}",
        Q_WORKERS="2",
    )
    # REDIS_URL is kept when set, so CI's second run exercises the Redis broker.
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
    db = sqlite3.connect(tmp_path / "db.sqlite3", timeout=30)
    try:
        deadline = time.monotonic() + 240
        counts = {}
        while time.monotonic() < deadline:
            counts = dict(
                db.execute("SELECT state, COUNT(*) FROM aggregator_article GROUP BY state").fetchall()
            )
            if counts.get("enriched", 0) >= expected:
                break
            assert cluster.poll() is None, cluster.stderr.read().decode()[-2000:]
            time.sleep(2)
        assert counts.get("enriched", 0) == expected, counts
        total, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT url) FROM aggregator_article"
        ).fetchone()
        assert total == distinct == expected
        failing = db.execute(
            "SELECT COUNT(*) FROM aggregator_source WHERE consecutive_failures > 0"
        ).fetchone()
        assert failing == (0,)
        short = db.execute("SELECT COUNT(*) FROM aggregator_article WHERE length(text) < 400").fetchone()
        assert short == (0,), "every demo article is read in full from its page"
    finally:
        db.close()
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
