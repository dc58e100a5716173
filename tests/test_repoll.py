"""Re-polling feeds that have not changed: one conditional GET each (ETag or
Last-Modified, whichever the feed gave), or the same bytes again for a feed that gives
neither, and nothing written but the sources' schedule: no article, no poll log, no
move of the content generation (so no cached page is thrown away). Through
`poll_many` (`manage.py poll`) and through the dispatcher's tasks.

Transactional database: the generation moves only after a commit, which is the point."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aggregator import tasks
from aggregator.ingest.run import poll_many
from aggregator.models import Article, PollLog, Source
from aggregator.pagecache import current_generation, written_table
from tests.feeds import rss
from tests.servers import Reply

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

LAST_MODIFIED = "Tue, 24 Nov 2026 08:00:00 GMT"
ARTICLE_FIELDS = ("pk", "title", "summary_html", "state", "state_changed_at")


def publish(server) -> list[str]:
    """Three feeds of three entries: one with an ETag, one with a Last-Modified only, one
    with neither (it can only be told unchanged by its bytes)."""
    paths = []
    for kind in ("etag", "modified", "plain"):
        items = [
            {"guid": f"{kind}-{i}", "title": f"{kind} story {i}", "link": server.url(f"/{kind}/{i}.html")}
            for i in range(3)
        ]
        body = rss(items, title=f"The {kind} feed")

        def route(handler, body=body, kind=kind):
            if kind == "etag":
                if handler.headers.get("If-None-Match") == '"v1"':
                    return Reply(304, b"", {"ETag": '"v1"'})
                return Reply(200, body, {"ETag": '"v1"'})
            if kind == "modified":
                if handler.headers.get("If-Modified-Since") == LAST_MODIFIED:
                    return Reply(304, b"")
                return Reply(200, body, {"Last-Modified": LAST_MODIFIED})
            return Reply(200, body)

        path = f"/{kind}.xml"
        Source.objects.create(name=f"The {kind} feed", slug=kind, feed_url=server.route(path, route))
        paths.append(path)
    return paths


def writes(queries) -> Counter:
    return Counter(t for q in queries.captured_queries if (t := written_table(q["sql"])))


def test_a_repoll_of_unchanged_feeds_is_one_conditional_get_each_and_writes_no_article(server):
    paths = publish(server)
    first = poll_many(Source.objects.all(), read=False)
    assert (first.polled, first.new) == (3, 9)
    generation, logs = current_generation()[0], PollLog.objects.count()
    server.requests.clear()

    outcomes = {}
    with CaptureQueriesContext(connection) as queries:
        totals = poll_many(
            Source.objects.all(), read=False, on_poll=lambda s, r: outcomes.update({s.slug: r.status})
        )

    assert (totals.polled, totals.failed, totals.new) == (3, 0, 0)
    assert outcomes == {"etag": "not-modified", "modified": "not-modified", "plain": "unchanged"}
    sent = dict(server.requests)
    assert sorted(sent) == sorted(paths)  # one request per feed, no page fetched
    assert sent["/etag.xml"].get("If-None-Match") == '"v1"'
    assert sent["/modified.xml"].get("If-Modified-Since") == LAST_MODIFIED
    assert "If-None-Match" not in sent["/plain.xml"] and "If-Modified-Since" not in sent["/plain.xml"]
    # The claims of all three in one statement per lease length, and nothing else.
    leases = {source.poll_interval for source in Source.objects.all()}
    assert writes(queries) == Counter({"aggregator_source": len(leases)})
    assert current_generation()[0] == generation
    assert PollLog.objects.count() == logs
    assert Article.objects.count() == 9


def test_the_dispatcher_repolls_unchanged_feeds_without_writing_anything_readers_see(server):
    paths = publish(server)
    poll_many(Source.objects.all(), read=False)
    generation, logs = current_generation()[0], PollLog.objects.count()
    article_rows = list(Article.objects.order_by("pk").values_list(*ARTICLE_FIELDS))
    Source.objects.update(next_poll_at=timezone.now() - timedelta(minutes=1))  # all due
    server.requests.clear()

    with CaptureQueriesContext(connection) as queries:
        assert tasks.dispatch_polls() == "enqueued 3 polls in 1 tasks"  # tasks run inline (sync)

    assert sorted(path for path, _ in server.requests) == sorted(paths)
    written = writes(queries)
    assert "aggregator_article" not in written and "aggregator_polllog" not in written
    assert current_generation()[0] == generation
    assert PollLog.objects.count() == logs
    assert list(Article.objects.order_by("pk").values_list(*ARTICLE_FIELDS)) == article_rows
    assert not Source.objects.due().exists()  # each leased until its next poll


def test_a_feed_that_changed_is_read_again_after_304s(server):
    """The shortcut must not hide a change: a new ETag and body are read and stored."""
    publish(server)
    poll_many(Source.objects.all(), read=False)
    items = [{"guid": "etag-new", "title": "A new story", "link": server.url("/etag/new.html")}]
    server.route("/etag.xml", Reply(200, rss(items, title="The etag feed"), {"ETag": '"v2"'}))
    generation = current_generation()[0]

    totals = poll_many(Source.objects.all(), read=False)

    assert totals.new == 1
    assert Source.objects.get(slug="etag").etag == '"v2"'
    assert current_generation()[0] > generation
