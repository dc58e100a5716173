"""Every file of feedparser's third-party test corpus (2,107 real feeds, read in place
from ../shared) goes through the real poll path from a loopback server: nothing escapes,
usable entries are kept, a failure is recorded on the source in words, and nothing
executable from the 745 sanitizer cases reaches a page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone

from aggregator.ingest.poll import poll_source
from aggregator.models import Article, Source
from tests.conftest import CORPUS
from tests.servers import LoopbackServer, Reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}"),
]

FILES = (
    sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"LICENSE", "README.md"})
    if CORPUS.is_dir()
    else []
)
SANITIZE = [p for p in FILES if "wellformed/sanitize" in p.as_posix()]
HEADER = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.+?)\s*$", re.M)
SKIP_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection"}
# Our own two: the page's static script and the JSON-LD block (whose text is escaped).
SCRIPT = re.compile(r"<script(?![^>]*(?:src=\"/static/|type=\"application/ld\+json\"))", re.I)
EVENT_ATTR = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
BAD_URL = re.compile(
    r"""(?:href|src|action|formaction)\s*=\s*["']?\s*(?:javascript|vbscript|data:text/html)""", re.I
)
stats = {"files": 0, "failed": 0, "articles": 0}


def reply_for(path: Path) -> Reply:
    data = path.read_bytes()
    headers = {"Content-Type": "application/xml"}
    for name, value in HEADER.findall(data[:2000]):
        key = name.decode("latin-1")
        if key.lower() not in SKIP_HEADERS:
            headers["Content-Type" if key.lower() == "content-type" else key] = value.decode("latin-1")
    return Reply(200, data, headers)


@pytest.fixture(scope="module")
def corpus_server():
    with LoopbackServer() as srv:
        for n, path in enumerate(FILES):
            srv.route(f"/{n}", reply_for(path))
        yield srv
    print(
        f"\ncorpus: {stats['files']} feeds polled, {stats['articles']} articles kept, "
        f"{stats['failed']} recorded as failures in words"
    )


def poll_file(server: LoopbackServer, path: Path) -> Source:
    n = FILES.index(path)
    source = Source.objects.create(name=path.name, slug=f"c{n}", feed_url=server.url(f"/{n}"))
    source.claim_poll(now=timezone.now(), lease_minutes=30)
    result = poll_source(source)
    source.refresh_from_db()
    stats["files"] += 1
    stats["articles"] += len(result.new_article_ids)
    if result.status == "failed":
        stats["failed"] += 1
        assert source.consecutive_failures == 1
        assert len(source.last_error) > 10 and " " in source.last_error, source.last_error
    else:
        assert (
            source.articles.count()
            == len(result.new_article_ids) + source.articles.exclude(pk__in=result.new_article_ids).count()
        )
    return source


def assert_inert(html: str, where: str) -> None:
    assert not SCRIPT.search(html), f"<script> on {where}"
    assert not EVENT_ATTR.search(html), (
        f"event handler attribute on {where}: {EVENT_ATTR.search(html).group(0)}"
    )
    assert not BAD_URL.search(html), f"executable URL on {where}: {BAD_URL.search(html).group(0)}"


@pytest.mark.django_db
@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(CORPUS).as_posix() for p in FILES])
def test_every_corpus_feed_goes_through_the_poll_path(corpus_server, path):
    poll_file(corpus_server, path)


@pytest.mark.django_db
@pytest.mark.parametrize("path", SANITIZE, ids=[p.name for p in SANITIZE])
def test_sanitizer_cases_put_nothing_executable_on_any_page(corpus_server, client, path):
    source = poll_file(corpus_server, path)
    for article in Article.objects.filter(source=source):
        Article.objects.filter(pk=article.pk).update(
            text="", state=Article.State.EXTRACTED
        )  # show the feed's HTML
        assert_inert(client.get(article.get_absolute_url()).content.decode(), f"{path.name} article page")
    assert_inert(client.get("/").content.decode(), f"{path.name} front page")
    assert_inert(
        client.get("/feeds/rss/").content.decode().replace("&lt;", "<").replace("&gt;", ">"),
        f"{path.name} RSS feed (as a reader would unescape it)",
    )
