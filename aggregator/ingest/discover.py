"""Finding a site's feed from its home page: <link rel="alternate"> first, then the
paths feeds usually live at. Every fetch goes through the safe client."""

from __future__ import annotations

import logging
from urllib.parse import urljoin

import lxml.html

from aggregator.ingest.feeds import NotAFeed, parse_feed
from aggregator.ingest.http import FetchError, fetch
from aggregator.ingest.urls import is_http_url

logger = logging.getLogger(__name__)

FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
}
COMMON_PATHS = [
    "/feed",
    "/feed/",
    "/rss",
    "/rss.xml",
    "/feed.xml",
    "/atom.xml",
    "/index.xml",
    "/feeds/all.atom.xml",
]


class NoFeedFound(Exception):
    pass


def _is_feed(content: bytes, url: str, content_type: str) -> str:
    """The feed's title if these bytes are a feed."""
    try:
        parsed = parse_feed(content, url=url, content_type=content_type)
    except NotAFeed:
        return ""
    return parsed.title or url


def links_in(html: bytes, base: str) -> list[str]:
    try:
        doc = lxml.html.fromstring(html[:2_000_000])
    except (ValueError, lxml.etree.ParserError):
        return []
    found = []
    for link in doc.iterfind(".//link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower().split(";")[0].strip()
        href = link.get("href") or ""
        if "alternate" in rel and kind in FEED_TYPES and href:
            url = urljoin(base, href)
            if is_http_url(url) and url not in found:
                found.append(url)
    return found


def discover_feed(url: str) -> tuple[str, str]:
    """(feed URL, feed title) for a site's page or a feed URL; NoFeedFound says why not."""
    try:
        page = fetch(url)
    except FetchError as exc:
        raise NoFeedFound(f"could not fetch {url}: {exc}") from exc
    if page.status >= 400:
        raise NoFeedFound(f"{url} answered HTTP {page.status}")
    title = _is_feed(page.content, page.url, page.content_type)
    if title:
        return page.url, title
    candidates = links_in(page.content, page.url) + [urljoin(page.url, p) for p in COMMON_PATHS]
    for candidate in dict.fromkeys(candidates):
        try:
            response = fetch(candidate)
        except FetchError:
            continue
        if response.status < 400:
            title = _is_feed(response.content, response.url, response.content_type)
            if title:
                return response.url, title
    raise NoFeedFound(
        f"no feed found at {url}: the page links no RSS or Atom feed and none of the usual paths "
        f"({', '.join(COMMON_PATHS[:4])}, …) holds one. Paste the feed's own URL instead."
    )
