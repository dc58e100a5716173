from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from aggregator import tasks
from aggregator.models import Article, Source
from tests.feeds import LOREM, page, rss
from tests.servers import Reply

pytestmark = pytest.mark.django_db


def test_the_dispatcher_polls_due_sources_and_workers_read_each_article(
    server, django_capture_on_commit_callbacks
):
    for i in range(2):
        server.route(f"/p{i}.html", Reply(200, page(f"Story {i}", LOREM), {"Content-Type": "text/html"}))
    feed = rss(
        [{"guid": f"g{i}", "title": f"Story {i}", "link": server.url(f"/p{i}.html")} for i in range(2)]
    )
    due = Source.objects.create(name="Due", slug="due", feed_url=server.route("/feed.xml", Reply(200, feed)))
    later = Source.objects.create(
        name="Later",
        slug="later",
        feed_url=server.url("/other.xml"),
        next_poll_at=timezone.now() + timedelta(hours=1),
    )
    paused = Source.objects.create(
        name="Paused", slug="paused", feed_url=server.url("/paused.xml"), is_active=False
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.dispatch_polls() == "enqueued 1 polls in 1 tasks"

    assert [path for path, _ in server.requests if path.endswith(".xml")] == ["/feed.xml"]
    assert (
        Article.objects.filter(source=due, state=Article.State.ENRICHED, insight__isnull=False).count() == 2
    )
    assert "public transport" in Article.objects.first().text
    for source in (later, paused):
        assert not source.articles.exists()
    due.refresh_from_db()
    assert due.next_poll_at > timezone.now()


def test_a_claimed_source_is_not_dispatched_twice(server):
    Source.objects.create(name="Due", slug="due", feed_url=server.url("/feed.xml"))
    assert len(tasks.claim_due_sources()) == 1
    assert tasks.claim_due_sources() == []


def test_the_dispatcher_claims_every_due_source_in_batches_not_a_fixed_number(
    settings, django_capture_on_commit_callbacks
):
    settings.POLL_BATCH = 10
    Source.objects.bulk_create(
        Source(name=f"S{i}", slug=f"s{i}", feed_url=f"http://127.0.0.1:9/{i}.xml", poll_interval=30 + i % 3)
        for i in range(1234)
    )
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        assert tasks.dispatch_polls() == "enqueued 1234 polls in 124 tasks"
    assert len(enqueued) == 124
    assert not Source.objects.due().exists()
    leases = {
        (s.next_poll_at - s.last_polled_at).total_seconds() / 60: s.poll_interval
        for s in Source.objects.all()
    }
    assert all(abs(lease - interval) < 0.01 for lease, interval in leases.items())  # each its own interval
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        assert tasks.dispatch_polls() == "enqueued 0 polls in 0 tasks"


def test_the_desk_shows_how_many_sources_wait_for_a_poll():
    from aggregator.desk import backlog

    Source.objects.create(name="Due", slug="due", feed_url="http://127.0.0.1:9/a.xml")
    Source.objects.create(
        name="Later",
        slug="later",
        feed_url="http://127.0.0.1:9/b.xml",
        next_poll_at=timezone.now() + timedelta(hours=1),
    )
    line = next(line for line in backlog(timezone.now()).lines if line.label == "Sources due for a poll")
    assert line.value.startswith("1")


def test_schedules_are_declared_idempotently():
    call_command("setup_schedules", stdout=io.StringIO())
    call_command("setup_schedules", stdout=io.StringIO())
    funcs = sorted(Schedule.objects.values_list("func", flat=True))
    assert funcs == [
        "aggregator.tasks.build_recap_task",
        "aggregator.tasks.dispatch_polls",
        "aggregator.tasks.recover_stuck_task",
        "aggregator.tasks.run_batches_task",
    ]
    recap = Schedule.objects.get(func="aggregator.tasks.build_recap_task")
    assert recap.schedule_type == Schedule.WEEKLY and recap.next_run.weekday() == 0


def test_worker_settings_are_safe(settings):
    q = settings.Q_CLUSTER
    assert q["retry"] > q["timeout"]
    assert q["max_attempts"] > 0
    assert q["catch_up"] is False


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_step_that_succeeded_is_not_a_failed_task_while_the_broker_is_down(server, monkeypatch, caplog):
    """Redis down (a real client, a port nobody listens on): the extraction succeeds and
    says so, the enrichment it hands on is logged as not enqueued, and the sweep
    enqueues it once the broker is back."""
    from django_q.conf import Conf

    url = server.route("/p.html", Reply(200, page("Story", LOREM), {"Content-Type": "text/html"}))
    source = Source.objects.create(name="S", slug="s", feed_url=server.url("/feed.xml"))
    article = Article.objects.create(source=source, guid="g", url=url, title="Story")
    with monkeypatch.context() as down:
        down.setattr(Conf, "SYNC", False)
        down.setattr(Conf, "ORM", None)
        down.setattr(Conf, "REDIS", "redis://127.0.0.1:9/0")  # discard port: connection refused
        outcome = tasks.extract_article_task(article.pk)  # raised before: counted as a failed task
    assert outcome.startswith("extracted")
    article.refresh_from_db()
    assert article.state == Article.State.EXTRACTED
    assert "could not enqueue aggregator.tasks.enrich_article_task" in caplog.text
    # Broker back (tasks inline again): the sweep finds the article and enriches it.
    Article.objects.filter(pk=article.pk).update(state_changed_at=timezone.now() - timedelta(hours=1))
    tasks.recover_stuck_task()
    article.refresh_from_db()
    assert article.state == Article.State.ENRICHED
