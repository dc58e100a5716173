"""Whole-page cache for anonymous readers, keyed on a content generation.

The generation is one database row (ContentGeneration) whose number moves after every
committed write to a table readers see (articles, cards, corrections, stories, recaps,
taxonomy). The writes are noticed by a database execute wrapper, so queryset
`.update()`s and bulk writes count as much as `save()`; the number moves only once the
transaction has committed, so a page rendered from old rows can never be stored under
the new number. Every process reads the number from the database, so a correction made
in the admin (or a card written by a worker) shows on the next request everywhere.

There are two numbers (two rows). The *editorial* one (row 1) moves on every write an
editor makes: a correction, a hide, a review mark, a feature, taxonomy; pages are keyed
on it, so such a change is on every page at the next request. The *new content* one
(row 2) moves on the writes of the ingest and enrichment pipeline (new articles, cards,
stories), which run inside `new_content()` (the workers' tasks and the poll command).
A page rendered under an older new-content number is still served for
PAGE_FRESH_SECONDS after its render began: a news site that ingests every few seconds
would otherwise render every page on every request, and a new article may appear a few
seconds later. Any write not marked as new content counts as editorial (the safe side).

A page that has to be rendered is rendered once (single flight): the first request
takes a short lock in the cache and renders; concurrent requests for the same page get
the previous copy if only new content has arrived since it (for at most
PAGE_RENDER_WAIT seconds past the bound), or wait up to PAGE_RENDER_WAIT seconds for
the render. With the local-memory cache this holds within a process; with Redis,
across all of them. `X-Cache` says HIT, STALE (served past new content while another
request renders), WAIT (waited for another request's render) or MISS (rendered here).

Readers with a session or a messages cookie (editors) are never served from the cache
and get `Cache-Control: private`. Everyone else gets `Cache-Control: public, max-age`,
an ETag and a Last-Modified (the time of the last change the page shows), and a 304
when they have it.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import NamedTuple

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
from django.utils.http import http_date, parse_http_date

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
        "enrichment_storyinsight",
        "enrichment_weeklyrecap",
    }
)
_WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[`"]?(\w+)', re.IGNORECASE)
BROTLI_QUALITY = 5  # of 11: about gzip's speed, smaller output; a cached page is compressed once
GENERATION_TABLE = "aggregator_contentgeneration"
EDITORIAL, CONTENT = 1, 2  # the two rows: what must show at once, what may wait
RENDER_LOCK_SECONDS = 30  # a render lock left by a process that died frees itself

_write_kind: contextvars.ContextVar[int] = contextvars.ContextVar("page_write_kind", default=EDITORIAL)


@contextmanager
def _marked_new_content() -> Iterator[None]:
    token = _write_kind.set(CONTENT)
    try:
        yield
    finally:
        _write_kind.reset(token)


def new_content(func: Callable | None = None):
    """Writes made inside (a `with` block, or a decorated function) are new content:
    readers may see them up to PAGE_FRESH_SECONDS later. For the ingest and enrichment
    pipeline only; an editor's change must never run inside it."""
    if func is None:
        return _marked_new_content()

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _marked_new_content():
            return func(*args, **kwargs)

    return wrapper


def written_table(sql: str) -> str | None:
    match = _WRITE.match(sql)
    return match.group(1).lower() if match else None


def bump(using: str = "default", kind: int = EDITORIAL) -> None:
    """One plain UPDATE: it may run while the write that caused it is still being read
    back (INSERT … RETURNING), so it must not open a transaction of its own. Written as
    SQL: it follows every write readers see, and the ORM would cost more than the write."""
    db = connections[using]
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {GENERATION_TABLE} SET value = value + 1, changed_at = %s WHERE id = %s",  # noqa: S608
            [db.ops.adapt_datetimefield_value(timezone.now()), kind],
        )


def content_changed(using: str = "default", kind: int | None = None) -> None:
    """Move the generation once the current transaction commits (at once outside one):
    the editorial one if any write of the transaction was editorial, else the new
    content one; once per transaction."""
    kind = _write_kind.get() if kind is None else kind
    connection = connections[using]
    if not connection.in_atomic_block:
        bump(using, kind)
        return
    for _sids, func, _robust in connection.run_on_commit:
        if getattr(func, "content_bump", None):
            func.content_bump = min(func.content_bump, kind)  # editorial (1) wins
            return  # already due at this commit

    def after_commit() -> None:
        bump(using, after_commit.content_bump)  # type: ignore[attr-defined]

    after_commit.content_bump = kind  # type: ignore[attr-defined]
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


class Generation(NamedTuple):
    value: int  # moves on every change readers see (the sum of the two below)
    changed_at: float  # the time of the last change, as a timestamp
    editorial: int
    content: int


def _timestamp(changed) -> float:
    if isinstance(changed, str):  # SQLite hands back the stored text (UTC)
        changed = parse_datetime(changed).replace(tzinfo=UTC)
    return changed.timestamp()


def current_generation() -> Generation:
    """Both numbers. The rows are made by a migration (row 2 on first use); one that has
    gone is made again with a number no cached page carries. Read with one plain
    SELECT: it runs on every anonymous request, and the ORM's query building would cost
    more than the rest of a cached page."""
    from aggregator.models import ContentGeneration

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, value, changed_at FROM {GENERATION_TABLE} WHERE id IN (1, 2)")  # noqa: S608
        rows = {pk: (value, changed) for pk, value, changed in cursor.fetchall()}
    for pk in (EDITORIAL, CONTENT):
        if pk not in rows:
            made, _ = ContentGeneration.objects.get_or_create(pk=pk, defaults={"value": int(time.time())})
            rows[pk] = (made.value, made.changed_at)
    (editorial, changed_e), (content, changed_c) = rows[EDITORIAL], rows[CONTENT]
    return Generation(
        editorial + content, max(_timestamp(changed_e), _timestamp(changed_c)), editorial, content
    )


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

        generation = current_generation()
        if seconds <= 0 or request.method != "GET":
            response, storable = self._render(request, generation)
        else:
            response, storable = self._cached(request, generation, time.time(), seconds)
        if not storable:
            return response
        modified = response.get("Last-Modified")
        return get_conditional_response(
            request,
            etag=response.get("ETag"),
            last_modified=int(parse_http_date(modified)) if modified else None,
            response=response,
        )

    def _cached(
        self, request: HttpRequest, generation: Generation, read_at: float, seconds: int
    ) -> tuple[HttpResponse, bool]:
        """A fresh copy (HIT); else render under a lock (MISS); meanwhile others get the
        previous copy if only new content has come since (STALE), or wait for it (WAIT)."""
        fresh_for, wait = settings.PAGE_FRESH_SECONDS, settings.PAGE_RENDER_WAIT

        def usable(entry: tuple | None, slack: float = 0.0) -> bool:
            return entry is not None and (
                entry[0] >= generation.content or read_at - entry[1] < fresh_for + slack
            )

        encoding = negotiate_encoding(request.headers.get("Accept-Encoding", ""))
        path = hashlib.sha256(request.get_full_path().encode()).hexdigest()[:32]
        key = f"page:{generation.editorial}:{encoding}:{request.get_host()}:{path}"
        entry = cache.get(key)
        if usable(entry):
            return _from_entry(entry, "HIT"), True
        lock, token = f"pagelock:{key}", uuid.uuid4().hex
        if not cache.add(lock, token, RENDER_LOCK_SECONDS):
            if fresh_for > 0 and usable(entry, slack=wait):
                return _from_entry(entry, "STALE"), True
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                time.sleep(0.02)
                rendered = cache.get(lock) is None  # asked first: a render stores, then unlocks
                found = cache.get(key)
                if usable(found):
                    return _from_entry(found, "WAIT"), True
                if rendered:
                    break  # that render failed or could not be stored: render here
            token = None
        else:
            found = cache.get(key)  # stored by a render that ended since we looked
            if usable(found):
                cache.delete(lock)
                return _from_entry(found, "HIT"), True
        try:
            response, storable = self._render(request, generation)
            if storable:
                body = response.content
                cache.set(
                    key,
                    (generation.content, read_at, response.status_code, list(response.items()), body),
                    seconds,
                )
                response["X-Cache"] = "MISS"
            return response, storable
        finally:
            if token is not None and cache.get(lock) == token:
                cache.delete(lock)

    def _render(self, request: HttpRequest, generation: Generation) -> tuple[HttpResponse, bool]:
        """The page, with its public headers if it may be stored."""
        response = self.get_response(request)
        if not _storable(response):
            return response, False
        patch_cache_control(response, public=True, max_age=max(settings.PAGE_CACHE_SECONDS, 0))
        patch_vary_headers(response, ["Cookie"])
        if generation.changed_at:
            response["Last-Modified"] = http_date(generation.changed_at)
        return response, True


def _from_entry(entry: tuple, outcome: str) -> HttpResponse:
    _content, _read_at, status, headers, body = entry
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    response["X-Cache"] = outcome
    return response


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
