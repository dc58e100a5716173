"""Turning fetched feed bytes into clean entries."""

from __future__ import annotations

import calendar
import codecs
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from urllib.parse import urljoin

import charset_normalizer
import feedparser

from aggregator.ingest.clean import one_line, sanitize_html, strip_invisible, text_line
from aggregator.ingest.urls import canonicalize_url, is_http_url
from aggregator.models import EntryData

logger = logging.getLogger(__name__)


class NotAFeed(Exception):
    pass


_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*\bencoding\s*=", re.I)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def with_detected_charset(content: bytes, content_type: str) -> tuple[bytes, str]:
    """A feed that declares no encoding anywhere (no HTTP charset, no BOM, no XML
    declaration) and is not UTF-8: detect it, rather than let feedparser read, say,
    windows-1251 as windows-1252. Returns the bytes as UTF-8 and a content type that
    says so; anything declared, or valid UTF-8, is left exactly as it came."""
    if "charset=" in content_type.lower() or content.startswith(_BOMS) or _XML_ENCODING.match(content[:512]):
        return content, content_type
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return content, content_type
    best = charset_normalizer.from_bytes(content[:65536]).best()
    if best is None or best.encoding in ("utf_8", "ascii"):
        return content, content_type
    text = content.decode(best.encoding, errors="replace")
    mime = content_type.split(";")[0].strip() or "application/xml"
    return text.encode("utf-8"), f"{mime}; charset=utf-8"


@dataclass
class ParsedFeed:
    """A parsed feed whose entries are cleaned as they are asked for: a poll of a huge
    feed cleans (and stores) a chunk at a time, and skips entries it already holds."""

    title: str = ""
    link: str = ""
    language: str = ""
    ttl_minutes: int | None = None
    raw: list = field(default_factory=list, repr=False)
    base: str = ""
    url: str = ""
    skipped: int = 0
    malformed: str = ""

    def convert(self, raws: list) -> list[EntryData]:
        entries = []
        for raw in raws:
            try:
                entry = _entry(raw, base=self.base, feed_language=self.language)
            except Exception:  # one odd entry must not cost us the others
                logger.exception("skipping an entry of %s", self.url)
                entry = None
            if entry is None:
                self.skipped += 1
            else:
                entries.append(entry)
        return entries

    @cached_property
    def entries(self) -> list[EntryData]:
        return self.convert(self.raw)

    def guid_of(self, raw) -> str:
        """The entry id _entry() would give, cheaply (empty when it would be a hash)."""
        return strip_invisible(str(raw.get("id") or "")).strip() or _link(raw, self.base)

    def published(self) -> list[datetime | None]:
        return [
            _as_datetime(r.get("published_parsed")) or _as_datetime(r.get("updated_parsed")) for r in self.raw
        ]

    @property
    def warning(self) -> str:
        parts = []
        if self.malformed:
            parts.append(f"the feed is not well-formed ({self.malformed}); kept what could be read")
        if self.skipped:
            parts.append(f"{self.skipped} entries had no title, text or link and were skipped")
        return "; ".join(parts)


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


def _link(entry, base: str) -> str:
    for candidate in [entry.get("link", "")] + [
        lk.get("href", "") for lk in entry.get("links") or [] if lk.get("rel") in (None, "alternate")
    ]:
        full = urljoin(base, candidate) if candidate else ""
        if is_http_url(full):
            return full
    return ""


def _entry(entry, *, base: str, feed_language: str) -> EntryData | None:
    link = _link(entry, base)
    content_html = sanitize_html(_first_content(entry))
    summary_html = sanitize_html(entry.get("summary", ""))
    if summary_html == content_html:
        summary_html = ""
    title = _title(entry)[:1000]
    if not title:
        title = (one_line(summary_html) or one_line(content_html))[:120]
    if not (title or link):
        # Nothing a reader could read (no headline, no text: markup alone, such as an
        # image the sanitizer drops or an empty link) and no page of the publisher's to
        # read it from: an "(untitled)" card leading nowhere. Counted in the warning.
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
    """Parse feed bytes (never a string: feedparser would take it for a path or URL).
    `content_type` is the whole header, charset included."""
    content, content_type = with_detected_charset(content, content_type)
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
        looks_html = b"<html" in content[:2048].lower() or content_type.startswith("text/html")
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
    result.raw, result.base, result.url = list(parsed.entries), url, url
    if parsed.get("bozo"):
        result.malformed = str(parsed.get("bozo_exception"))
    return result
