"""Polling many sources with the network waits overlapped (aggregator.ingest.run), and
one transaction per feed's entries. Real loopback servers that sleep before answering;
what is asserted is how many requests were in flight at once, never a time."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aggregator.ingest.run import poll_many
from aggregator.models import Article, Source
from tests.feeds import LOREM, page, rss
from tests.servers import Reply

pytestmark = pytest.mark.django_db


class InFlight:
    """Counts the requests a server is answering at once, each after `delay` seconds."""

    def __init__(self, delay: float = 0.15):
        self.delay, self.now, self.most = delay, 0, 0
        self.lock = threading.Lock()

    def __call__(self, reply: Reply):
        def route(handler):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(self.delay)
            with self.lock:
                self.now -= 1
            return reply

        return route


def test_it_fetches_several_feeds_and_pages_at_once_and_reads_every_article(server, settings):
    settings.FETCH_PER_HOST = 4
    from aggregator.ingest import http

    http._host_slots.clear()
    counter = InFlight()
    for f in range(3):
        entries = [
            {"guid": f"{f}-{e}", "title": f"Story {f}-{e}", "link": server.url(f"/{f}/{e}.html")}
            for e in range(3)
        ]
        server.route(f"/feed{f}.xml", counter(Reply(200, rss(entries, title=f"Feed {f}"))))
        for e in range(3):
            html = page(f"Story {f}-{e}", LOREM)
            server.route(f"/{f}/{e}.html", counter(Reply(200, html, {"Content-Type": "text/html"})))
        Source.objects.create(name=f"Feed {f}", slug=f"feed-{f}", feed_url=server.url(f"/feed{f}.xml"))
    seen = []
    totals = poll_many(Source.objects.all(), read=True, threads=8, on_read=lambda i, o: seen.append(o))
    http._host_slots.clear()
    assert (totals.polled, totals.failed, totals.new, totals.read) == (3, 0, 9, 9)
    assert Article.objects.filter(state=Article.State.ENRICHED).count() == 9
    assert all("extracted" in outcome for outcome in seen)
    assert 1 < counter.most <= 4  # overlapped, and never more than FETCH_PER_HOST on one host


def test_a_page_that_cannot_be_fetched_keeps_the_feed_text_and_the_run_goes_on(server):
    entries = [
        {
            "guid": "1",
            "title": "One",
            "link": server.url("/gone.html"),
            "description": "The feed's own words.",
        },
        {"guid": "2", "title": "Two", "link": "http://[::1"},  # not even a URL
    ]
    server.route("/feed.xml", Reply(200, rss(entries)))
    Source.objects.create(name="S", slug="s", feed_url=server.url("/feed.xml"))
    totals = poll_many(Source.objects.all(), read=True, threads=2)
    assert totals.read == 2
    article = Article.objects.get(guid="1")
    assert "feed's own text" in article.extraction_error and "The feed's own words." in article.text


def test_a_feeds_known_entries_are_looked_up_in_one_query(server):
    entries = [{"guid": str(i), "title": f"Story {i}", "link": server.url(f"/{i}")} for i in range(30)]
    url = server.route("/feed.xml", Reply(200, rss(entries)))
    Source.objects.create(name="S", slug="s", feed_url=url)
    poll_many(Source.objects.all(), read=False)
    assert Article.objects.count() == 30

    entries[0]["title"] = "Story 0, updated"
    server.route("/feed.xml", Reply(200, rss(entries)))
    with CaptureQueriesContext(connection) as queries:
        poll_many(Source.objects.all(), read=False)
    lookups = [
        q["sql"] for q in queries if q["sql"].startswith("SELECT") and '"aggregator_article"' in q["sql"]
    ]
    assert len(lookups) <= 3  # the known entries at once (and the schedule's dates), not 30 lookups
    assert Article.objects.get(guid="0").title == "Story 0, updated"
