"""Main text and metadata of an article page, with trafilatura, bounded in size and time."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import lxml.etree
import trafilatura
from django.conf import settings
from trafilatura.settings import use_config
from trafilatura.utils import load_html

from aggregator.ingest.clean import drop_hidden, strip_invisible
from aggregator.ingest.urls import is_http_url

logger = logging.getLogger(__name__)

_LINK = re.compile(rb"<a[\s>]", re.I)
_LANG = re.compile(rb"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)", re.I)


# Pages with more elements than this are refused rather than parsed for minutes.
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MAX_TREE_SIZE", "50000")
_CONFIG.set("DEFAULT", "EXTENSIVE_DATE_SEARCH", "off")


class ExtractionError(Exception):
    pass


@dataclass
class Extraction:
    title: str = ""
    author: str = ""
    date: str = ""
    language: str = ""
    image: str = ""
    text: str = ""
    sitename: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def published_at(self) -> datetime | None:
        if not self.date:
            return None
        try:
            value = datetime.fromisoformat(self.date)
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after `seconds` where a signal can do it (the main thread
    of a worker or command); elsewhere django-q2's task timeout is the backstop."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    expired = []

    def on_alarm(signum, frame):
        expired.append(True)
        raise ExtractionError(f"extraction took longer than {seconds:g} seconds")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if expired:  # trafilatura swallowed the interruption somewhere inside: still too slow
        raise ExtractionError(f"extraction took longer than {seconds:g} seconds")


def clip_text(text: str, limit: int) -> str:
    """At most `limit` characters, cut at the last paragraph (or word) that fits."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind("\n")
    if end < limit // 2:
        end = cut.rfind(" ")
    return cut[: end if end > 0 else limit].rstrip() + " …"


# Never article text: removed before trafilatura sees the page.
_BOILERPLATE = ("script", "style", "noscript", "iframe", "svg", "template", "form", "nav", "footer", "aside")
MAX_NODES = 6_000  # elements handed to trafilatura, at most (a big news page has 1,000-4,000)
MAX_TABLE_ROWS = 200


def _drop(element: lxml.etree._Element) -> None:
    """Remove an element and its subtree, keeping the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def bounded_html(raw: bytes) -> bytes:
    """The page cut down to what trafilatura can work through in bounded time:
    boilerplate elements removed, tables cut to MAX_TABLE_ROWS rows, and everything
    after the first MAX_NODES elements of the body (in document order; the article
    comes before the comments, related links and the rest) dropped. trafilatura's
    cost grows with the elements far faster than with the bytes (16,000 small blocks
    in 1.3 MB: 30 s). Plain lxml.etree, which is several times faster than lxml.html
    at making elements; the result goes back to trafilatura as bytes."""
    root = lxml.etree.fromstring(raw, lxml.etree.HTMLParser(remove_comments=True, remove_pis=True))
    if root is None:
        raise ExtractionError("the page could not be parsed as HTML")
    for element in list(root.iter(*_BOILERPLATE)):
        _drop(element)
    for table in list(root.iter("table")):
        for row in list(table.iter("tr"))[MAX_TABLE_ROWS:]:
            _drop(row)
    body = root.find("body")
    if body is not None:
        for n, element in enumerate(body.iter()):
            if n == MAX_NODES:
                # Drop this element, and everything after it at every level up to body.
                node = element
                while node is not None and node is not body:
                    parent = node.getparent()
                    for later in list(node.itersiblings()):
                        parent.remove(later)
                    node = parent
                _drop(element)
                break
    return lxml.etree.tostring(root, method="html", encoding="utf-8")


def extract_html(html: bytes | str, *, url: str = "", time_limit_s: float | None = None) -> Extraction:
    """Extract the article in `html`; raise ExtractionError when there is none."""
    raw = html.encode("utf-8", "replace") if isinstance(html, str) else html
    cap = settings.EXTRACT_MAX_BYTES
    if len(raw) > cap:
        raise ExtractionError(f"the page is {len(raw):,} bytes, over the {cap:,} byte extraction cap")
    links = len(_LINK.findall(raw))
    if links > settings.EXTRACT_MAX_LINKS:
        # A directory or a sitemap, not an article: trafilatura would hand back every
        # link's text as one enormous "article" after parsing it for half a minute.
        raise ExtractionError(
            f"the page has {links:,} links (more than {settings.EXTRACT_MAX_LINKS:,}): "
            "a list of links, not an article"
        )
    limit = settings.EXTRACT_TIME_LIMIT if time_limit_s is None else time_limit_s
    with time_limit(limit):
        tree = load_html(bounded_html(raw))
        if tree is not None:
            drop_hidden(tree)  # text a reader never sees is no part of the article
        doc = trafilatura.bare_extraction(
            tree if tree is not None else raw,
            url=url or None,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            config=_CONFIG,
        )
    if doc is None or not (doc.text or "").strip():
        raise ExtractionError("no article text was found on the page")
    lang = doc.language or ""
    if not lang:
        match = _LANG.search(raw[:4096])
        lang = match.group(1).decode().replace("_", "-").lower() if match else ""
    image = doc.image or ""
    return Extraction(
        title=strip_invisible(doc.title or "").strip(),
        author=strip_invisible(doc.author or "").strip()[:300],
        date=doc.date or "",
        language=lang[:16],
        image=image if is_http_url(image) else "",
        text=clip_text(strip_invisible(doc.text).strip(), settings.EXTRACT_MAX_CHARS),
        sitename=strip_invisible(doc.sitename or "").strip(),
    )
