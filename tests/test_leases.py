"""Leases (aggregator.ingest.leases): each unit of work is claimed in the database with
a short lease, renewed while a worker works, cleared when it is done; one that runs out
is handed out again by the next tick, whatever the broker lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from aggregator import tasks
from aggregator.ingest import leases
from aggregator.models import Article, Lease, Source
from tests.conftest import REPO
from tests.feeds import LOREM, page, rss
from tests.servers import Reply

ARTICLE, POLL = leases.ARTICLE, leases.POLL


@pytest.mark.django_db
def test_a_unit_has_one_holder_until_its_lease_runs_out():
    now = timezone.now()
    assert leases.claim(ARTICLE, [1, 2], token="a", now=now) == {1, 2}
    assert leases.claim(ARTICLE, [2, 3], token="b", now=now) == {3}
    assert leases.mark_queued(ARTICLE, [1, 4], now=now) == {4}, "a held unit is not queued again"
    assert leases.claim(ARTICLE, [4], token="c", now=now) == {4}, "a worker takes a queued unit"
    leases.release(ARTICLE, [1], token="b")  # not b's: stays
    assert leases.claim(ARTICLE, [1], token="d", now=now) == set()
    leases.release(ARTICLE, [1], token="a")
    assert leases.claim(ARTICLE, [1], token="d", now=now) == {1}
    later = now + timedelta(seconds=leases.lease_length().total_seconds() + 1)
    assert leases.claim(ARTICLE, [2, 3], token="e", now=later) == {2, 3}, "run out: taken over"
    assert leases.claim(POLL, [2], token="f", now=now) == {2}, "kinds are apart"
    assert dict(Lease.objects.filter(kind=ARTICLE).values_list("object_id", "token")) == {
        1: "d",
        2: "e",
        3: "e",
        4: "c",
    }


@pytest.mark.django_db
def test_a_step_inside_a_step_keeps_the_outer_hold():
    with leases.held(ARTICLE, [7]) as outer:
        with leases.held(ARTICLE, [7, 8]) as inner:
            assert inner.ids == {7, 8} and inner.own == {8}
        assert Lease.objects.filter(object_id=7, token=outer.token).exists()
        assert not Lease.objects.filter(object_id=8).exists()
    assert not Lease.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lease_is_renewed_while_its_worker_works_and_cleared_when_done(settings):
    settings.LEASE_SECONDS = 3  # renewed every second
    with leases.held(ARTICLE, [1]) as hold:
        first = Lease.objects.get(object_id=1).until
        deadline = time.monotonic() + 60
        while Lease.objects.get(object_id=1).until <= first + timedelta(seconds=3):
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.2)
        # Past the first lease: another worker still finds it held.
        assert timezone.now() > first
        assert leases.claim(ARTICLE, [1], token="other") == set()
        assert hold.ids == {1}
    assert not Lease.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_poll_whose_worker_died_is_dispatched_again_after_its_lease_not_its_interval(server, settings):
    settings.LEASE_SECONDS = 60
    server.route("/1.html", Reply(200, page("One", LOREM), {"Content-Type": "text/html"}))
    one = {"guid": "1", "title": "One", "link": server.url("/1.html")}
    feed = server.route("/feed.xml", Reply(200, rss([one])))
    source = Source.objects.create(name="S", slug="s", feed_url=feed, poll_interval=30)
    assert [s.pk for s in tasks.claim_due_sources()] == [source.pk]
    assert tasks.claim_due_sources() == [], "queued: not dispatched twice"
    # The worker took it and was killed mid-poll: its lease stays until it runs out.
    assert leases.claim(POLL, [source.pk], token="killed") == {source.pk}
    assert tasks.poll_source_task(source.pk).startswith("skipped"), "a live lease: no double work"
    assert tasks.claim_due_sources() == []
    Lease.objects.update(until=timezone.now() - timedelta(seconds=1))
    source.refresh_from_db()
    assert source.next_poll_at > timezone.now() + timedelta(minutes=20), "its next poll is far away"
    assert [s.pk for s in tasks.claim_due_sources()] == [source.pk], "but its lease ran out"
    assert "1 new" in tasks.poll_sources_task([source.pk])
    assert not Lease.objects.filter(kind=POLL).exists(), "a finished poll clears its lease"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_article_whose_worker_died_mid_step_reaches_its_final_state_once(server, settings):
    settings.LEASE_SECONDS = 60
    url = server.route("/a.html", Reply(200, page("Harbour reopens", LOREM), {"Content-Type": "text/html"}))
    source = Source.objects.create(name="S", slug="s", feed_url=server.url("/feed.xml"))
    article = Article.objects.create(source=source, guid="g", url=url, title="Harbour reopens")
    long_ago = timezone.now() - timedelta(minutes=5)
    # A worker claimed it, began extracting, and was killed.
    leases.claim(ARTICLE, [article.pk], token="killed", now=long_ago)
    Article.objects.filter(pk=article.pk).update(state=Article.State.EXTRACTING, state_changed_at=long_ago)
    assert "1 extractions" in tasks.recover_stuck_task()  # tasks run inline (Q sync)
    article.refresh_from_db()
    assert article.state == Article.State.ENRICHED and article.story_id is not None
    assert article.insight is not None and len(server.requests) == 1
    assert not Lease.objects.exists()
    assert "0 extractions, 0 enrichments, 0 clusterings" in tasks.recover_stuck_task()


RACE = """
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
django.setup()
from aggregator.ingest.leases import ARTICLE, claim
from django.db import connection
connection.ensure_connection()
token = sys.argv[1]
print("ready", flush=True)
start = float(sys.stdin.readline())
won = []
for unit in range(1, 101):  # every racer claims unit n at start + n/20 s: at the same moment
    time.sleep(max(0, start + unit / 20 - time.time()))
    if claim(ARTICLE, [unit], token=token):
        won.append(unit)
print(json.dumps(won))
"""


@pytest.mark.slow  # a database migrated for it, and four processes
def test_two_processes_claiming_the_same_units_at_once_get_each_one_once(worker_env, tmp_path):
    """Three processes race for the same 100 units, each unit at the same moment,
    each process with its own connection: every unit is won by exactly one of them.
    On SQLite, or on PostgreSQL when DATABASE_URL is set (CI's second run)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=worker_env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    script = tmp_path / "race.py"
    script.write_text(RACE)
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), f"racer{i}"],
            cwd=REPO,
            env=worker_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for racer in racers:  # each is connected to the database and waits for the start
        assert racer.stdout.readline().strip() == "ready", racer.stderr.read()[-2000:]
    start = time.time() + 1
    for racer in racers:
        racer.stdin.write(f"{start}\n")
        racer.stdin.flush()
    won = {}
    for i, racer in enumerate(racers):
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-2000:]
        won[f"racer{i}"] = json.loads(out.strip().splitlines()[-1])
    winners = sorted(unit for units in won.values() for unit in units)
    assert winners == list(range(1, 101)), "each unit won exactly once"
    print({name: len(units) for name, units in won.items()})
