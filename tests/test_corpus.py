"""Every file of feedparser's third-party test corpus (2,107 real feeds, read in place
from ../shared, never copied) goes through the real poll path, fetched over HTTP from a
loopback server: no exception escapes poll_source, usable entries are kept as the
source's articles, a failure is recorded on the source in words, and nothing executable
from a feed (the 745 sanitizer cases above all) reaches the front page or an article page.

"Usable entries are kept" is counted against feedparser's own reading of the same bytes
with the same headers: an entry with an id or a link and something to show (a title, a
summary or content) is usable, and each must be stored under its id (or, with none, its
link). The only differences allowed are the documented ones, counted in the summary line:

- duplicates by design: entries of one feed with the same id (or, with no id, the same
  link) are one entry, stored once (the later one updates it);
- kept beyond feedparser's count: an entry with no id and no http(s) link but a headline
  or text of its own (stored under a hash of headline and date), and an entry that is a
  bare link (nothing to show in the feed: its page is fetched and read);
- not kept, for a stated reason: an entry with nothing a reader could read (no title and
  no text once sanitized: markup alone, such as an image, MathML or SVG, or text hidden
  by a zero font size) and no http(s) link to read it from (none, or `javascript:`,
  `ftp:`…); the poll's warning counts them ("N entries had no title, text or link").
  encoding/http_encoding_attribute_crash.xml is one: its only entry is an <img alt=…>
  with no id and no link, which feedparser does not count as usable either (a count of
  entries with "something to show" alone, 1, against our 0, was the earlier mismatch).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import feedparser
import pytest
from django.templatetags.static import static
from django.test import Client
from django.utils import timezone

from aggregator.ingest.clean import html_to_text, sanitize_html, text_line
from aggregator.ingest.poll import poll_source
from aggregator.models import Article, Source, guid_key
from tests.conftest import CORPUS
from tests.servers import LoopbackServer, Reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the feedparser corpus is not at {CORPUS}"),
]

FILES = (
    sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.relative_to(CORPUS).as_posix() not in {"LICENSE", "README.md"}
    )
    if CORPUS.is_dir()
    else []
)
IDS = [p.relative_to(CORPUS).as_posix() for p in FILES]
NUMBER = {path: n for n, path in enumerate(FILES)}

# `Header:   Content-type: text/xml; charset=utf-8` in the file's leading comment: what
# feedparser's own tests send with it. Values may be empty (`Last-Modified:`).
HEADER_LINE = re.compile(rb"^Header:[ \t]*([A-Za-z0-9-]+):[ \t]*(.*?)[ \t]*\r?$", re.M)
# The server frames the body itself.
FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection"}

stats = {
    "files": 0,
    "articles": 0,
    "failures": 0,
    "usable": 0,
    "duplicates": 0,
    "headline only": 0,
    "bare links": 0,
    "unreadable": 0,
}


def reply_for(path: Path) -> Reply:
    data = path.read_bytes()
    head = data[:4096].split(b"-->", 1)[0]  # the leading comment
    headers = {}
    for name, value in HEADER_LINE.findall(head):
        key = name.decode("ascii")
        if key.lower() in FRAMING:
            continue
        # One spelling: the server adds its own "Content-Type" default otherwise.
        headers["Content-Type" if key.lower() == "content-type" else key] = value.decode("latin-1")
    return Reply(200, data, headers)  # Content-Type defaults to application/xml


def url_path(path: Path) -> str:
    return "/" + quote(path.relative_to(CORPUS).as_posix())


@pytest.fixture(scope="module")
def corpus_server(request):
    with LoopbackServer() as srv:
        for path in FILES:
            srv.route(url_path(path), reply_for(path))
        yield srv
    line = (
        f"feedparser corpus: {stats['files']} files polled, {stats['articles']} articles kept, "
        f"{stats['failures']} polls recorded as failures; of feedparser's {stats['usable']} usable "
        f"entries all kept but {stats['duplicates']} duplicates by design and "
        f"{stats['unreadable']} with nothing readable and no http(s) link; kept beyond its "
        f"count: {stats['headline only']} headline-only entries, {stats['bare links']} bare links"
    )
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:  # e.g. an xdist worker
        print(line)
        return

    def show():  # figures, not assertions: after pytest's own summary, never captured
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    request.config.add_cleanup(show)


# --- what "nothing executable" means on a rendered page -------------------------------

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "poster", "background", "data", "xlink:href"}
BAD_SCHEME = re.compile(r"^(?:javascript|vbscript|data:text/html)", re.I)
# Plain-text checks on the markup: "<script" anywhere (escaped feed text has no raw "<"),
# and on<event>= in a tag once its quoted values are blanked (Django quotes and escapes
# every value it writes, so feed text inside a value, like a meta description, is inert).
# The HTML parser below then checks the same tags as a browser would decode them.
SCRIPT = re.compile(r"<script", re.I)
EVENT_ATTR = re.compile(r"\son[a-z]+\s*=", re.I)
BAD_URL_ATTR = re.compile(r"""\s(?:href|src)\s*=\s*["']?\s*(?:javascript:|vbscript:|data:text/html)""", re.I)
TAG = re.compile(r"<[A-Za-z][^>]*>")
QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
JSON_LD = re.compile(r'<script type="application/ld\+json">([^<]*)</script>')


def own_scripts(page: str) -> str:
    """The page without the scripts our templates write: the site's static script and
    JSON-LD blocks (whose payload has <, > and & escaped, so it cannot close the element)."""
    page = page.replace(f'<script src="{static("site.js")}" defer></script>', "")
    return JSON_LD.sub("", page)


class Tags(HTMLParser):
    """Start tags as a browser's tokenizer sees them: names and decoded attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


def executable_bits(page: str) -> list[str]:
    """Everything on the page that could run, in words; empty when the page is inert."""
    found = []
    rest = own_scripts(page)
    if SCRIPT.search(rest):
        i = SCRIPT.search(rest).start()
        found.append(f"a <script> element: {rest[i : i + 120]!r}")
    for tag in TAG.findall(rest):
        bare = QUOTED.sub('""', tag)
        if EVENT_ATTR.search(bare):
            found.append(f"an event-handler attribute: {tag[:200]!r}")
        if BAD_URL_ATTR.search(tag):
            found.append(f"an executable URL: {tag[:200]!r}")
    parser = Tags()
    parser.feed(rest)
    parser.close()
    for name, attrs in parser.tags:
        if name in {"script", "iframe", "object", "embed", "frame", "base"}:
            found.append(f"a <{name}> element")
        for key, value in attrs:
            if key.startswith("on"):
                found.append(f"<{name} {key}=…>")
            if key in URL_ATTRIBUTES and value:
                # What a browser resolves: entities decoded, controls and spaces dropped.
                bare_url = re.sub(r"[\x00-\x20]", "", html.unescape(value))
                if BAD_SCHEME.match(bare_url):
                    found.append(f"<{name} {key}={value[:120]!r}>")
    return list(dict.fromkeys(found))


def test_inertness_check_sees_what_it_must():
    """The checker itself: our own scripts pass, a feed's would not."""
    ours = f'<html><head><script src="{static("site.js")}" defer></script>'
    ours += '<script type="application/ld+json">{"a": "\\u003cscript\\u003e"}</script></head>'
    ours += '<body><meta content="x onload=alert(1)"><p>&lt;script&gt; onclick=</p></body></html>'
    assert executable_bits(ours) == []
    for bad in (
        "<p><SCRIPT>alert(1)</SCRIPT></p>",
        '<img src="x" ONERROR="alert(1)">',
        "<a href=' javascript:alert(1)'>x</a>",
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<a href="java\tscript:alert(1)">x</a>',
        '<iframe src="data:text/html;base64,PHNjcmlwdD4=">',
        '<a href="VBScript:msgbox(1)">x</a>',
    ):
        assert executable_bits(ours + bad), bad


# --- the corpus ----------------------------------------------------------------------


def assert_inert(client: Client, url: str, what: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, f"{what}: {url} answered {response.status_code}"
    bits = executable_bits(response.content.decode())
    assert not bits, f"{what} ({url}) carries executable content from the feed: {bits}"


def sentence(text: str) -> bool:
    """Words for an editor, not an empty field or a bare code."""
    return len(re.findall(r"[A-Za-z]{2,}", text)) >= 3


# --- feedparser's own count of usable entries -----------------------------------------


def _text(value) -> str:
    return str(value or "").strip()


def shows_something(entry) -> bool:
    """feedparser has a title, a summary or content for the entry."""
    return bool(
        _text(entry.get("title"))
        or _text(entry.get("summary"))
        or any(_text(c.get("value")) for c in entry.get("content") or [])
    )


def http_link(entry, base: str) -> str:
    """The entry's first http(s) link, absolute: the publisher's page a reader follows."""
    for href in [entry.get("link")] + [
        lk.get("href") for lk in entry.get("links") or [] if lk.get("rel") in (None, "alternate")
    ]:
        if href:
            full = urljoin(base, _text(href))
            parts = urlsplit(full)
            if parts.scheme.lower() in ("http", "https") and parts.hostname:
                return full
    return ""


def readable(entry) -> bool:
    """Words a reader would see: a title, or text the sanitizer leaves of the summary or
    content (markup alone, an <img>, MathML or SVG, or text hidden by a zero font size,
    leaves none)."""
    detail = entry.get("title_detail") or {}
    if text_line(_text(entry.get("title")), detail.get("type") or "text/html"):
        return True
    bodies = [entry.get("summary")] + [c.get("value") for c in entry.get("content") or []]
    return any(html_to_text(sanitize_html(_text(body))) for body in bodies)


def expected_entries(data: bytes, content_type: str, url: str) -> dict:
    """feedparser's reading of the bytes as served, sorted into what the poll must keep
    (see the module's docstring).

    usable: feedparser's count (an id or a link, and something to show);
    keep: {stored guid: entry} of the usable entries the poll must keep;
    duplicates: usable entries repeating an earlier one's id (or link);
    unreadable: usable entries with nothing readable and no http(s) link to read;
    headline_only: entries with no id and no http(s) link but words to show;
    bare_links: {stored guid} of entries with an http(s) link and nothing to show."""
    parsed = feedparser.parse(
        data, response_headers={"content-type": content_type, "content-location": url}, sanitize_html=False
    )
    found = {
        "usable": 0,
        "keep": {},
        "duplicates": 0,
        "unreadable": 0,
        "headline_only": 0,
        "bare_links": set(),
    }
    for entry in parsed.entries:
        entry_id, link = _text(entry.get("id")), http_link(entry, url)
        usable = bool((entry_id or _text(entry.get("link"))) and shows_something(entry))
        found["usable"] += usable
        if not link and not readable(entry):
            found["unreadable"] += usable  # nothing to read, nowhere to read it: not kept
        elif not entry_id and not link:
            found["headline_only"] += 1  # kept under a hash of headline and date
        elif not usable:
            found["bare_links"].add(guid_key(entry_id or link))  # its page gives the text
        elif guid_key(entry_id or link) in found["keep"]:
            found["duplicates"] += 1
        else:
            found["keep"][guid_key(entry_id or link)] = entry
    return found


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_corpus_feed_through_the_poll_path(db, corpus_server, client, path):
    name = path.relative_to(CORPUS).as_posix()
    n = NUMBER[path]
    source = Source.objects.create(
        name=f"Corpus {n}", slug=f"corpus-{n}", feed_url=corpus_server.url(url_path(path))
    )
    assert source.claim_poll(now=timezone.now(), lease_minutes=30)

    result = poll_source(source)  # any exception escaping here fails the test, named by its id

    source.refresh_from_db()
    kept = set(Article.objects.filter(source=source).values_list("pk", flat=True))
    stats["files"] += 1
    stats["articles"] += len(kept)
    if result.status == "failed":
        stats["failures"] += 1
        assert sentence(source.last_error), f"{name}: failure not recorded in words: {source.last_error!r}"
        assert source.consecutive_failures == 1, name
        assert not kept, f"{name}: a failed poll stored articles"
    else:
        assert source.consecutive_failures == 0, name
        assert source.last_status == 200, name
        # A fresh source: every article it has was created by this poll, from its entries.
        assert kept == set(result.new_article_ids), name
        assert len(kept) <= result.entries, name

    reply = corpus_server.routes[url_path(path)]
    expected = expected_entries(
        reply.body, reply.headers.get("Content-Type", "application/xml"), source.feed_url
    )
    stored = set(Article.objects.filter(source=source).values_list("guid", flat=True))
    lost = [
        f"{key!r} ({_text(e.get('title'))[:60]!r})"
        for key, e in expected["keep"].items()
        if key not in stored
    ]
    assert not lost, f"{name}: usable entries not kept ({source.last_error!r}): {lost[:5]}"
    hashed = {guid for guid in stored if guid.startswith("hash:")}
    bare = expected["bare_links"] - expected["keep"].keys()
    extra = stored - expected["keep"].keys() - hashed - bare
    assert not extra, f"{name}: articles that are no entry of feedparser's: {sorted(extra)[:5]}"
    # Headline-only entries are keyed by headline and date: two alike are one article.
    assert bool(hashed) == bool(expected["headline_only"]) and len(hashed) <= expected["headline_only"], (
        f"{name}: {len(hashed)} articles stored under a hash for {expected['headline_only']} headline-only entries"
    )
    assert len(stored) == len(expected["keep"]) + len(hashed) + len(bare), name
    assert expected["usable"] == len(expected["keep"]) + expected["duplicates"] + expected["unreadable"], name
    for key in ("usable", "duplicates", "unreadable"):
        stats[key] += expected[key]
    stats["headline only"] += len(hashed)
    stats["bare links"] += len(bare)

    # Nothing executable from the feed on the front page (this test's articles only: the
    # database is rolled back after each test, and it shows 20) or any article's page.
    assert_inert(client, "/", f"{name}: the front page")
    for article in Article.objects.filter(source=source):
        assert_inert(client, article.get_absolute_url(), f"{name}: the page of {article.title[:60]!r}")
