"""Polling many sources (and reading their new articles) with the network waits
overlapped: feeds and pages are fetched by a pool of threads, several at once (at most
FETCH_PER_HOST per host), while this thread parses, extracts, clusters, enriches and
writes whatever has arrived. The database work and trafilatura stay on the calling
thread: one writer, and extraction keeps its time limit (a signal, main thread only)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from aggregator.ingest.extract import ExtractionError
from aggregator.ingest.http import FetchError, FetchResult
from aggregator.ingest.pages import extract_article, fetch_page
from aggregator.ingest.poll import PollResult, fetch_feed, ingest_feed
from aggregator.models import Article, Source

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
    """Extract, cluster and enrich one article (what the worker tasks do, in a row)."""
    from enrichment.service import enrich_article
    from enrichment.stories import assign_story

    outcome = extract_article(article_id, page=page)
    if not outcome.startswith("skipped"):
        assign_story(article_id)
        outcome += "; " + enrich_article(article_id)
    return outcome


def poll_many(
    sources: Iterable[Source],
    *,
    read: bool = True,
    claim: bool = True,
    threads: int | None = None,
    on_poll: Callable[[Source, PollResult], None] | None = None,
    on_read: Callable[[int, str], None] | None = None,
) -> Totals:
    """Poll `sources` and, with `read`, read every new article. Each source is claimed
    here unless the caller did (`claim=False`: the dispatcher's batches)."""
    totals = Totals()
    threads = threads or settings.INGEST_THREADS
    sources = list(sources)
    if claim:
        Source.claim_polls(sources, now=timezone.now())
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool:
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
                else:
                    outcome = read_article(item, future.result())
                    totals.read += 1
                    if on_read:
                        on_read(item, outcome)
    return totals


def poll_held(source_ids: list[int]) -> tuple[Totals, list[int]]:
    """poll_many for sources the dispatcher claimed, each held with a lease
    (aggregator.ingest.leases) until its own poll is done: one a live worker holds is
    left to it, and one whose worker dies is polled again once its lease runs out.
    Returns the totals and the new articles' ids."""
    from aggregator.ingest.leases import POLL, held

    new: list[int] = []
    with held(POLL, source_ids) as hold:

        def done(source: Source, result: PollResult) -> None:
            new.extend(result.new_article_ids)
            hold.done([source.pk])

        sources = list(Source.objects.filter(pk__in=hold.ids, is_active=True))
        totals = poll_many(sources, read=False, claim=False, on_poll=done)
    return totals, new
