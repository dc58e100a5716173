"""Turning fetched feed bytes into clean entries."""

from __future__ import annotations

import calendar
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import feedparser

from aggregator.ingest.clean import one_line, sanitize_html, strip_invisible, text_line
from aggregator.ingest.urls import canonicalize_url, is_http_url
from aggregator.models import EntryData

logger = logging.getLogger(__name__)


class NotAFeed(Exception):
    pass


@dataclass
class ParsedFeed:
    title: str = ""
    link: str = ""
    language: str = ""
    ttl_minutes: int | None = None
    entries: list[EntryData] = field(default_factory=list)
    skipped: int = 0
    warning: str = ""


def _as_datetime(struct) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), tz=UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def _first_content(entry) -> str:
    for content in entry.get("content") or []:
        value = content.get("value") or ""
        if value.strip():
            return value
    return ""


def _image(entry, base: str) -> str:
    candidates = []
    for key in ("media_content", "media_thumbnail"):
        for media in entry.get(key) or []:
            if media.get("url") and (media.get("medium") in (None, "image") or key == "media_thumbnail"):
                candidates.append(media["url"])
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            candidates.append(link.get("href", ""))
    for url in candidates:
        full = urljoin(base, url)
        if is_http_url(full):
            return full
    return ""


def _title(node) -> str:
    """The title as text, read according to the type feedparser found for it."""
    detail = node.get("title_detail") or {}
    return text_line(str(node.get("title", "")), detail.get("type") or "text/html")


def _entry(entry, *, base: str, feed_language: str) -> EntryData | None:
    link = ""
    for candidate in [entry.get("link", "")] + [
        lk.get("href", "") for lk in entry.get("links") or [] if lk.get("rel") in (None, "alternate")
    ]:
        full = urljoin(base, candidate) if candidate else ""
        if is_http_url(full):
            link = full
            break
    content_html = sanitize_html(_first_content(entry))
    summary_html = sanitize_html(entry.get("summary", ""))
    if summary_html == content_html:
        summary_html = ""
    title = _title(entry)[:1000]
    if not title:
        title = one_line(summary_html or content_html)[:120]
    if not (title or link or content_html):
        return None
    published = _as_datetime(entry.get("published_parsed")) or _as_datetime(entry.get("updated_parsed"))
    guid = strip_invisible(str(entry.get("id") or "")).strip() or link
    if not guid:
        guid = "hash:" + hashlib.sha256(f"{title}|{published}".encode("utf-8", "replace")).hexdigest()
    return EntryData(
        guid=guid,
        url=link,
        canonical_url=canonicalize_url(link),
        title=title or "(untitled)",
        summary_html=summary_html,
        content_html=content_html,
        author=one_line(entry.get("author", ""))[:300],
        published_at=published,
        image_url=_image(entry, base),
        language=(entry.get("language") or feed_language or "")[:16],
    )


def parse_feed(content: bytes, *, url: str, content_type: str = "") -> ParsedFeed:
    """Parse feed bytes (never a string: feedparser would take it for a path or URL)."""
    parsed = feedparser.parse(
        content,
        response_headers={"content-type": content_type or "application/xml", "content-location": url},
        sanitize_html=False,  # nh3 does it, faster and stricter
        resolve_relative_uris=True,
    )
    feed = parsed.get("feed", {})
    if not parsed.get("version") and not parsed.entries:
        reason = ""
        if parsed.get("bozo"):
            reason = f" ({parsed.get('bozo_exception')})"
        looks_html = b"<html" in content[:2048].lower() or content_type == "text/html"
        what = "an HTML page, not a feed" if looks_html else "not an RSS, Atom or RDF feed"
        raise NotAFeed(f"the URL returned {what}{reason}")
    language = str(feed.get("language", "") or "").split(",")[0].strip()
    result = ParsedFeed(
        title=_title(feed)[:200],
        link=feed.get("link", "") if is_http_url(feed.get("link", "")) else "",
        language=language[:16],
    )
    try:
        ttl = int(str(feed.get("ttl", "")).strip())
        result.ttl_minutes = ttl if 0 < ttl <= 7 * 24 * 60 else None
    except ValueError:
        pass
    base = url
    for raw in parsed.entries:
        try:
            entry = _entry(raw, base=base, feed_language=language)
        except Exception:  # one odd entry must not cost us the others
            logger.exception("skipping an entry of %s", url)
            entry = None
        if entry is None:
            result.skipped += 1
        else:
            result.entries.append(entry)
    if parsed.get("bozo"):
        result.warning = (
            f"the feed is not well-formed ({parsed.get('bozo_exception')}); kept what could be read"
        )
    if result.skipped:
        result.warning = (result.warning + "; " if result.warning else "") + (
            f"{result.skipped} entries had no title, link or content and were skipped"
        )
    return result
