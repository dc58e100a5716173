"""Polling many sources (and reading their new articles) with the network waits
overlapped: feeds and pages are fetched by a pool of threads, several at once (at most
FETCH_PER_HOST per host), while this thread parses and stores the feeds.

Reading an article (extract, cluster, card: CPU, not network) is handed to
INGEST_PROCESSES reader processes, each page with what was fetched for it, so that
every core works; each step holds the article's lease (aggregator.ingest.leases) as
the workers' tasks do, so a reader that dies loses nothing (the sweep hands its article
out again) and none is read twice. With one process, or inside a transaction or on an
in-memory database (which another process cannot see: the tests), articles are read
on this thread. Extraction keeps its time limit: a reader runs it on its main thread."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.utils import timezone

from aggregator.ingest.extract import ExtractionError
from aggregator.ingest.http import FetchError, FetchResult
from aggregator.ingest.pages import extract_held, fetch_page
from aggregator.ingest.poll import PollResult, fetch_feed, ingest_feed
from aggregator.models import Article, Source
from aggregator.pagecache import new_content

logger = logging.getLogger(__name__)


@dataclass
class Totals:
    polled: int = 0
    failed: int = 0
    new: int = 0
    read: int = 0


def _fetch_page_safely(url: str) -> FetchResult | Exception:
    try:
        return fetch_page(url)
    except (FetchError, ExtractionError) as exc:
        return exc
    except Exception as exc:  # a bug in a library must cost one article, not the run
        logger.exception("fetching %s failed", url)
        return FetchError(f"unexpected error while fetching: {exc!r}")


def _fetch_feed_safely(source: Source) -> FetchResult | FetchError:
    try:
        return fetch_feed(source)
    except Exception as exc:
        logger.exception("fetching %s failed", source.feed_url)
        return FetchError(f"unexpected error while fetching: {exc!r}")


def read_article(article_id: int, page: FetchResult | Exception | None = None) -> str:
    """Extract, cluster and enrich one article (what the worker tasks do, in a row),
    holding its lease once for the three steps (one claim and one release, not three of
    each, each a write) and reading the article once: each step brings the object up to
    date with what it wrote, for the next."""
    from aggregator.ingest.leases import ARTICLE, held
    from enrichment.service import enrich_held
    from enrichment.stories import cluster_held

    with held(ARTICLE, [article_id]) as hold:
        if not hold:
            return "skipped: another worker holds it"
        article = Article.objects.filter(pk=article_id).select_related("source", "category").first()
        outcome = extract_held(article, now=timezone.now(), page=page)
        if not outcome.startswith("skipped"):
            cluster_held(article)
            outcome += "; " + enrich_held(article, now=timezone.now())
    return outcome


@new_content  # a reader process's writes are new content (aggregator.pagecache)
def _read_safely(article_id: int, page: FetchResult | Exception | None) -> str:
    try:
        return read_article(article_id, page)
    except Exception as exc:  # one article's bug must not end the run (its lease is released)
        logger.exception("reading article %s failed", article_id)
        return f"failed: {exc!r}; left for the workers' sweep"


def _reader_started() -> None:
    """In a new reader process: no database connection is shared with the parent."""
    for conn in connections.all(initialized_only=True):
        conn.close()


def _ready() -> int:
    return 0


def reader_processes(requested: int | None = None) -> int:
    """How many processes read articles: INGEST_PROCESSES, or 1 (this thread) when
    another process could not see this one's rows: inside a transaction, or an
    in-memory SQLite database."""
    wanted = requested if requested is not None else settings.INGEST_PROCESSES
    if wanted <= 1:
        return 1
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            return 1
    default = connections["default"]
    if default.vendor == "sqlite" and default.is_in_memory_db():
        return 1
    return wanted


def _start_readers(count: int) -> ProcessPoolExecutor:
    """Forked before any fetch thread starts, with no open connection to inherit."""
    connections.close_all()
    pool = ProcessPoolExecutor(
        max_workers=count, mp_context=multiprocessing.get_context("fork"), initializer=_reader_started
    )
    pool.submit(_ready).result()  # forks every reader now (the fork context starts them all)
    return pool


def poll_many(
    sources: Iterable[Source],
    *,
    read: bool = True,
    claim: bool = True,
    threads: int | None = None,
    processes: int | None = None,
    on_poll: Callable[[Source, PollResult], None] | None = None,
    on_read: Callable[[int, str], None] | None = None,
) -> Totals:
    """Poll `sources` and, with `read`, read every new article (in `processes` reader
    processes, INGEST_PROCESSES by default). Each source is claimed here unless the
    caller did (`claim=False`: the dispatcher's batches)."""
    totals = Totals()
    threads = threads or settings.INGEST_THREADS
    sources = list(sources)
    if claim:
        Source.claim_polls(sources, now=timezone.now())
    with ExitStack() as stack:
        readers = None
        if read and reader_processes(processes) > 1:
            readers = stack.enter_context(_start_readers(reader_processes(processes)))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch"))
        pending: dict[Future, tuple[str, object]] = {}
        for source in sources:
            pending[pool.submit(_fetch_feed_safely, source)] = ("feed", source)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, item = pending.pop(future)
                if kind == "feed":
                    result = ingest_feed(item, future.result())
                    totals.polled += 1
                    totals.failed += result.status == "failed"
                    totals.new += len(result.new_article_ids)
                    if on_poll:
                        on_poll(item, result)
                    if read and result.new_article_ids:
                        links = Article.objects.filter(pk__in=result.new_article_ids).values_list("pk", "url")
                        for article_id, url in links:
                            pending[pool.submit(_fetch_page_safely, url)] = ("page", article_id)
                    continue
                if kind == "page" and readers is not None:
                    try:
                        pending[readers.submit(_read_safely, item, future.result())] = ("read", item)
                        continue
                    except BrokenProcessPool:
                        readers = None  # a reader died: the rest are read in this process
                if kind == "page":
                    outcome = read_article(item, future.result())
                else:
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        # Its reader died (or the pool broke before it started): read it
                        # here; an article the dead reader held stays leased until its
                        # lease runs out, and the workers' sweep hands it out then.
                        readers = None
                        logger.error("a reader process died; article %s is read in this process", item)
                        outcome = read_article(item, None)
                totals.read += 1
                if on_read:
                    on_read(item, outcome)
    return totals


def poll_leased(
    sources: Iterable[Source],
    *,
    read: bool = False,
    claim: bool = True,
    on_poll: Callable[[Source, PollResult], None] | None = None,
    on_read: Callable[[int, str], None] | None = None,
) -> tuple[Totals, list[Source]]:
    """poll_many holding each source's poll lease (aggregator.ingest.leases) until its
    own poll is done, as workers and the operator's `manage.py poll` both do: a source a
    live lease holds (another process polling it now) is left to that process, and
    returned among the skipped. Returns the totals and the skipped sources."""
    from aggregator.ingest.leases import POLL, held

    sources = list(sources)
    with held(POLL, [s.pk for s in sources]) as hold:

        def done(source: Source, result: PollResult) -> None:
            hold.done([source.pk])
            if on_poll:
                on_poll(source, result)

        mine = [s for s in sources if s.pk in hold.ids]
        totals = poll_many(mine, read=read, claim=claim, on_poll=done, on_read=on_read)
    return totals, [s for s in sources if s.pk not in hold.ids]


def poll_held(source_ids: list[int]) -> tuple[Totals, list[int]]:
    """The dispatcher's batch: poll_leased for sources it claimed (one a live worker
    holds is left to it, and one whose worker dies is polled again once its lease runs
    out). Returns the totals and the new articles' ids."""
    new: list[int] = []
    sources = Source.objects.filter(pk__in=source_ids, is_active=True)
    totals, _skipped = poll_leased(
        sources, claim=False, on_poll=lambda _source, result: new.extend(result.new_article_ids)
    )
    return totals, new
