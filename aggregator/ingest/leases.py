"""Leases: every unit of work is claimed in the database, for a short while, renewed
while a worker works on it. The database is the record of work; the broker is only a
fast path (Redis has no receipts, and a killed cluster loses what it had prefetched).

A unit is a (kind, id): a source's poll, or an article's next step (extract, cluster,
enrich: one at a time per article). `held(kind, ids)` claims the units with a token of
its own and a lease of LEASE_SECONDS, in one statement that is the same on SQLite and
PostgreSQL:

    INSERT … ON CONFLICT (kind, object_id) DO UPDATE SET token, until
        WHERE lease.token = '' OR lease.until < now  RETURNING object_id

so of two workers claiming one unit at once exactly one gets it (the row is locked by
the first and the second sees its token; SQLite runs one writer at a time). While the
units are held a heartbeat thread of the process renews them every third of the lease;
when the block ends the rows are deleted ("done"). A worker that dies (SIGKILL, OOM,
a lost machine) stops renewing, its lease runs out, and the next tick (`sweep`, every
minute) hands the unit out again. A unit handed to the broker but not yet taken is
marked with an empty token (`mark_queued`), so the tick does not queue it twice while
it waits; any worker may take it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from aggregator.models import Article, Lease

logger = logging.getLogger(__name__)

State = Article.State
POLL, ARTICLE = Lease.POLL, Lease.ARTICLE
SWEEP_LIMIT = 500  # units handed out again per tick


def lease_length() -> timedelta:
    return timedelta(seconds=settings.LEASE_SECONDS)


def _upsert(kind: str, ids: list[int], *, token: str, now: datetime, take_queued: bool) -> set[int]:
    """Write (kind, id, token, now + lease) for each id where the unit is free: no row,
    a row whose lease has run out, or (take_queued) a queued row. Returns the ids written."""
    if not ids:
        return set()
    table = connection.ops.quote_name(Lease._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    until, now_value = adapt(now + lease_length()), adapt(now)
    free = f"{table}.until < %s" + (f" OR {table}.token = ''" if take_queued else "")
    sql = (
        f"INSERT INTO {table} (kind, object_id, token, until) VALUES "  # noqa: S608 (fixed names)
        + ", ".join(["(%s, %s, %s, %s)"] * len(ids))
        + " ON CONFLICT (kind, object_id) DO UPDATE SET token = excluded.token, until = excluded.until"
        + f" WHERE {free} RETURNING object_id"
    )
    params = [x for pk in ids for x in (kind, pk, token, until)] + [now_value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def claim(kind: str, ids: Iterable[int], *, token: str, now: datetime | None = None) -> set[int]:
    """Claim the units no live worker holds (free, expired or only queued); returns
    the ids claimed. Run it outside a transaction, so the claim is seen at once."""
    return _upsert(kind, sorted(set(ids)), token=token, now=now or timezone.now(), take_queued=True)


def mark_queued(kind: str, ids: Iterable[int], *, now: datetime | None = None) -> set[int]:
    """Mark units as handed to the broker (empty token) where nothing holds them; returns
    the ids marked: those are the ones to enqueue."""
    return _upsert(kind, sorted(set(ids)), token="", now=now or timezone.now(), take_queued=False)


def release(kind: str, ids: Iterable[int], *, token: str) -> None:
    """Done: the units' rows go, if this token still holds them. One plain DELETE (the
    ORM's delete() would wrap it in a transaction of its own: on SQLite, a second wait
    for the write lock)."""
    ids = list(ids)
    if not ids:
        return
    table = connection.ops.quote_name(Lease._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE kind = %s AND token = %s AND object_id IN ("  # noqa: S608 (fixed names)
            + ", ".join(["%s"] * len(ids))
            + ")",
            [kind, token, *ids],
        )


def live(kind: str, now: datetime | None = None) -> Exists:
    """For annotating/filtering a queryset of that kind's rows: a live lease holds it."""
    return Exists(Lease.objects.filter(kind=kind, object_id=OuterRef("pk"), until__gte=now or timezone.now()))


def lease_ends(sources: Iterable) -> list[tuple[object, datetime]]:
    """(source, when its poll lease runs out) for sources a lease holds, for a message."""
    sources = list(sources)
    until = dict(
        Lease.objects.filter(kind=POLL, object_id__in=[s.pk for s in sources]).values_list(
            "object_id", "until"
        )
    )
    now = timezone.now()
    return [(s, timezone.localtime(until.get(s.pk, now))) for s in sources]


# ---------------------------------------------------------------- holding and renewing


@dataclass
class _Holding:
    tokens: dict[str, int] = field(default_factory=dict)  # token → units it holds
    pid: int = 0
    thread: threading.Thread | None = None


_lock = threading.Lock()
_holding = _Holding()
_mine = threading.local()  # (kind, id) → token, for this thread: a nested hold is free


def _heartbeat() -> None:
    """Renew every lease this process holds, every third of the lease, until the process
    ends (a daemon thread: it dies with its worker, and then the leases run out)."""
    while True:
        time.sleep(settings.LEASE_SECONDS / 3)
        with _lock:
            tokens = list(_holding.tokens)
        if not tokens:
            continue
        try:
            renewed = Lease.objects.filter(token__in=tokens).update(until=timezone.now() + lease_length())
            with _lock:
                holding = sum(n for t, n in _holding.tokens.items() if t in tokens)
            if renewed < holding:
                logger.warning(
                    "renewed %d of %d leases: the others ran out and were taken over", renewed, holding
                )
        except DatabaseError as exc:
            logger.warning(
                "could not renew leases (%s); trying again in %ss", exc, settings.LEASE_SECONDS / 3
            )
        finally:
            connection.close()  # this thread's own connection


def _start_heartbeat() -> None:
    with _lock:
        if _holding.pid != os.getpid() or _holding.thread is None or not _holding.thread.is_alive():
            _holding.pid = os.getpid()  # a forked worker starts its own
            _holding.tokens = {}
            _holding.thread = threading.Thread(target=_heartbeat, name="lease-heartbeat", daemon=True)
            _holding.thread.start()


@contextmanager
def held(kind: str, ids: Iterable[int]) -> Iterator[Held]:
    """Claim the units, renew them while the block runs, release them when it ends (an
    exception included: the unit is then free at once for the next tick). The block
    gets a Held: `.ids` are the units it holds; `.done(ids)` releases some early. Units
    this thread already holds (a step inside another step) count as held, and stay
    with the outer block."""
    ids = list(dict.fromkeys(ids))
    mine: dict = _mine.__dict__.setdefault("units", {})
    with _lock:  # an entry of a hold that has ended does not count
        outer = {pk for pk in ids if mine.get((kind, pk)) in _holding.tokens}
    token = uuid.uuid4().hex
    taken = claim(kind, [pk for pk in ids if pk not in outer], token=token)
    hold = Held(kind, token, taken | outer, taken)
    if taken:
        _start_heartbeat()
        with _lock:
            _holding.tokens[token] = len(taken)
        for pk in taken:
            mine[(kind, pk)] = token
    try:
        yield hold
    except Exception as exc:
        if kind == ARTICLE:
            for pk in hold.own:
                record_failure(pk, exc)
        raise
    finally:
        with _lock:
            _holding.tokens.pop(token, None)
        for pk in taken:
            mine.pop((kind, pk), None)
        if hold.own:
            try:
                release(kind, hold.own, token=token)
            except DatabaseError:  # the lease runs out by itself
                logger.warning("could not release %s leases %s", kind, sorted(hold.own), exc_info=True)


@dataclass
class Held:
    kind: str
    token: str
    ids: set[int]
    own: set[int]  # claimed by this block (not an outer one): released by it

    def __bool__(self) -> bool:
        return bool(self.ids)

    def done(self, ids: Iterable[int]) -> None:
        """These units are finished: release them now, not at the end of the block."""
        finished = self.own & set(ids)
        if finished:
            release(self.kind, finished, token=self.token)
            self.own -= finished
            mine = _mine.__dict__.get("units", {})
            for pk in finished:
                if mine.get((self.kind, pk)) == self.token:
                    del mine[(self.kind, pk)]
            with _lock:
                if self.token in _holding.tokens:
                    _holding.tokens[self.token] = len(self.own)


# ---------------------------------------------------------------- the tick


def unfinished_articles() -> Q:
    """An article is final when it is enriched and in a story."""
    return Q(state__in=[State.DISCOVERED, State.EXTRACTING, State.EXTRACTED, State.ENRICHING]) | Q(
        story__isnull=True
    )


def next_step(state: str, story_id: int | None) -> str:
    if state in (State.DISCOVERED, State.EXTRACTING):
        return "extract"
    if story_id is None:
        return "cluster"
    return "enrich"


def parked(*, cap: int | None = None) -> Q:
    """Articles whose step raised STEP_MAX_FAILURES times in a row: not handed out again."""
    return Q(step_failures__gte=cap or settings.STEP_MAX_FAILURES) & ~Q(failed_step="")


def record_failure(article_id: int, exc: BaseException) -> bool:
    """Count a step of the article that raised (the step it was at: extract, cluster or
    enrich), with its error for editors; True when that makes STEP_MAX_FAILURES in a row,
    and the article is parked: readable as it is, handed out no more until retried."""
    try:
        row = Article.objects.filter(pk=article_id).values_list(
            "state", "story_id", "failed_step", "step_failures"
        )
        found = row.first()
        if found is None:
            return False
        state, story_id, failed, failures = found
        step = next_step(state, story_id)
        failures = failures + 1 if failed == step else 1
        reason = f"{type(exc).__name__}: {exc}".strip()[:2000]
        Article.objects.filter(pk=article_id).update(
            failed_step=step, step_failures=failures, step_error=reason
        )
    except DatabaseError:  # the error that made the step fail may be the database's own
        logger.warning("could not count the failure of article %s", article_id, exc_info=True)
        return False
    cap = settings.STEP_MAX_FAILURES
    if failures >= cap:
        logger.error(
            "article %s: its %s step failed %d times in a row (%s); it is left as it is for an editor to retry",
            article_id,
            step,
            failures,
            reason,
        )
        return True
    logger.warning("article %s: its %s step failed (%d of %d): %s", article_id, step, failures, cap, reason)
    return False


def retry_parked(ids: Iterable[int]) -> dict[str, list[int]]:
    """An editor's retry: the parked articles among `ids` get their failures cleared and
    the unfinished ones are marked queued; returned by next step, to enqueue."""
    ids = list(ids)
    rows = list(
        Article.objects.filter(parked(), unfinished_articles(), pk__in=ids).values_list(
            "pk", "state", "story_id"
        )
    )
    Article.objects.filter(parked(), pk__in=ids).update(failed_step="", step_failures=0, step_error="")
    marked = mark_queued(ARTICLE, [pk for pk, *_ in rows])
    steps: dict[str, list[int]] = {"extract": [], "cluster": [], "enrich": []}
    for pk, state, story_id in rows:
        if pk in marked:
            steps[next_step(state, story_id)].append(pk)
    return steps


def sweep_articles(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, list[int]]:
    """Unfinished articles that nothing holds: a worker that died (its lease ran out),
    a task the broker lost, a step never handed on. An article that moved within the
    last lease is left alone (its next task is on its way), and so is one parked after
    its step raised STEP_MAX_FAILURES times in a row (`record_failure`). They are marked queued (so
    the next tick leaves them be while they wait) and returned by next step."""
    now = now or timezone.now()
    rows = list(
        Article.objects.filter(unfinished_articles(), state_changed_at__lt=now - lease_length())
        .exclude(live(ARTICLE, now))
        .exclude(parked())
        .order_by("state_changed_at", "pk")
        .values_list("pk", "state", "story_id")[:limit]
    )
    marked = mark_queued(ARTICLE, [pk for pk, _state, _story in rows], now=now)
    steps: dict[str, list[int]] = {"extract": [], "cluster": [], "enrich": []}
    for pk, state, story_id in rows:
        if pk in marked:
            steps[next_step(state, story_id)].append(pk)
    # Rows of finished work that nobody deleted (a worker died after its last write).
    Lease.objects.filter(until__lt=now - 10 * lease_length()).exclude(kind=POLL).delete()
    return steps
