"""Search over a stored index, ranked, on both databases.

PostgreSQL: a stored, generated tsvector column `aggregator_article.search_document`
(title weight A, excerpt B, text C, the 'simple' configuration: the site holds several
languages) with a GIN index finds the matches; a second, small stored tsvector
`search_head` (title A and excerpt B only) ranks them with ts_rank. Ranking on the whole
document read each match's vector out of TOAST (3 kB a 250-word report): 530 ms for a
word in 8% of 100k articles, against 80 ms on the head (same machine and load). A word
in a headline still ranks above one in an excerpt, above one only in a text; among
matches in texts alone, the newest come first. Made by migrations 0010, 0013 and 0015;
the database computes both columns on every write, so `.update()`s keep them right too.

The search page reads the best SEARCH_DEPTH matches and a count (best_matches). Each
match read costs a table page, so a common word is not read whole: it is counted up to
COUNT_LIMIT ("more than 1,000 reports match"), its head matches come through a GIN index
on the head (migration 0015), and the newest of its matches in texts alone through the
search index and the sort_at index together, in windows of the newest articles: about
1,400 pages for a word in 8% of 100k articles, against 7,300 when every match was read
(bench/front_page.py).

Chinese and Japanese (written without spaces: the parser makes one token of a whole
run of characters) are indexed as overlapping pairs of characters, and each run's last
character alone (newsdesk_cjk_bigrams, in both columns): a word of two or more
characters is the phrase of its pairs (`研究报告` = 研究 <-> 究报 <-> 报告, adjacent, so
an exact substring), one character a prefix (`研:*`), all through the GIN index. A
trigram index (pg_trgm) would serve words of three characters or more only: a
two-character word, the commonest in Chinese, has no trigram and falls back to scanning
the whole index (EXPLAIN of `LIKE '%研究%'` on a gin_trgm_ops index).

SQLite: an FTS5 table `aggregator_article_fts` over the same three columns, kept in step
by triggers; ranked by bm25 with the same weights. The trigram tokenizer (SQLite 3.34+)
matches parts of words, as the plain `icontains` it replaces did, and Chinese, which is
written without spaces. Django rebuilds a SQLite table (dropping its triggers) for some
schema changes, so the triggers are checked after every migrate and the index rebuilt if
they had gone (install_search_index). There, words shorter than a trigram are matched
with a plain case-insensitive substring test on the rows the index has already narrowed
down; a query made only of such words reads every article.
"""

from __future__ import annotations

import logging
import re
import sqlite3

from django.db import connection, transaction
from django.db.models import BooleanField, Case, Count, F, FloatField, Func, Q, QuerySet, Value, When, Window
from django.db.models.expressions import RawSQL
from django.db.models.lookups import GreaterThan
from django.db.models.signals import post_migrate
from django.dispatch import receiver

logger = logging.getLogger(__name__)

MAX_WORDS = 10
# The search page ranks the best SEARCH_DEPTH matches (by relevance, then recency) into
# stories, as search sites do: a common word matches thousands of articles, and ranking
# every one by story made the page's cost grow with the archive. The total is counted
# in the same query.
SEARCH_DEPTH = 400
PG_COLUMN = "search_document"
PG_HEAD = "search_head"
PG_INDEX = "article_search_document"
PG_HEAD_INDEX = "article_search_head"
PG_ANY = "newsdesk_any_lexeme"
# A search that matches more articles than this is counted only this far ("more than
# 1,000 reports match"): counting every match read one table page per match.
COUNT_LIMIT = 1000
# Beyond COUNT_LIMIT matches, the newest WINDOW * SEARCH_DEPTH articles are searched first
# for the matches in texts alone (best_matches): one window holds enough of them for a
# word in 1 article in WINDOW or more.
WINDOW = 16
PG_BIGRAMS = "newsdesk_cjk_bigrams"
FTS_TABLE = "aggregator_article_fts"
WEIGHTS = (10.0, 4.0, 1.0)  # title, excerpt, text (bm25; PostgreSQL weighs A, B, C)
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A run of such characters, as the database function cuts them (not the katakana middle
# dot U+30FB, which the text parser reads as punctuation).
_CJK_CLASS = "\u3040-\u30fa\u30fc-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")

# Overlapping pairs of each run, then the run's last character alone: "研究人员" ->
# "研究 究人 人员 员". The lone character ends the run, so a phrase never runs on into
# the next run, and every character is the start of a token (one-character prefixes).
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_BIGRAMS}(doc text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(
        CASE WHEN i < length(run) THEN substr(run, i, 2) ELSE substr(run, i, 1) END, ' ' ORDER BY n, i), '')
    FROM regexp_matches(doc, '[{_CJK_CLASS}]+', 'g') WITH ORDINALITY AS m(found, n),
         LATERAL (SELECT found[1] AS run) AS r,
         LATERAL generate_series(1, length(run)) AS i
$$;
"""  # noqa: S608 - constants only

# A query's lexemes, any of them ('a' & !'b' <-> 'c':* -> 'a' | 'b' | 'c':*): ts_rank
# gives a head vector a rank above 0 when it holds one of them, so the head index finds
# every match that ranks above the matches in texts alone. (The lexemes are quoted in the
# query's text form, an inner quote doubled; a prefix keeps its :*.)
PG_ANY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_ANY}(query tsquery) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(m[1], ' | '), '')::tsquery
    FROM regexp_matches(query::text, $re$('(?:[^']|'')*'(?::[*A-D]+)?)$re$, 'g') AS m
$$;
"""  # noqa: S608 - constants only


def _pg_part(column: str, weight: str, limit: int | None = None) -> str:
    """One column's tokens: its words without the Chinese and Japanese runs (the parser
    would make each run one token, which a phrase of pairs could match across runs),
    then the runs' pairs."""
    value = f"coalesce({column}, '')" if limit is None else f"left(coalesce({column}, ''), {limit})"
    return (
        f"setweight(to_tsvector('simple'::regconfig, regexp_replace({value}, '[{_CJK_CLASS}]+', ' ', 'g')) "
        f"|| to_tsvector('simple'::regconfig, {PG_BIGRAMS}({value})), '{weight}')"
    )


PG_SQL = f"""
{PG_FUNCTION}
{PG_ANY_FUNCTION}
ALTER TABLE aggregator_article ADD COLUMN IF NOT EXISTS {PG_COLUMN} tsvector GENERATED ALWAYS AS (
    {_pg_part("title", "A")} || {_pg_part("excerpt", "B")} || {_pg_part("text", "C", 200000)}
) STORED;
ALTER TABLE aggregator_article ADD COLUMN IF NOT EXISTS {PG_HEAD} tsvector GENERATED ALWAYS AS (
    {_pg_part("title", "A")} || {_pg_part("excerpt", "B")}
) STORED;
CREATE INDEX IF NOT EXISTS {PG_INDEX} ON aggregator_article USING GIN ({PG_COLUMN});
CREATE INDEX IF NOT EXISTS {PG_HEAD_INDEX} ON aggregator_article USING GIN ({PG_HEAD});
"""
PG_REMOVE = (
    f"DROP INDEX IF EXISTS {PG_INDEX}, {PG_HEAD_INDEX}; DROP FUNCTION IF EXISTS {PG_ANY}(tsquery); "
    f"ALTER TABLE aggregator_article DROP COLUMN IF EXISTS {PG_COLUMN}, "
    f"DROP COLUMN IF EXISTS {PG_HEAD}; DROP FUNCTION IF EXISTS {PG_BIGRAMS}(text);"
)

_FTS_COLUMNS = "title, excerpt, text"
_FTS_NEW = (
    f"INSERT INTO {FTS_TABLE}(rowid, {_FTS_COLUMNS}) VALUES (new.id, new.title, new.excerpt, new.text);"  # noqa: S608
)
_FTS_OLD = (
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_FTS_COLUMNS}) "  # noqa: S608
    "VALUES ('delete', old.id, old.title, old.excerpt, old.text);"
)
SQLITE_TRIGGERS = {
    f"{FTS_TABLE}_insert": f"AFTER INSERT ON aggregator_article BEGIN {_FTS_NEW} END",
    f"{FTS_TABLE}_delete": f"AFTER DELETE ON aggregator_article BEGIN {_FTS_OLD} END",
    f"{FTS_TABLE}_update": f"AFTER UPDATE OF title, excerpt, text ON aggregator_article BEGIN {_FTS_OLD} {_FTS_NEW} END",
}


def install_search_index(conn=connection) -> None:
    """Make the stored index if it is missing (idempotent; run by migration 0010 and
    after every migrate on SQLite, where a rebuilt table loses its triggers)."""
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'aggregator_article' AND indexname IN (%s, %s) "
                "UNION ALL SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'aggregator_article' AND column_name IN (%s, %s) "
                "UNION ALL SELECT count(*) FROM pg_proc WHERE proname = %s",
                [PG_INDEX, PG_HEAD_INDEX, PG_COLUMN, PG_HEAD, PG_ANY],
            )
            if [n for (n,) in cursor.fetchall()] != [2, 2, 1]:
                cursor.execute(PG_SQL)
            return
        if conn.vendor != "sqlite":
            return
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name LIKE %s",
            [f"{FTS_TABLE}%"],
        )
        present = {name for (name,) in cursor.fetchall()}
        if FTS_TABLE not in present:
            tokenizer = "trigram" if _fts_tokenizer() == "trigram" else "unicode61 remove_diacritics 2"
            cursor.execute(
                f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({_FTS_COLUMNS}, "
                f"content='aggregator_article', content_rowid='id', tokenize='{tokenizer}')"
            )
            # The table's `rank` column: bm25 with our weights (a function call cannot be
            # used inside the listing's GROUP BY; the column can).
            cursor.execute(
                f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('rank', %s)",  # noqa: S608
                [f"bm25({', '.join(str(w) for w in WEIGHTS)})"],
            )
        missing = [name for name in SQLITE_TRIGGERS if name not in present]
        for name in missing:
            cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {SQLITE_TRIGGERS[name]}")
        if missing:  # made now, or the table was rebuilt without them: index every row again
            cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")  # noqa: S608


def remove_search_index(conn=connection) -> None:
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(PG_REMOVE)
        elif conn.vendor == "sqlite":
            for name in SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")


LATEST_MIGRATION = "0015_search_head_index"  # the migration that made the index as above


@receiver(post_migrate)
def _repair(sender, using: str = "default", **kwargs) -> None:
    from django.db import connections

    conn = connections[using]
    if getattr(sender, "label", "") == "aggregator":
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM django_migrations WHERE app = 'aggregator' AND name = %s", [LATEST_MIGRATION]
            )
            if cursor.fetchone() is None:
                return  # migrated backwards past the index
        install_search_index(conn)


def _fts_tokenizer() -> str:
    """The SQLite tokenizer the index was made with (trigram needs SQLite 3.34)."""
    return "trigram" if sqlite3.sqlite_version_info >= (3, 34) else "unicode61"


def _substring(word: str) -> Q:
    return Q(title__icontains=word) | Q(excerpt__icontains=word) | Q(text__icontains=word)


def search_articles(articles: QuerySet, query: str) -> QuerySet:
    """The articles matching every word of `query`, annotated with `rank` (higher is
    better) when the index could rank them, best first."""
    words = [w for w in query.split() if w][:MAX_WORDS]
    if not words:
        return articles.none()
    if connection.vendor == "postgresql":
        return _search_postgresql(articles, words)
    return _search_sqlite(articles, words)


def cjk_tokens(word: str) -> list[str]:
    """The index tokens of a run of Chinese or Japanese characters (see PG_FUNCTION)."""
    return [word[i : i + 2] for i in range(len(word) - 1)] + [word[-1]]


def _search_postgresql(articles: QuerySet, words: list[str]) -> QuerySet:
    from django.contrib.postgres.search import SearchQuery, SearchVectorField

    parts = []
    spaced = [w for w in words if not _UNSPACED.search(w)]
    if spaced:
        parts.append(SearchQuery(" ".join(spaced), search_type="websearch", config="simple"))
    for word in words:
        if not _UNSPACED.search(word):
            continue
        for run in _CJK_RUN.findall(word):
            if len(run) == 1:  # one character: a prefix of the tokens (only CJK characters)
                parts.append(SearchQuery(f"{run}:*", search_type="raw", config="simple"))
            else:  # its pairs, adjacent (cjk_tokens without the lone last character)
                parts.append(
                    SearchQuery(" ".join(cjk_tokens(run)[:-1]), search_type="phrase", config="simple")
                )
        if _CJK_RUN.fullmatch(word) is None:  # mixed ("AI研究"): the index narrows, the text decides
            articles = articles.filter(_substring(word))
    if not parts:  # only characters outside the index's runs (the katakana middle dot)
        return articles.order_by("-sort_at", "-pk")
    search_query = parts[0]
    for part in parts[1:]:
        search_query &= part
    # Constant SQL (the columns are not model fields: migrations 0010 and 0013 add them
    # on PostgreSQL only); the reader's words only ever travel as parameters.
    document = RawSQL(f'"aggregator_article"."{PG_COLUMN}"', [], output_field=SearchVectorField())  # noqa: S611
    head = RawSQL(f'"aggregator_article"."{PG_HEAD}"', [], output_field=SearchVectorField())  # noqa: S611
    # Match with @@ on the whole document (every word, as websearch means it; through the
    # GIN index); rank on the small head vector (see the module's docstring). The query
    # and the head stay as aliases for best_matches.
    return (
        articles.alias(document=document, head=head, search_query=search_query)
        .filter(document=search_query)
        .annotate(rank=_head_rank(head, search_query))
        .order_by("-rank", "-sort_at", "-pk")
    )


def _head_rank(head, search_query) -> Case:
    """ts_rank on the head, 0 when the head does not hold the query's words: ts_rank
    gives a query of several words 1e-20 whenever a head holds not all of them (one, or
    none: any title), and 0 to an empty head, so that the matches in texts alone, all of
    rank 0, come newest first whatever their headlines."""
    from django.contrib.postgres.search import SearchRank

    rank = SearchRank(head, search_query)
    return Case(
        When(GreaterThan(rank, Value(1e-19)), then=rank), default=Value(0.0), output_field=FloatField()
    )


class _Matches(Func):
    """`vector @@ query` as a condition (the head and its query are not model fields)."""

    arg_joiner = " @@ "
    template = "(%(expressions)s)"
    output_field = BooleanField()


def best_matches(found: QuerySet, depth: int) -> tuple[list[tuple], int]:
    """The best `depth` + 1 rows of a search (`search_articles`, best first) as (key,
    sort_at, is_featured, story_id[, rank]) and how many articles match, counted up to
    COUNT_LIMIT + 1 (more than COUNT_LIMIT) on PostgreSQL.

    PostgreSQL finds a row by its page: reading every match (to rank and count them all)
    read one table page per match. A search of up to COUNT_LIMIT matches is read whole,
    ranked and counted in one query that stops after COUNT_LIMIT + 1. Beyond that, only
    the matches that can be among the best are read: those that rank above 0 (a word of
    the query in the head, found through the head's own index) and the matches among the
    newest articles (the rest rank 0, newest first), a window of WINDOW times the depth,
    four times wider each time it holds too few. A common word costs its head matches
    and the pages of the window, whatever the size of the archive."""
    from aggregator.listings import story_key
    from aggregator.models import Article

    fields = ["key", "sort_at", "is_featured", "story_id"]
    ranked = "search_query" in found.query.annotations
    fields += ["rank"] if "rank" in found.query.annotations else []
    rows = found.annotate(key=story_key()).values_list(*fields)
    if not ranked:  # SQLite, or nothing to rank: every match counted in the same scan
        rows = list(rows.annotate(total=Window(Count("pk")))[: depth + 1])
        return [row[:-1] for row in rows], (rows[0][-1] if rows else 0)
    # The first COUNT_LIMIT + 1 matches the index gives (unranked: the scan stops there),
    # then ranked and counted: every match when there are no more.
    first, params = rows.annotate(article_id=F("pk")).order_by()[: COUNT_LIMIT + 1].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(fields)}, count(*) OVER () FROM ({first}) AS first "  # noqa: S608 - names only
            "ORDER BY rank DESC, sort_at DESC, article_id DESC LIMIT %s",
            [*params, depth + 1],
        )
        first_row = cursor.fetchone()
        total = first_row[-1] if first_row else 0
        if total <= COUNT_LIMIT:  # (the other rows are read only then)
            return [row[:-1] for row in [first_row, *cursor.fetchall()] if row], total
    # The matches that rank above 0 (all hold a word of the query in the head) and the
    # matches among the newest articles, together: the rows are right once the window
    # holds the last of them that ranks 0 (the older matches in texts alone rank below).
    in_head = _Matches(F("head"), Func(F("search_query"), function=PG_ANY))
    newest = Article.objects.order_by("-sort_at").values_list("sort_at", flat=True)
    window = WINDOW * (depth + 1)
    while True:
        start = next(iter(newest[window - 1 : window]), None)
        candidates = rows if start is None else rows.filter(in_head | Q(sort_at__gte=start))
        # Through the indexes (search, head and sort_at) and their bitmaps, not down the
        # sort_at index: PostgreSQL's costs miss that matching a document read out of
        # TOAST costs far more than a page. The setting ends with the savepoint.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            best = list(candidates[: depth + 1])
            transaction.set_rollback(True)
        if start is None or (len(best) > depth and (best[-1][4] > 0 or best[-1][1] >= start)):
            return best, total
        window *= 4


def _fts_phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _search_sqlite(articles: QuerySet, words: list[str]) -> QuerySet:
    tokenizer = _fts_tokenizer()
    if tokenizer == "trigram":
        indexed = [w for w in words if len(w) >= 3]
    else:
        indexed = [w for w in words if not _UNSPACED.search(w) and re.fullmatch(r"\w+", w)]
    for word in words:
        if word not in indexed:
            articles = articles.filter(_substring(word))
    if not indexed:
        return articles.order_by("-sort_at", "-pk")
    match = " ".join(_fts_phrase(w) for w in indexed)  # phrases: every word, no query syntax
    # Joined (not a subquery per row): bm25 reads the index's statistics once per query.
    # `rank` is bm25 with WEIGHTS (lower is better).
    found = articles.extra(  # noqa: S610 - a virtual table cannot be joined otherwise; words are a parameter
        tables=[FTS_TABLE],
        where=[f"{FTS_TABLE}.rowid = aggregator_article.id", f"{FTS_TABLE} MATCH %s"],
        params=[match],
    )
    return found.annotate(rank=RawSQL(f"-{FTS_TABLE}.rank", [])).order_by("-rank", "-sort_at", "-pk")  # noqa: S611
