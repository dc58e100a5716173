"""Whole-page cache for anonymous readers, keyed on a content generation.

The generation is one database row (ContentGeneration) whose number moves after every
committed write to a table readers see (articles, cards, corrections, stories, recaps,
taxonomy). The writes are noticed by a database execute wrapper, so queryset
`.update()`s and bulk writes count as much as `save()`; the number moves only once the
transaction has committed, so a page rendered from old rows can never be stored under
the new number. Every process reads the number from the database, so a correction made
in the admin (or a card written by a worker) shows on the next request everywhere.

Readers with a session or a messages cookie (editors) are never served from the cache
and get `Cache-Control: private`. Everyone else gets `Cache-Control: public, max-age`,
an ETag and a Last-Modified (the time of the last change), and a 304 when they have it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC

import brotli
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, pre_migrate
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import GZipMiddleware
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.dateparse import parse_datetime
from django.utils.http import http_date

logger = logging.getLogger(__name__)

# Tables whose rows appear on public pages or feeds. A source's schedule and health,
# written on every poll, are not (see _is_poll_bookkeeping).
WATCHED_TABLES = frozenset(
    {
        "aggregator_article",
        "aggregator_article_audiences",
        "aggregator_story",
        "aggregator_category",
        "aggregator_audiencetag",
        "aggregator_source",
        "enrichment_insight",
        "enrichment_correction",
        "enrichment_weeklyrecap",
    }
)
_WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[`"]?(\w+)', re.IGNORECASE)
BROTLI_QUALITY = 5  # of 11: about gzip's speed, smaller output; a cached page is compressed once
GENERATION_TABLE = "aggregator_contentgeneration"


def written_table(sql: str) -> str | None:
    match = _WRITE.match(sql)
    return match.group(1).lower() if match else None


def bump(using: str = "default") -> None:
    """One plain UPDATE: it may run while the write that caused it is still being read
    back (INSERT … RETURNING), so it must not open a transaction of its own. Written as
    SQL: it follows every write readers see, and the ORM would cost more than the write."""
    db = connections[using]
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {GENERATION_TABLE} SET value = value + 1, changed_at = %s WHERE id = 1",  # noqa: S608
            [db.ops.adapt_datetimefield_value(timezone.now())],
        )


def content_changed(using: str = "default") -> None:
    """Move the generation once the current transaction commits (at once outside one)."""
    connection = connections[using]
    if not connection.in_atomic_block:
        bump(using)
        return
    if any(getattr(func, "content_bump", False) for _sids, func, _robust in connection.run_on_commit):
        return  # already due at this commit

    def after_commit() -> None:
        bump(using)

    after_commit.content_bump = True  # type: ignore[attr-defined]
    transaction.on_commit(after_commit, using=using)


_migrating = False


@receiver(pre_migrate)
def _pause(sender, **kwargs) -> None:
    global _migrating
    _migrating = True  # the generation's own table may not exist yet


@receiver(post_migrate)
def _resume(sender, using: str = "default", **kwargs) -> None:
    global _migrating
    _migrating = False


def _watch(execute: Callable, sql: str, params, many: bool, context) -> object:
    result = execute(sql, params, many, context)
    table = written_table(sql)
    if not _migrating and table in WATCHED_TABLES and not _is_poll_bookkeeping(sql, table):
        content_changed(context["connection"].alias)
    return result


def _is_poll_bookkeeping(sql: str, table: str) -> bool:
    """A source's schedule and health (written on every poll) are not on any page."""
    return table == "aggregator_source" and sql.lstrip()[:6].upper() == "UPDATE" and '"name"' not in sql


@receiver(connection_created)
def _install(sender, connection, **kwargs) -> None:
    if _watch not in connection.execute_wrappers:
        connection.execute_wrappers.append(_watch)


def current_generation() -> tuple[int, float]:
    """(number, time of the last change as a timestamp). The row is made by a migration;
    if it has gone, it is made again with a number no cached page carries. Read with
    one plain SELECT: it runs on every anonymous request, and the ORM's query building
    would cost more than the rest of a cached page."""
    from aggregator.models import ContentGeneration

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value, changed_at FROM {GENERATION_TABLE} WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        made, _ = ContentGeneration.objects.get_or_create(pk=1, defaults={"value": int(time.time())})
        row = (made.value, made.changed_at)
    changed = row[1]
    if isinstance(changed, str):  # SQLite hands back the stored text (UTC)
        changed = parse_datetime(changed).replace(tzinfo=UTC)
    return row[0], changed.timestamp()


def negotiate_encoding(accept_encoding: str, *, brotli_allowed: bool = True) -> str:
    """ "br", "gzip" or "identity" for an Accept-Encoding header (RFC 9110 12.5.3): the
    acceptable one with the higher q, brotli on a tie; q=0 refuses; "*" stands for both."""
    weights: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        match = re.search(r"\bq\s*=\s*([^;\s]*)", params)
        if match:
            try:
                q = float(match.group(1))
            except ValueError:
                q = 0.0
        weights[name.strip()] = q
    star = weights.get("*", 0.0)
    br, gz = weights.get("br", star), weights.get("gzip", weights.get("x-gzip", star))
    if brotli_allowed and br > 0 and br >= gz:
        return "br"
    return "gzip" if gz > 0 else "identity"


def _is_reader(request: HttpRequest) -> bool:
    return not (
        settings.SESSION_COOKIE_NAME in request.COOKIES
        or getattr(settings, "MESSAGE_COOKIE_NAME", "messages") in request.COOKIES
    )


def _excluded(path: str) -> bool:
    return any(path.startswith(prefix) for prefix in settings.PAGE_CACHE_EXCLUDE)


def _storable(response: HttpResponse) -> bool:
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    control = response.get("Cache-Control", "").lower()
    return not any(word in control for word in ("private", "no-store", "no-cache"))


class PageCacheMiddleware:
    """Serve anonymous GETs of public pages and feeds from the cache (see module doc).
    Placed above CompressionMiddleware, so the compressed body is what is stored, one
    entry per encoding."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        seconds = settings.PAGE_CACHE_SECONDS
        if request.method not in ("GET", "HEAD") or _excluded(request.path_info):
            return self.get_response(request)
        if not _is_reader(request):
            response = self.get_response(request)
            patch_cache_control(response, private=True)
            return response

        generation, changed_at = current_generation()
        encoding = negotiate_encoding(request.headers.get("Accept-Encoding", ""))
        path = hashlib.sha256(request.get_full_path().encode()).hexdigest()[:32]
        key = f"page:{generation}:{encoding}:{request.get_host()}:{path}"
        cached = cache.get(key) if seconds > 0 and request.method == "GET" else None
        if cached is not None:
            status, headers, content = cached
            response = HttpResponse(content, status=status)
            for name, value in headers:
                response[name] = value
        else:
            response = self.get_response(request)
            if not _storable(response):
                return response
            patch_cache_control(response, public=True, max_age=max(seconds, 0))
            patch_vary_headers(response, ["Cookie"])
            if changed_at:
                response["Last-Modified"] = http_date(changed_at)
            if seconds > 0 and request.method == "GET":
                cache.set(key, (response.status_code, list(response.items()), response.content), seconds)
        return get_conditional_response(
            request,
            etag=response.get("ETag"),
            last_modified=int(changed_at) if changed_at else None,
            response=response,
        )


class CompressionMiddleware(GZipMiddleware):
    """Brotli or gzip, whichever the client prefers (negotiate_encoding), with
    `Vary: Accept-Encoding`. Brotli only for readers' pages and feeds, which hold no
    secrets; editors' pages and the admin (CSRF tokens, session data) keep Django's
    gzip with its BREACH padding, which brotli has no place for."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        header = request.headers.get("Accept-Encoding", "")
        encoding = negotiate_encoding(header)
        if encoding == "br" and not (_is_reader(request) and not _excluded(request.path_info)):
            encoding = negotiate_encoding(header, brotli_allowed=False)
        if encoding == "gzip":
            return super().process_response(request, response)
        if response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if encoding != "br" or response.streaming or len(response.content) < 200:
            return response
        compressed = brotli.compress(response.content, quality=BROTLI_QUALITY)
        if len(compressed) >= len(response.content):
            return response
        response.content = compressed
        response.headers["Content-Length"] = str(len(compressed))
        etag = response.get("ETag")
        if etag and etag.startswith('"'):  # a strong ETag names the identity body
            response.headers["ETag"] = "W/" + etag
        response.headers["Content-Encoding"] = "br"
        return response
