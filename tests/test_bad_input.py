"""Bad input gets a clear result: invalid addresses refused in words, impossible weeks
a 404, a page of links not taken for an article, entries sharing a page kept apart,
undeclared encodings detected, and a huge feed stored a chunk at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.utils import timezone

from aggregator.ingest.extract import ExtractionError, clip_text, extract_html
from aggregator.ingest.http import FetchError, fetch
from aggregator.ingest.pages import extract_article
from aggregator.ingest.poll import poll_source
from aggregator.models import Article, Source
from tests.feeds import rss
from tests.servers import Reply

pytestmark = pytest.mark.django_db


def make_source(url: str, slug: str = "s") -> Source:
    return Source.objects.create(name=slug, slug=slug, feed_url=url)


def poll(source: Source):
    source.refresh_from_db()
    assert source.claim_poll(now=timezone.now(), lease_minutes=30)
    return poll_source(source)


# --- addresses httpx cannot even parse -------------------------------------------------


@pytest.mark.parametrize("url", ["http://0177.0.0.1/feed.xml", "http://[::1/feed.xml", "http://a..b/x"])
def test_it_refuses_an_invalid_address_in_words(url):
    with pytest.raises(FetchError) as caught:
        fetch(url)
    assert "valid" in str(caught.value)


def test_it_refuses_a_redirect_to_an_invalid_address(server):
    url = server.route("/r", Reply(302, b"", {"Location": "http://0177.0.0.1/x"}))
    with pytest.raises(FetchError):
        fetch(url)


def test_a_source_at_an_invalid_address_records_a_failure():
    source = make_source("http://0177.0.0.1/feed.xml")
    result = poll(source)
    source.refresh_from_db()
    assert result.status == "failed"
    assert "not a valid URL" in source.last_error and source.consecutive_failures == 1


def test_an_article_at_an_invalid_address_keeps_the_feed_text():
    source = make_source("http://127.0.0.1:9/f")
    article = Article.objects.create(
        source=source, guid="g", url="http://0177.0.0.1/a", title="T", summary_html="<p>From the feed.</p>"
    )
    extract_article(article.pk)
    article.refresh_from_db()
    assert article.state == Article.State.EXTRACTED
    assert article.text == "From the feed." and "not a valid URL" in article.extraction_error


# --- weeks that do not exist --------------------------------------------------------


@pytest.mark.parametrize("path", ["/week/9999/52/", "/week/1/1/", "/week/2026/54/", "/week/0/1/"])
def test_an_impossible_week_is_not_found(client, path):
    assert client.get(path).status_code == 404


def test_the_last_weeks_before_the_end_still_render(client):
    assert client.get("/week/9999/50/").status_code == 200


# --- a page of links ----------------------------------------------------------------


def links_page(n: int) -> bytes:
    links = "".join(f'<a href="/p{i}">link {i}</a> ' for i in range(n))
    return f"<html><body><h1>Index</h1>{links}</body></html>".encode()


def test_a_page_of_80000_links_is_not_an_article(settings):
    settings.EXTRACT_MAX_BYTES = 4 * 1024 * 1024
    with pytest.raises(ExtractionError, match="80,000 links"):
        extract_html(links_page(80_000), url="http://example.com/")


def test_an_article_whose_page_is_a_link_directory_keeps_the_feed_text(server, settings):
    settings.EXTRACT_MAX_BYTES = 4 * 1024 * 1024
    url = server.route("/index.html", Reply(200, links_page(80_000), {"Content-Type": "text/html"}))
    source = make_source("http://127.0.0.1:9/f")
    article = Article.objects.create(
        source=source, guid="g", url=url, title="T", summary_html="<p>The summary.</p>"
    )
    extract_article(article.pk)
    article.refresh_from_db()
    assert article.text == "The summary." and "links" in article.extraction_error


def test_article_text_is_clipped_at_a_paragraph():
    text = "\n".join(f"Paragraph {i} " + "word " * 50 for i in range(1000))
    clipped = clip_text(text, 10_000)
    assert len(clipped) <= 10_002 and clipped.endswith(" …")
    assert clipped[:-2].rstrip().endswith("word")
    assert clip_text("short", 10) == "short"


def test_extracted_text_is_capped(settings):
    settings.EXTRACT_MAX_CHARS = 2_000
    paragraphs = "".join(
        f"<p>Sentence number {i} of a very long report about the budget.</p>" for i in range(400)
    )
    doc = extract_html(f"<html><body><article>{paragraphs}</article></body></html>".encode())
    assert len(doc.text) <= 2_002


# --- entries that share one page ----------------------------------------------------

SCRIPTING_NEWS_DAYS = ["2002/09/29", "2002/09/30"]


def scripting_news_sample() -> bytes:
    """In the shape of the RSS 2.0 specification's own sample (Scripting News): items
    without title or link, each a permalink guid to an anchor on the day's page."""
    items = []
    start = datetime(2002, 9, 30, 19, 0, tzinfo=UTC)
    for n in range(9):
        day = SCRIPTING_NEWS_DAYS[0] if n >= 5 else SCRIPTING_NEWS_DAYS[1]
        when = start - timedelta(hours=5 * n)
        anchor = f"When:{when:%-I:%M:%S%p}"
        items.append(
            f"<item><description>Item {n}: a note about something that happened today.</description>"
            f"<pubDate>{format_datetime(when)}</pubDate>"
            f"<guid>http://scriptingnews.userland.com/backissues/{day}#{anchor}</guid></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Scripting News</title>'
        "<link>http://www.scripting.com/</link><description>A weblog about scripting.</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def test_every_item_of_the_rss_spec_sample_is_kept(server):
    url = server.route("/sn.xml", Reply(200, scripting_news_sample()))
    source = make_source(url)
    result = poll(source)
    assert len(result.new_article_ids) == 9
    titles = set(Article.objects.values_list("title", flat=True))
    assert len(titles) == 9
    poll(source)  # again: nothing overwritten
    assert set(Article.objects.values_list("title", flat=True)) == titles


def test_a_live_blog_keeps_each_entry_at_one_page_apart(server):
    live = "http://example.com/live/election"
    entries = [{"guid": f"update-{i}", "title": f"Update {i}", "link": live} for i in range(5)]
    url = server.route("/live.xml", Reply(200, rss(entries)))
    source = make_source(url)
    poll(source)
    poll(source)
    assert sorted(Article.objects.values_list("title", flat=True)) == [f"Update {i}" for i in range(5)]
    assert Article.objects.filter(canonical_url=live).count() == 1  # the first keeps the page's address


def test_another_feed_linking_the_same_page_is_still_a_syndicated_copy(server):
    link = "http://example.com/story"
    first = make_source(
        server.route("/a.xml", Reply(200, rss([{"guid": "a", "title": "A", "link": link}]))), "a"
    )
    second = make_source(
        server.route("/b.xml", Reply(200, rss([{"guid": "b", "title": "B", "link": link}]))), "b"
    )
    poll(first)
    result = poll(second)
    assert result.new_article_ids == [] and Article.objects.count() == 1


# --- undeclared encodings -----------------------------------------------------------

RUSSIAN = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Новости дня</title><link>http://example.ru/</link>
<item><title>Правительство утвердило новый бюджет на следующий год</title><link>http://example.ru/1</link>
<description>Министерство финансов представило проект, который предусматривает рост расходов.</description></item>
<item><title>В Москве открылась выставка современного искусства</title><link>http://example.ru/2</link>
</item></channel></rss>"""


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml"])
def test_a_windows_1251_feed_without_a_declaration_is_read_right(server, content_type):
    url = server.route("/ru.xml", Reply(200, RUSSIAN.encode("cp1251"), {"Content-Type": content_type}))
    source = make_source(url)
    poll(source)
    source.refresh_from_db()
    assert source.last_error == ""
    assert set(Article.objects.values_list("title", flat=True)) == {
        "Правительство утвердило новый бюджет на следующий год",
        "В Москве открылась выставка современного искусства",
    }


def test_a_charset_sent_in_the_http_header_is_honoured(server):
    body = RUSSIAN.encode("koi8_r")
    url = server.route("/ru.xml", Reply(200, body, {"Content-Type": "application/rss+xml; charset=koi8-r"}))
    poll(make_source(url))
    assert Article.objects.filter(title__startswith="Правительство").exists()


# --- a huge feed, a chunk at a time -------------------------------------------------


def test_a_huge_feed_is_stored_a_chunk_per_poll_until_done(server, settings):
    settings.POLL_TIME_BUDGET = 0  # every poll out of time after its first chunk of new work
    entries = [
        {"guid": f"g{i}", "title": f"Entry {i}", "link": f"http://example.com/e/{i}"} for i in range(1_300)
    ]
    url = server.route("/big.xml", Reply(200, rss(entries)))
    source = make_source(url)
    done = []
    for _ in range(5):
        result = poll(source)
        source.refresh_from_db()
        done.append(Article.objects.count())
        if not source.last_error:
            break
        assert "the rest next poll" in source.last_error
        assert source.next_poll_at < timezone.now() + timedelta(minutes=2)
        assert source.content_hash == ""  # read again next time
    assert done == [500, 1000, 1300]
    assert result.entries == 1_300 and source.content_hash != ""
    assert Article.objects.values("guid").distinct().count() == 1_300
