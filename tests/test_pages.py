from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from aggregator.ingest import leases
from aggregator.ingest.extract import ExtractionError, extract_html
from aggregator.ingest.pages import MAX_ATTEMPTS, extract_article
from aggregator.models import Article, Source
from tests.feeds import LOREM, page
from tests.servers import Reply

pytestmark = pytest.mark.django_db
State = Article.State


def make_article(url: str, **kwargs) -> Article:
    source, _ = Source.objects.get_or_create(
        slug="s", defaults={"name": "S", "feed_url": "http://127.0.0.1:9/f"}
    )
    defaults = {"guid": url, "title": "A title", "summary_html": "<p>The feed's summary.</p>"}
    return Article.objects.create(source=source, url=url, **{**defaults, **kwargs})


def test_it_extracts_the_main_text_and_metadata(server):
    url = server.route(
        "/a.html",
        Reply(
            200, page("Council passes budget", LOREM, lang="de"), {"Content-Type": "text/html; charset=utf-8"}
        ),
    )
    article = make_article(url)
    outcome = extract_article(article.pk)
    article.refresh_from_db()
    assert "extracted" in outcome
    assert article.state == State.EXTRACTED
    assert "public transport" in article.text and "Home · About" not in article.text
    assert article.author == "Ada Writer"
    assert article.language == "de"
    assert article.extraction_error == ""


def test_it_keeps_the_feed_text_when_the_page_cannot_be_had(server):
    url = server.route("/gone.html", Reply(404, b"gone", {"Content-Type": "text/html"}))
    article = make_article(url, content_html="<p>Full text from the feed.</p>")
    extract_article(article.pk)
    article.refresh_from_db()
    assert article.state == State.EXTRACTED
    assert article.text == "Full text from the feed."
    assert "404" in article.extraction_error


def test_it_keeps_the_feed_text_when_the_page_is_not_html(server):
    url = server.route("/a.pdf", Reply(200, b"%PDF-1.4", {"Content-Type": "application/pdf"}))
    article = make_article(url)
    extract_article(article.pk)
    article.refresh_from_db()
    assert article.text == "The feed's summary." and "application/pdf" in article.extraction_error


def test_it_leaves_an_article_another_worker_holds(server):
    url = server.route("/a.html", Reply(200, page("T", LOREM), {"Content-Type": "text/html"}))
    article = make_article(url, state=State.EXTRACTING)
    assert leases.claim(leases.ARTICLE, [article.pk], token="another-worker") == {article.pk}
    assert extract_article(article.pk).startswith("skipped")
    assert server.requests == []
    # That worker dies: once its lease has run out the article is read again.
    leases.Lease.objects.update(until=timezone.now() - timedelta(seconds=1))
    assert extract_article(article.pk).startswith("extracted")
    article.refresh_from_db()
    assert article.state == State.EXTRACTED and article.extract_attempts == 1
    assert not leases.Lease.objects.exists(), "a finished step clears its lease"


def test_running_twice_is_harmless(server):
    url = server.route("/a.html", Reply(200, page("T", LOREM), {"Content-Type": "text/html"}))
    article = make_article(url)
    extract_article(article.pk)
    assert extract_article(article.pk).startswith("skipped")
    assert len(server.requests) == 1


def test_the_sweep_hands_out_again_what_a_dead_worker_or_a_lost_task_left(settings):
    settings.LEASE_SECONDS = 60
    long_ago = timezone.now() - timedelta(hours=1)
    stuck = make_article(
        "http://127.0.0.1:9/1",
        guid="1",
        state=State.EXTRACTING,
        state_changed_at=long_ago,
        extract_attempts=1,
    )
    lost = make_article("http://127.0.0.1:9/2", guid="2", state=State.DISCOVERED, state_changed_at=long_ago)
    poison = make_article(
        "http://127.0.0.1:9/3",
        guid="3",
        state=State.EXTRACTING,
        state_changed_at=long_ago,
        extract_attempts=MAX_ATTEMPTS,
    )
    held = make_article("http://127.0.0.1:9/4", guid="4", state=State.EXTRACTING, state_changed_at=long_ago)
    fresh = make_article("http://127.0.0.1:9/5", guid="5")  # its task is on its way
    leases.claim(leases.ARTICLE, [stuck.pk], token="dead", now=long_ago)  # ran out long ago
    leases.claim(leases.ARTICLE, [held.pk], token="alive")
    steps = leases.sweep_articles()
    assert sorted(steps["extract"]) == sorted([stuck.pk, lost.pk, poison.pk])
    assert leases.sweep_articles()["extract"] == [], "marked queued: not handed out twice while it waits"
    # The worker the task reaches reads it again; the poison page is given up on.
    assert extract_article(poison.pk).startswith("gave up")
    poison.refresh_from_db()
    assert poison.state == State.EXTRACTED and "gave up" in poison.extraction_error
    assert poison.text == "The feed's summary."
    assert extract_article(held.pk).startswith("skipped")
    fresh.refresh_from_db()
    assert fresh.state == State.DISCOVERED


def test_extraction_refuses_a_page_over_the_cap(settings):
    settings.EXTRACT_MAX_BYTES = 1000
    with pytest.raises(ExtractionError, match="cap"):
        extract_html(page("Big", LOREM * 10))


def test_extraction_is_interrupted_at_its_time_limit():
    huge = page("Huge", [" ".join(LOREM)] * 3000)
    with pytest.raises(ExtractionError, match="longer than"):
        extract_html(huge, time_limit_s=0.01)


def test_extraction_says_when_there_is_no_text():
    with pytest.raises(ExtractionError, match="no article text"):
        extract_html(b"<html><head><title>x</title></head><body></body></html>")


def link_farm(count: int, *, meta_date: str = "") -> bytes:
    """An article followed by `count` numbered links (among them the numbers 1995…2026)."""
    meta = f'<meta property="article:published_time" content="{meta_date}">' if meta_date else ""
    links = "".join(f'<a href="/p/{i}">{i}</a> ' for i in range(count))
    html = page("Council passes budget", LOREM).decode()
    html = html.replace("<title>", meta + "<title>").replace("</footer>", f"</footer><div>{links}</div>")
    return html.encode()


def test_a_page_full_of_numbered_links_has_no_guessed_date():
    assert extract_html(link_farm(2100)).date == ""


@pytest.mark.slow
def test_a_page_of_80000_links_has_no_guessed_date(settings):
    settings.EXTRACT_MAX_LINKS = 100_000  # the date logic itself (such a page is refused by default)
    extraction = extract_html(link_farm(80_000), time_limit_s=120)
    assert extraction.date == "" and extraction.published_at is None


def test_the_publishers_own_date_is_still_read():
    assert extract_html(link_farm(2100, meta_date="2026-11-18T09:30:00+00:00")).date == "2026-11-18"


def test_a_page_of_16000_comment_blocks_is_cut_to_a_bounded_tree_and_keeps_its_article():
    from lxml import etree

    from aggregator.ingest.extract import MAX_NODES, bounded_html

    blocks = "".join(
        f"<div><div><b>reader {i}</b> <span>more news {i}</span></div></div>" for i in range(16_000)
    )
    html = page("Council passes budget", LOREM).decode().replace("</footer>", f"</footer>{blocks}").encode()
    assert len(html) > 1_000_000
    cut = bounded_html(html)
    nodes = sum(1 for _ in etree.fromstring(cut, etree.HTMLParser()).iter())
    assert nodes <= MAX_NODES + 10
    assert "more news 15999" not in cut.decode()
    extraction = extract_html(html)
    assert LOREM[0][:60] in extraction.text and "more news 15999" not in extraction.text


def test_boilerplate_and_long_tables_never_reach_trafilatura_but_the_text_around_them_does():
    from aggregator.ingest.extract import MAX_TABLE_ROWS, bounded_html

    rows = "".join(f"<tr><td>row {i}</td></tr>" for i in range(MAX_TABLE_ROWS + 50))
    html = (
        "<html><head><style>p{color:red}</style><script>var secret=1</script></head><body>"
        "<nav><a href='/'>Home</a></nav><p>Before<script>x()</script> after the script.</p>"
        f"<table>{rows}</table><form><input name=q></form><footer>Footer text</footer></body></html>"
    ).encode()
    cut = bounded_html(html).decode()
    for gone in ("secret", "color:red", "Home", "<form", "Footer text", f"row {MAX_TABLE_ROWS}<"):
        assert gone not in cut
    assert "Before after the script." in cut and f"row {MAX_TABLE_ROWS - 1}<" in cut
