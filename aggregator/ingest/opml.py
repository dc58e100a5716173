"""OPML import and export of sources. An import is all or nothing for the file: a
malformed, huge, or partly invalid file changes nothing and says what is wrong. Where
each feed's host points is a question for the network, so a worker answers it after
the import (`check_source_addresses`), not the editor's request: a file may name 2,000
hosts."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from django.conf import settings
from django.db import transaction
from django.db.models import F
from lxml import etree

from aggregator.ingest.http import is_public_address
from aggregator.ingest.urls import is_http_url
from aggregator.models import Category, Source

MAX_BYTES = 1_000_000
MAX_FEEDS = 2000


class OpmlError(Exception):
    pass


@dataclass
class OpmlFeed:
    url: str
    title: str
    site_url: str = ""
    category: str = ""


@dataclass
class ImportResult:
    added: list[Source] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def parse_opml(data: bytes) -> list[OpmlFeed]:
    if len(data) > MAX_BYTES:
        raise OpmlError(f"the file is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"the file is not well-formed XML: {exc}") from exc
    if root.tag != "opml" or root.find("body") is None:
        raise OpmlError("the file is XML but not OPML (no <opml><body>)")
    feeds: list[OpmlFeed] = []

    def walk(node, category: str) -> None:
        for outline in node.iterfind("outline"):
            url = (outline.get("xmlUrl") or "").strip()
            title = (outline.get("title") or outline.get("text") or "").strip()
            if url:
                feeds.append(
                    OpmlFeed(
                        url=url,
                        title=title[:200] or url,
                        site_url=(outline.get("htmlUrl") or "")[:2000],
                        category=category,
                    )
                )
            else:  # a folder: its name is the category of what it holds
                walk(outline, title or category)
            if len(feeds) > MAX_FEEDS:
                raise OpmlError(f"the file lists more than {MAX_FEEDS} feeds")

    walk(root.find("body"), "")
    if not feeds:
        raise OpmlError("the file lists no feeds (no <outline xmlUrl=…>)")
    return feeds


def _refused_address(url: str) -> str:
    """Why this URL may not be fetched, or "". Resolves the host: call it on a worker."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return ""  # unknown today; the poller will say so
    for address in sorted(addresses):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        if not is_public_address(address, settings.FETCH_ALLOWED_NETWORKS):
            return (
                f"paused: {host} points at a private or reserved address ({address}); "
                "set FETCH_ALLOWED_NETWORKS to allow it, then resume the source"
            )
    return ""


def check_source_addresses(source_ids: list[int]) -> list[str]:
    """Pause each of these sources whose feed host resolves to an address we may not
    fetch, saying why on the source (the desk lists it as failing). Returns the reasons."""
    reasons = []
    for source in Source.objects.filter(pk__in=source_ids, is_active=True):
        if reason := _refused_address(source.feed_url):
            Source.objects.filter(pk=source.pk).update(
                is_active=False,
                last_error=reason,
                consecutive_failures=F("consecutive_failures") + 1,
            )
            reasons.append(f"{source.name}: {reason}")
    return reasons


def import_opml(data: bytes) -> ImportResult:
    """Add the file's feeds as sources, all or none. Their addresses are checked
    afterwards, on a worker: enqueue `check_sources_task` with the ids added."""
    feeds = parse_opml(data)
    problems = [f"{feed.url!r} is not an http(s) URL" for feed in feeds if not is_http_url(feed.url)]
    if problems:
        raise OpmlError(
            "nothing was imported: "
            + "; ".join(problems[:10])
            + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        )
    result = ImportResult()
    categories = {c.name.lower(): c for c in Category.objects.all()} | {
        c.slug: c for c in Category.objects.all()
    }
    with transaction.atomic():
        seen = set(Source.objects.values_list("feed_url", flat=True))
        for feed in feeds:
            if feed.url in seen:
                result.skipped.append(f"{feed.title} (already a source)")
                continue
            seen.add(feed.url)
            source = Source.objects.create(
                name=feed.title,
                slug=Source.unique_slug(feed.title),
                feed_url=feed.url,
                site_url=feed.site_url if is_http_url(feed.site_url) else "",
                category=categories.get(feed.category.lower()),
            )
            result.added.append(source)
    return result


def export_opml(sources=None) -> str:
    sources = sources if sources is not None else Source.objects.select_related("category").order_by("name")
    groups: dict[str, list[Source]] = {}
    for source in sources:
        groups.setdefault(source.category.name if source.category else "", []).append(source)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<opml version="2.0">',
        f"<head><title>{settings.SITE_NAME} sources</title></head>",
        "<body>",
    ]
    for name, members in groups.items():
        if name:
            lines.append(f"<outline text={quoteattr(name)}>")
        for s in members:
            lines.append(
                f'<outline type="rss" text={quoteattr(s.name)} title={quoteattr(s.name)} '
                f"xmlUrl={quoteattr(s.feed_url)} htmlUrl={quoteattr(s.site_url)}/>"
            )
        if name:
            lines.append("</outline>")
    lines += ["</body>", "</opml>"]
    return "\n".join(lines) + "\n"
