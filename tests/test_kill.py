"""Crash recovery for real: a worker cluster (`manage.py workers`, django-q2's qcluster)
reading the demo publications is SIGKILLed mid-run — every process of it, tasks in
flight, the tasks it had prefetched (lost for good on Redis, which has no receipts) —
then started again. Every article must reach its final state (extracted, in a story,
with its card) within three minutes of the restart, with no duplicate article, card or
story member: the leases in the database, not the broker, are the record of work.

On SQLite with the ORM broker, and on PostgreSQL with the Redis broker when
DATABASE_URL and REDIS_URL are set (CI's second run). The lease is shortened to 10 s
through LEASE_SECONDS to keep the test short (KILL_TEST_LEASE_SECONDS=60 measures the
default); the tick is the real one (every minute, from the cluster's own scheduler);
the ORM broker's own redelivery (Q_RETRY, 300 s) is left as it is, so it cannot be
what recovers the work."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from aggregator.demo.server import make_server
from tests.conftest import POSTGRES_ONLY, REPO, assert_each_article_once, query

pytestmark = pytest.mark.slow

RECOVERY_LIMIT = 180  # seconds after the restart
LEASE = os.environ.get("KILL_TEST_LEASE_SECONDS", "10")


@pytest.fixture
def slow_demo_site():
    """The demo publications on loopback, each article page answered after 0.3 s, so
    that reading them takes long enough to be cut short."""
    httpd, site = make_server("127.0.0.1", 0, anchor=datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    handler = httpd.RequestHandlerClass

    class Slow(handler):
        def do_GET(self):  # noqa: N802
            if self.path.endswith(".html"):
                time.sleep(0.3)
            super().do_GET()

    httpd.RequestHandlerClass = Slow
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site
    httpd.shutdown()
    httpd.server_close()


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, timeout=300
    )


def start_workers(env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "workers"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )


def kill_everything(workers: subprocess.Popen, log_path) -> None:
    """SIGKILL to the `workers` process and to the cluster's own session (its main
    process, sentinel, pusher, monitor and workers): nothing gets to clean up."""
    found = re.findall(r"qcluster running as process (\d+)", log_path.read_text())
    for group in [workers.pid, *(int(pid) for pid in found[-1:])]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    workers.wait(timeout=30)


def progress(env: dict[str, str]) -> dict[str, int]:
    [(total, final, extracted, held)] = query(
        env,
        "SELECT COUNT(*),"
        " COALESCE(SUM(CASE WHEN state = 'enriched' AND story_id IS NOT NULL THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN state IN ('extracted', 'enriching', 'enriched') THEN 1 ELSE 0 END), 0),"
        " (SELECT COUNT(*) FROM aggregator_lease WHERE kind = 'article' AND token <> '')"
        " FROM aggregator_article",
    )
    return {"articles": total, "final": final, "extracted": extracted, "held": held}


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_a_sigkilled_cluster_restarted_finishes_every_article(broker, slow_demo_site, worker_env, tmp_path):
    if broker == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip(f"the Redis broker is exercised {POSTGRES_ONLY}, with REDIS_URL set")
    env = {**worker_env, "Q_WORKERS": "2", "LEASE_SECONDS": LEASE, "LOG_LEVEL": "INFO"}
    if broker == "orm":
        env.pop("REDIS_URL", None)
    manage(env, "migrate", "--noinput")
    manage(env, "load_demo", "--base-url", slow_demo_site.base_url)
    manage(env, "setup_schedules")
    expected = sum(len(p.articles) for p in slow_demo_site.publications.values())

    log_path = tmp_path / "workers.log"
    log = log_path.open("a")
    workers = start_workers(env, log)
    try:
        # Mid-run: some articles final, not all, and a worker holding one.
        deadline = time.monotonic() + 300
        while True:
            seen = progress(env)
            if seen["final"] and seen["held"] and seen["final"] < expected:
                break
            assert time.monotonic() < deadline and seen["final"] < expected, (
                seen,
                log_path.read_text()[-3000:],
            )
            assert workers.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.1)
        kill_everything(workers, log_path)
        at_kill = progress(env)
        print(f"\n[{broker}] SIGKILL with {at_kill}")

        restarted = time.monotonic()
        workers = start_workers(env, log)
        while True:
            seen = progress(env)
            carded = query(env, "SELECT COUNT(*) FROM enrichment_insight")[0][0]
            if seen["articles"] == seen["final"] == carded == expected:
                break
            assert time.monotonic() - restarted < RECOVERY_LIMIT, (seen, carded, log_path.read_text()[-3000:])
            assert workers.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)
        took = time.monotonic() - restarted
        print(f"[{broker}] every article final {took:.0f} s after the restart (lease {LEASE} s): {seen}")

        assert_each_article_once(env, expected)
    finally:
        if workers.poll() is None:
            os.killpg(workers.pid, signal.SIGTERM)
            try:
                workers.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_everything(workers, log_path)
        log.close()
