"""Story clustering: every new article joins the story of its closest recent neighbour,
or starts one.

An article is reduced to distinctive keys: explicit dates (language-independent: "18
November 2026" and "2026年11月18日" give the same key), names and other capitalised or
alphanumeric Latin-script tokens (kept across languages: "Helios Labs", "Aurora-3"), and
content words of the headline; at most MAX_KEYS of them. Candidates come from the
StoryKey index within a time window (cost independent of the corpus size). The score is
an IDF-weighted cosine of content words within a language, or an overlap of dates and
names across languages. Each article's weights are fixed when it is indexed and stored
in its ArticleVector, so a newcomer reads KeyStat for its own keys and words only and
never re-reads its candidates' texts.

No global lock: a worker takes a transaction-scoped advisory lock per key of its
article (PostgreSQL; SQLite serializes writers anyway). Two articles that could match
share a key, so they are clustered one after the other and never open two stories for
one event; articles with no key in common are clustered at the same time. Keys already
carried by HOT_KEY articles or more (today's date, a country, a big company) are not
locked: every worker would queue on them, and they cannot tell a new event apart. Two
first reports of a new event share its fresh, rare keys (its names), and those are
locked; once the event has a story, a newcomer joins it whichever key it shares. KeyStat, whose
"" row every article touches, is counted after the clustering transaction commits, so
workers never wait on it; a sweep counts what a dead worker left uncounted.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django.db.models import Count, F, Max
from django.dispatch import receiver
from django.utils import timezone

from aggregator.ingest.leases import ARTICLE, held
from aggregator.models import Article, ArticleVector, KeyStat, Story, StoryKey, StoryRedirect
from enrichment import text as tx

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=4)
CANDIDATES = 40
THRESHOLD = 0.21  # same language: IDF-weighted cosine of content words
CROSS_THRESHOLD = 0.30  # dates and names shared across languages
MIN_SHARED = 3
MAX_KEYS = 60  # keys indexed (and locked) per article
MAX_WORDS = 100  # content words kept in an article's vector
HOT_KEY = 50  # keys in this many articles or more are not locked (see above)
MIN_LOCKED = 3  # ... but an article whose keys are all hot locks its rarest few
# Latin-script tokens, also inside CJK text (where \b sees no boundary).
_NAME = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9])")
_DIGIT = re.compile(r"[0-9]")
COMMON = set(
    """The This That These Those There Their They It Its In On At For From With And But Or As By To Of
    A An If When While After Before Since Until During Under Over About Into Than Then So Yet Not No
    He She We I You Our His Her Who What Where Why How Which Monday Tuesday Wednesday Thursday Friday
    Saturday Sunday January February March April May June July August September October November
    December Mr Ms Mrs Dr CEO CFO CTO Inc Ltd Co Der Die Das Ein Eine Und Im Am Zum Zur Bei Mit Von
    Auf Nach Wie Es Sie Er Wir Auch Noch Laut Seit Bis Für Über Unter""".split()
)
_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)


def around(at: datetime, width: timedelta) -> tuple[datetime, datetime]:
    """[at - width, at + width], clamped to the calendar (a publisher's date of year 1
    or 9999 must not raise OverflowError and leave its article unclustered)."""
    try:
        low = at - width
    except OverflowError:
        low = _MIN
    try:
        high = at + width
    except OverflowError:
        high = _MAX
    return low, high


def story_keys(title: str, text: str) -> list[str]:
    """At most MAX_KEYS keys, the most telling first: dates, then what the headline
    names, then the names the text repeats most."""
    body = f"{title}\n{text[:6000]}"
    dates: set[str] = set()
    for sentence in tx.sentences(body):
        for found in tx.find_dates(sentence):
            if len(found.value) == 10:
                dates.add("d:" + found.value)
    names: Counter[str] = Counter()
    for match in _NAME.finditer(body):
        token = match.group(0)
        if token in COMMON:
            continue
        digits = not token.isalpha() and _DIGIT.search(token) is not None  # (letters, digits, hyphens)
        if len(token) < 3 and not digits:
            continue
        if (token[0].isupper() or digits) and not token.isdigit():
            names["n:" + token.lower()] += 1
    in_title = {"n:" + m.group(0).lower() for m in _NAME.finditer(title)}
    words = set() if tx.is_cjk(title) else {"w:" + w for w in tx.tokens(title)}
    ranked = [
        *sorted(dates),
        *sorted(k for k in names if k in in_title),
        *sorted(words),
        *sorted((k for k in names if k not in in_title), key=lambda k: (-names[k], k)),
    ]
    return list(dict.fromkeys(k[:80] for k in ranked))[:MAX_KEYS]


def top_words(title: str, text: str) -> list[str]:
    """The article's MAX_WORDS most frequent content words (the headline counts twice)."""
    counts = tx.keyword_counts(f"{title} {title} {text[:6000]}")
    return [w[:78] for w, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_WORDS]]


def body_words(title: str, text: str) -> set[str]:
    return set(top_words(title, text))


def keys_to_lock(vector: Vector) -> list[str]:
    ranked = sorted(vector.keys, key=lambda k: (vector.counts.get(k, 0), k))
    rare = [k for k in ranked if vector.counts.get(k, 0) < HOT_KEY]
    return rare if len(rare) >= MIN_LOCKED else ranked[:MIN_LOCKED]


def _lock_keys(keys: Iterable[str]) -> None:
    """Per-key advisory locks, held to the end of the transaction, taken in one order
    (sorted) so two workers never deadlock. SQLite's IMMEDIATE transaction already
    holds the database's write lock."""
    if connection.vendor != "postgresql":
        return
    ids = sorted(
        {
            int.from_bytes(hashlib.blake2b(f"story:{k}".encode(), digest_size=8).digest(), "big", signed=True)
            for k in keys
        }
    )
    if ids:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", [ids])


def _weights(terms: Iterable[str]) -> tuple[dict[str, float], dict[str, int]]:
    """IDF of the article's own keys and words, and their counts (one query, at most
    MAX_KEYS + MAX_WORDS + 1 keys)."""
    terms = set(terms)
    wanted = sorted({*terms, ""})
    with connection.cursor() as cursor:  # plain SQL: ~160 keys, every article (see _candidates)
        cursor.execute(
            f"SELECT {connection.ops.quote_name('key')}, articles FROM {KeyStat._meta.db_table}"  # noqa: S608
            f" WHERE {connection.ops.quote_name('key')} IN (" + ", ".join(["%s"] * len(wanted)) + ")",
            wanted,
        )
        stats = dict(cursor.fetchall())
    total = max(stats.get("", 1), 1)
    return {k: round(math.log((total + 1) / (stats.get(k, 0) + 1)) + 0.1, 4) for k in terms}, stats


@dataclass
class Vector:
    keys: dict[str, float]
    words: dict[str, float]
    words_norm: float
    language: str
    counts: dict[str, int] = field(default_factory=dict)  # KeyStat when computed; not stored

    @classmethod
    def of(cls, article: Article) -> Vector:
        keys, words = (
            story_keys(article.title, article.body_text),
            top_words(article.title, article.body_text),
        )
        idf, counts = _weights([*keys, *("b:" + w for w in words)])
        word_weights = {w: idf["b:" + w] for w in words}
        return cls(
            keys={k: idf[k] for k in keys},
            words=word_weights,
            words_norm=math.sqrt(sum(v * v for v in word_weights.values())),
            language=_language(article),
            counts=counts,
        )

    def fields(self) -> dict:
        return {
            "keys": self.keys,
            "words": self.words,
            "words_norm": self.words_norm,
            "language": self.language,
        }


def _language(article: Article) -> str:
    code = (article.language or article.source.language or "").split("-")[0].lower()
    return code or ("zh" if tx.is_cjk(article.title + article.body_text[:500]) else "")


def entity_overlap(mine: dict[str, float], theirs: dict[str, float]) -> tuple[float, set[str]]:
    """Weighted overlap coefficient over language-independent keys (dates, names): the
    share of either side's weight that the two have in common, the larger one, so a
    short or foreign-language report can match a long one. Fewer than MIN_SHARED shared
    keys score nothing."""
    mine = {k: v for k, v in mine.items() if k[0] in "dn"}
    theirs = {k: v for k, v in theirs.items() if k[0] in "dn"}
    shared = mine.keys() & theirs.keys()
    if len(shared) < MIN_SHARED:
        return 0.0, shared
    # fsum: exact whatever order the set iterates in (PYTHONHASHSEED), so a score at a
    # threshold or a tie between two candidates comes out the same in every process.
    return max(
        math.fsum(mine[k] for k in shared) / math.fsum(mine.values()),
        math.fsum(theirs[k] for k in shared) / math.fsum(theirs.values()),
    ), shared


def word_cosine(mine: Vector, theirs: Vector) -> float:
    """Cosine of two articles' content words, each weighted by IDF as it was indexed."""
    shared = mine.words.keys() & theirs.words.keys()
    if not shared or not mine.words_norm or not theirs.words_norm:
        return 0.0
    return math.fsum(mine.words[w] * theirs.words[w] for w in shared) / (mine.words_norm * theirs.words_norm)


def similarity(mine: Vector, theirs: Vector) -> float:
    """Across languages, only dates and names can match. Within one language, the
    content words decide, or dates and names when the two share an explicit date."""
    overlap, shared = entity_overlap(mine.keys, theirs.keys)
    if mine.language != theirs.language:
        return overlap if overlap >= CROSS_THRESHOLD else 0.0
    dated = any(k.startswith("d:") for k in shared)
    return max(word_cosine(mine, theirs), overlap if dated and overlap >= CROSS_THRESHOLD else 0.0)


@dataclass
class Match:
    article_id: int
    story_id: int | None
    score: float


# Vectors read before, kept by each thread for as long as its database connection: a
# stored vector never changes (reclustering stores new rows, with new ids), and reading
# one back (two JSON documents) took longer than comparing it. Only committed rows are
# kept (a row rolled back could come again with its id and other weights). About 20 KB
# each.
KNOWN_VECTORS = 2000
_local = threading.local()


def _known() -> OrderedDict[int, tuple[int, Vector]]:
    """This thread's vectors: article id → (row id, vector)."""
    if not hasattr(_local, "vectors"):
        _local.vectors = OrderedDict()
    return _local.vectors


def _remember(article_id: int, row_id: int, vector: Vector) -> None:
    def keep() -> None:
        if connection.in_atomic_block:  # run early (a test capturing on_commit): not committed
            return
        known = _known()
        known[article_id] = (row_id, vector)
        known.move_to_end(article_id)
        while len(known) > KNOWN_VECTORS:
            known.popitem(last=False)

    transaction.on_commit(keep)  # at once outside a transaction


@receiver(connection_created)
def _forget_vectors(sender, **kwargs) -> None:
    """A new connection (in this thread) may be to another database: a test's, a file
    made again."""
    _local.__dict__.pop("vectors", None)


def _vectors(candidates: dict[int, int | None]) -> dict[int, Vector]:
    """The stored vectors of candidates ({article id: its vector's row id, None when it
    has none}); an article indexed before vectors existed gets one now (once)."""
    found: dict[int, Vector] = {}
    known = _known()
    for pk, row_id in candidates.items():
        if row_id is not None and known.get(pk, (None,))[0] == row_id:
            found[pk] = known[pk][1]
            known.move_to_end(pk)
    unread = [pk for pk, row_id in candidates.items() if row_id is not None and pk not in found]
    rows = ArticleVector.objects.filter(article_id__in=unread).values_list(
        "article_id", "pk", "keys", "words", "words_norm", "language"
    )
    for pk, row_id, keys, words, norm, language in rows if unread else ():
        found[pk] = Vector(keys, words, norm, language)
        _remember(pk, row_id, found[pk])
    missing = set(candidates) - found.keys()
    for article in Article.objects.filter(pk__in=missing).select_related("source") if missing else []:
        vector = Vector.of(article)
        ArticleVector.objects.get_or_create(article=article, defaults={**vector.fields(), "counted": True})
        found[article.pk] = vector
    return found


def _candidates(article: Article, vector: Vector) -> list[tuple[int, int | None, int | None]]:
    """The CANDIDATES articles of the window sharing the most keys with this one (ties:
    the oldest id first), each with its story id and its vector's row id (None: none
    yet). Plain SQL: it runs twice an article, once in the clustering transaction, and
    the ORM took longer to build it than the database to answer it."""
    if not vector.keys:
        return []
    keys, adapt, quote = (
        list(vector.keys),
        connection.ops.adapt_datetimefield_value,
        connection.ops.quote_name,
    )
    low, high = around(article.sort_at, WINDOW)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.article_id, a.story_id, v.id FROM ("  # noqa: S608 (fixed names)
            f"SELECT article_id, COUNT(*) AS n FROM {StoryKey._meta.db_table} WHERE {quote('key')} IN ("
            + ", ".join(["%s"] * len(keys))
            + ") AND sort_at >= %s AND sort_at <= %s AND article_id <> %s"
            " GROUP BY article_id ORDER BY n DESC, article_id LIMIT %s) c"
            f" JOIN {Article._meta.db_table} a ON a.id = c.article_id"
            f" LEFT JOIN {ArticleVector._meta.db_table} v ON v.article_id = c.article_id"
            " ORDER BY c.n DESC, c.article_id",
            [*keys, adapt(low), adapt(high), article.pk, CANDIDATES],
        )
        return cursor.fetchall()


def matches(article: Article, vector: Vector, *, scored: dict[int, float] | None = None) -> list[Match]:
    """The articles of the window similar enough to join, most similar first, with the
    story each is in now.

    `scored`: the scores of candidates an earlier call compared (filled in by this one).
    A candidate's vector never changes once indexed, so only the candidates that are new
    since are read and compared. This is how clustering matches before its write
    transaction and checks again inside it."""
    hits = _candidates(article, vector)
    scored = {} if scored is None else scored
    new = {pk: row_id for pk, _story_id, row_id in hits if pk not in scored}
    for pk, theirs in _vectors(new).items() if new else ():
        scored[pk] = similarity(vector, theirs)
    return sorted(
        (
            Match(pk, story_id, scored[pk])
            for pk, story_id, _row_id in hits
            if scored.get(pk, 0.0) >= THRESHOLD
        ),
        key=lambda m: (-m.score, m.article_id),
    )


def best_match(article: Article, vector: Vector) -> Match | None:
    """The most similar article of the window, if similar enough."""
    found = matches(article, vector)
    return found[0] if found else None


def _locked_stories(story_ids: Iterable[int]) -> list[Story]:
    """The stories, row-locked to the end of the transaction in id order (so a merge and
    a worker joining one of them wait for each other instead of one writing an article
    into a story the other deletes); a story merged meanwhile is replaced by its survivor."""
    ids = set(story_ids)
    found = list(Story.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    gone = ids - {s.pk for s in found}
    if gone:
        survivors = set(StoryRedirect.objects.filter(old_id__in=gone).values_list("story_id", flat=True))
        survivors -= {s.pk for s in found}
        found += Story.objects.select_for_update().filter(pk__in=survivors).order_by("pk")
    return sorted(found, key=lambda s: s.pk)


def _index(article: Article, vector: Vector, *, counted: bool = False) -> bool:
    """Add the article's keys to the index and store its vector, once (a second run
    changes nothing); True when this call did. `counted`: the caller counts its keys
    in the same transaction. Plain statements: inside the clustering transaction, the
    ORM's bulk_create (a model instance and a field conversion per key) cost more than
    the writes."""
    if ArticleVector.objects.filter(article=article).exists():
        return False
    sort_at = connection.ops.adapt_datetimefield_value(article.sort_at)
    with connection.cursor() as cursor:
        # A legacy row set (indexed before vectors existed) is replaced.
        cursor.execute(f"DELETE FROM {StoryKey._meta.db_table} WHERE article_id = %s", [article.pk])  # noqa: S608
        if vector.keys:
            cursor.execute(
                f"INSERT INTO {StoryKey._meta.db_table} (article_id, {connection.ops.quote_name('key')}, sort_at)"  # noqa: S608
                " VALUES " + ", ".join(["(%s, %s, %s)"] * len(vector.keys)),
                [x for k in vector.keys for x in (article.pk, k, sort_at)],
            )
    row = ArticleVector.objects.create(article=article, counted=counted, **vector.fields())
    _remember(article.pk, row.pk, vector)
    return True


def _add_counts(deltas: dict[str, int]) -> None:
    """KeyStat += delta for each key, in one statement, rows taken in key order (so two
    workers counting overlapping keys never deadlock)."""
    rows = sorted(deltas.items())
    if not rows:
        return
    table = KeyStat._meta.db_table
    values = ", ".join(["(%s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, articles) VALUES {values} "  # noqa: S608 (fixed names)
            f"ON CONFLICT (key) DO UPDATE SET articles = {table}.articles + excluded.articles",
            [x for row in rows for x in row],
        )


def count_keys(article_id: int, *, vector: Vector | None = None) -> bool:
    """Count an indexed article's keys and words in KeyStat, once (claimed with a
    conditional UPDATE; a dead worker's share is picked up by `unclustered`). `vector`:
    the one this worker has just indexed (else it is read)."""
    with transaction.atomic():
        if not ArticleVector.objects.filter(article_id=article_id, counted=False).update(counted=True):
            return False
        if vector is None:
            vector = ArticleVector.objects.get(article_id=article_id)
        _add_counts(_counts(vector))
    return True


def _counts(vector: Vector | ArticleVector) -> dict[str, int]:
    """What one article adds to KeyStat: the article itself (""), its keys and words."""
    return {"": 1, **dict.fromkeys(vector.keys, 1), **{"b:" + w: 1 for w in vector.words}}


def uncount_keys(article_id: int) -> None:
    """An article leaves the corpus (deleted): its keys and words count one less."""
    vector = ArticleVector.objects.filter(article_id=article_id, counted=True).first()
    if vector is None:
        return
    keys = sorted({"", *vector.keys, *("b:" + w for w in vector.words)})
    with transaction.atomic():
        locked = list(
            KeyStat.objects.select_for_update()
            .filter(key__in=keys)
            .order_by("key")
            .values_list("pk", flat=True)
        )
        KeyStat.objects.filter(pk__in=locked, articles__gt=0).update(articles=F("articles") - 1)


def refresh_story(story: Story) -> None:
    """The story's counts, lead and times, from its articles (aggregates: a few queries
    whatever the story's size); written, and set on `story`."""
    articles = Article.objects.filter(story=story)
    first = (
        articles.order_by(F("published_at").asc(nulls_last=True), "collected_at", "pk")
        .values("pk", "title", "published_at", "collected_at")
        .first()
    )
    if first is None:
        fields = {"article_count": 0, "publisher_count": 0, "lead_article_id": None}
    else:
        stats = articles.aggregate(
            n=Count("id"), publishers=Count("source", distinct=True), last=Max("sort_at")
        )
        fields = {
            "article_count": stats["n"],
            "publisher_count": stats["publishers"],
            "lead_article_id": first["pk"],
            "headline": first["title"][:500],
            "first_seen_at": first["published_at"] or first["collected_at"],
            "last_seen_at": stats["last"],
        }
    Story.objects.filter(pk=story.pk).update(**fields)
    for name, value in fields.items():
        setattr(story, name, value)


def _link_related(story: Story, article: Article, *, limit: int = 5, newest: int = 50) -> None:
    """The story's other cards (its `newest` latest, so a long story costs no more)
    list the newcomer first among their related updates."""
    from enrichment.models import Insight

    latest = (
        Article.objects.filter(story=story).exclude(pk=article.pk).order_by("-sort_at").values("pk")[:newest]
    )
    field = Insight._meta.get_field("related_ids")
    changed = []
    for pk, related in (
        Insight.objects.filter(article__in=latest).order_by("pk").values_list("pk", "related_ids")
    ):
        ids = [article.pk, *[i for i in related if i != article.pk]][:limit]
        if ids != related:
            changed.append((field.get_db_prep_save(ids, connection), pk))
    if changed:
        # One prepared statement run per card (bulk_update's CASE over every card cost
        # more CPU to build than the statements to run), in the caller's transaction.
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {Insight._meta.db_table} SET related_ids = %s WHERE id = %s",  # noqa: S608 (fixed names)
                changed,
            )


def _new_story(article: Article, *, alone: bool = False) -> Story:
    """A story led by `article`; `alone`: with its counts and times already those of a
    story of this one article (what refresh_story would write), so it needs no refresh."""
    first_seen = article.published_at or article.collected_at or timezone.now()
    if not alone:
        return Story.objects.create(headline=article.title[:500], first_seen_at=first_seen)
    return Story.objects.create(
        headline=article.title[:500],
        first_seen_at=first_seen,
        last_seen_at=article.sort_at,
        lead_article=article,
        article_count=1,
        publisher_count=1,
    )


def place_article(
    article_id: int, *, again: bool = False, reuse: int | None = None, claimed: set | None = None
) -> Story | None:
    """The clustering transaction of one article (its KeyStat counts come after, from
    count_keys). `again` (recluster): place it even if it has a story; a new cluster
    then keeps the story id `reuse` (the one the article had) unless another cluster of
    this run has already claimed it."""
    article = Article.objects.filter(pk=article_id).select_related("source").first()
    return _place(article, again=again, reuse=reuse, claimed=claimed)


def _place(
    article: Article | None,
    *,
    again: bool = False,
    reuse: int | None = None,
    claimed: set | None = None,
    count: bool = False,
) -> Story | None:
    """place_article for an article already read; its story is set on it. `count`: and
    count its keys (count_keys), in the clustering transaction on SQLite (which has one
    writer at a time anyway: one wait for the write lock instead of two), after it
    elsewhere (PostgreSQL: workers must not queue on KeyStat's rows).

    The candidates are compared before the write transaction (on SQLite it holds the one
    write lock, so every other worker would wait while this one reads and scores them),
    and inside it only those indexed since: the result is the one a match made inside
    would give."""
    if article is None:
        return None
    if article.story_id and not again:
        return article.story
    vector = Vector.of(article)
    scored: dict[int, float] = {}
    matches(article, vector, scored=scored)
    count_now = count and connection.vendor == "sqlite"
    with transaction.atomic():
        _lock_keys(keys_to_lock(vector))
        current = Article.objects.filter(pk=article.pk).values_list("story_id", flat=True).first()
        if current and not again:  # another worker placed it meanwhile
            article.story = Story.objects.get(pk=current)
            return article.story
        found = matches(article, vector, scored=scored)
        match = found[0] if found else None
        indexed = _index(article, vector, counted=count_now)
        if indexed and count_now:
            _add_counts(_counts(vector))
        story = None
        if match is not None:
            # Every story the article matches is one event: two reports that did not
            # match each other opened a story each, and this one bridges them. Without
            # the merge, which reports end up together would depend on the order they
            # came in (a worker's timing). The oldest story survives; the others'
            # addresses redirect to it.
            joined = _locked_stories({m.story_id for m in found if m.story_id})
            if joined:
                story, *others = joined
                if others:
                    merge_stories(story, others)
            else:  # the neighbour predates clustering: give it a story now
                neighbour = Article.objects.get(pk=match.article_id)
                story = _new_story(neighbour)
                Article.objects.filter(pk=neighbour.pk).update(story=story)
        if story is None and reuse is not None and claimed is not None and reuse not in claimed:
            story = Story.objects.filter(pk=reuse).first()
        alone = story is None
        if alone:
            story = _new_story(article, alone=True)
        if claimed is not None:
            claimed.add(story.pk)
        Article.objects.filter(pk=article.pk).update(story=story)
        if not alone:
            refresh_story(story)
        if current and current != story.pk:
            refresh_story(Story(pk=current))
        if match is not None:
            _link_related(story, article)
        logger.debug("article %s → story %s (%s)", article.pk, story.pk, match)
    article.story = story
    if count and not (indexed and count_now):
        count_keys(article.pk, vector=vector if indexed else None)
    return story


def assign_story(article_id: int, *, now: datetime | None = None) -> Story | None:
    """Put one article in a story (idempotent: an article keeps the story it has),
    holding its lease (aggregator.ingest.leases); None when another worker holds it."""
    with held(ARTICLE, [article_id]) as hold:
        if not hold:
            return None
        article = Article.objects.filter(pk=article_id).select_related("source").first()
        return cluster_held(article) if article else None


def cluster_held(article: Article) -> Story | None:
    """assign_story for an article the caller holds (its lease) and has read; its story
    is set on `article`."""
    return _place(article, count=True)


def merge_stories(survivor: Story, others: Iterable[Story]) -> int:
    """Fold `others` into `survivor`: their articles, recap items and old addresses
    (which answer 301 from then on) move to the survivor. Returns how many merged."""
    from enrichment.models import RecapItem

    merged = 0
    others = list(others)
    with transaction.atomic():
        locked = {s.pk for s in _locked_stories([survivor.pk, *(o.pk for o in others)])}
        for other in others:
            if other.pk not in locked:  # merged by another worker meanwhile
                continue
            if other.pk == survivor.pk:
                continue
            Article.objects.filter(story=other).update(story=survivor)
            RecapItem.objects.filter(story=other).update(story=survivor)
            StoryRedirect.objects.filter(story=other).update(story=survivor)
            StoryRedirect.objects.update_or_create(old_id=other.pk, defaults={"story": survivor})
            if other.is_featured and not survivor.is_featured:
                Story.objects.filter(pk=survivor.pk).update(is_featured=True)
                survivor.is_featured = True
            other.delete()
            merged += 1
        StoryRedirect.objects.filter(old_id=survivor.pk).delete()
        refresh_story(survivor)
    return merged


def recluster(*, progress=None) -> int:
    """Cluster every article again from a fresh index, oldest first; returns the number
    of stories. Story ids are kept: a cluster keeps the id its first article had; a
    story that no longer leads a cluster is merged into the one most of its articles
    joined (its address redirects there). Readers see each article in its old story
    until it is placed again; workers keep clustering meanwhile (each step takes the
    same key locks)."""
    old = dict(Article.objects.exclude(story=None).values_list("pk", "story_id"))
    ids = list(Article.objects.order_by("sort_at", "pk").values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        # Plain DELETEs: no per-row signal (the counts they would lower go too).
        for model in (StoryKey, ArticleVector, KeyStat):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608 (fixed names)
    claimed: set[int] = set()
    for n, article_id in enumerate(ids, 1):
        place_article(article_id, again=True, reuse=old.get(article_id), claimed=claimed)
        count_keys(article_id)
        if progress:
            progress(n, len(ids))
    now_in = dict(Article.objects.filter(pk__in=list(old)).values_list("pk", "story_id"))
    went: dict[int, Counter] = defaultdict(Counter)
    for article_id, story_id in old.items():
        if now_in.get(article_id):
            went[story_id][now_in[article_id]] += 1
    for story in Story.objects.exclude(pk__in=claimed).filter(articles__isnull=True):
        if went.get(story.pk):
            target = Story.objects.get(pk=went[story.pk].most_common(1)[0][0])
            merge_stories(target, [story])
        elif not story.recap_items.exists():
            story.delete()
    return Story.objects.count()


def count_uncounted() -> int:
    """Count the keys a dead worker indexed but did not count."""
    ids = list(ArticleVector.objects.filter(counted=False).values_list("article_id", flat=True)[:500])
    return sum(count_keys(article_id) for article_id in ids)


def unclustered(*, older_than: datetime) -> list[int]:
    """Extracted articles with no story (a worker died between extraction and
    clustering), and count what a dead worker left uncounted."""
    count_uncounted()
    return list(
        Article.objects.filter(story__isnull=True, state_changed_at__lt=older_than)
        .exclude(state__in=[Article.State.DISCOVERED, Article.State.EXTRACTING])
        .values_list("pk", flat=True)[:500]
    )
