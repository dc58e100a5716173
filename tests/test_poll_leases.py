"""`manage.py poll` (the operator's command) takes the same poll lease per source as the
workers: a source a live lease holds is skipped, and said so; otherwise it is polled and
its lease released. The two-process test races two real `manage.py poll` processes for
one slow feed: exactly one fetches it."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from aggregator.ingest import leases
from aggregator.models import Article, Lease, Source
from tests.conftest import REPO, query
from tests.feeds import rss
from tests.servers import Reply


def feed_requests(server, path: str = "/feed.xml") -> int:
    return sum(1 for requested, _headers in server.requests if requested.split("?")[0] == path)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_poll_skips_a_source_a_live_lease_holds_and_polls_the_others(server, settings):
    settings.LEASE_SECONDS = 60
    entry = {"guid": "1", "title": "Harbour reopens", "link": "https://example.org/1"}
    held = Source.objects.create(
        name="Held", slug="held", feed_url=server.route("/feed.xml", Reply(200, rss([entry])))
    )
    Source.objects.create(
        name="Free",
        slug="free",
        feed_url=server.route("/free.xml", Reply(200, rss([{**entry, "link": "https://example.org/2"}]))),
    )
    assert leases.claim(leases.POLL, [held.pk], token="a-worker") == {held.pk}  # a worker polls it now

    out = io.StringIO()
    call_command("poll", "held", "free", stdout=out)
    text = out.getvalue()
    assert "skipped Held: another process (a worker, or another `poll`) is polling it now" in text
    assert "Run this again after that" in text and "1 skipped" in text
    assert feed_requests(server) == 0 and feed_requests(server, "/free.xml") == 1
    assert list(Lease.objects.values_list("object_id", "token")) == [(held.pk, "a-worker")], (
        "its own released"
    )

    # The worker's lease runs out (it died): the next `poll` takes the source.
    Lease.objects.update(until=timezone.now() - timedelta(seconds=1))
    out = io.StringIO()
    call_command("poll", "held", stdout=out)
    assert "skipped" not in out.getvalue() and feed_requests(server) == 1
    assert Article.objects.filter(source=held).count() == 1 and not Lease.objects.exists()


@pytest.mark.slow  # a database migrated for it, and two processes
def test_two_poll_processes_for_one_source_fetch_it_once(worker_env, server):
    """Two real processes polling the same source, the second's poll run while the first
    (`manage.py poll`) is fetching the feed, which answers once the second is done: the second skips it and says so; the feed is
    fetched once and its entry stored once. On SQLite, or PostgreSQL when DATABASE_URL is set."""
    entry = {"guid": "1", "title": "Harbour reopens", "link": "https://example.org/1"}

    second_done = threading.Event()

    def slow(_handler):  # the feed answers once the second process is done (or after 15 s)
        second_done.wait(15)
        return Reply(200, rss([entry]), {"Content-Type": "application/rss+xml"})

    url = server.route("/feed.xml", slow)
    manage = [sys.executable, "manage.py"]
    env = worker_env
    run = {"cwd": REPO, "env": env, "capture_output": True, "text": True, "timeout": 300}
    subprocess.run([*manage, "migrate", "--noinput"], check=True, **run)
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            f"from aggregator.models import Source; Source.objects.create(name='Wire', slug='wire', feed_url='{url}')",
        ],
        check=True,
        **run,
    )
    # The second is a real process with Django set up, waiting for a line to run `poll`
    # (so its start-up, slow on a loaded machine, is not inside the first's fetch).
    second = subprocess.Popen(
        [
            *manage,
            "shell",
            "-c",
            "import sys; print('ready', flush=True); sys.stdin.readline(); "
            "from django.core.management import call_command; call_command('poll', 'wire')",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []  # the shell may first say what it imported
    while not lines or lines[-1] != "ready":
        line = second.stdout.readline()
        assert line, f"the second process ended: {lines} {second.stderr.read()[-2000:]}"
        lines.append(line.strip())
    first = subprocess.Popen(
        [*manage, "poll", "wire"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while feed_requests(server) == 0:  # the first holds the lease and is fetching
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    try:
        second_out, second_err = second.communicate("go\n", timeout=120)
    finally:
        second_done.set()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err, second_err)
    print(second_out, out, sep="\n")
    assert "skipped Wire: another process" in second_out and "1 skipped" in second_out
    assert "Polled 1 sources: 1 new articles" in out and "skipped" not in out
    assert feed_requests(server) == 1
    assert query(worker_env, "SELECT COUNT(*) FROM aggregator_article") == [(1,)]
    assert query(worker_env, "SELECT COUNT(*) FROM aggregator_lease WHERE kind = 'poll'") == [(0,)]
