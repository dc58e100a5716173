"""Search over a stored index, ranked, on both databases.

PostgreSQL: a stored, generated tsvector column `aggregator_article.search_document`
(title weight A, excerpt B, text C, the 'simple' configuration: the site holds several
languages) with a GIN index finds the matches; a second, small stored tsvector
`search_head` (title A and excerpt B only) ranks them with ts_rank. Ranking on the whole
document read each match's vector out of TOAST (3 kB a 250-word report): 530 ms for a
word in 8% of 100k articles, against 80 ms on the head (same machine and load). A word
in a headline still ranks above one in an excerpt, above one only in a text; among
matches in texts alone, the newest come first. Made by migrations 0010 and 0013; the
database computes both columns on every write, so `.update()`s keep them right too.

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

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
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
ALTER TABLE aggregator_article ADD COLUMN IF NOT EXISTS {PG_COLUMN} tsvector GENERATED ALWAYS AS (
    {_pg_part("title", "A")} || {_pg_part("excerpt", "B")} || {_pg_part("text", "C", 200000)}
) STORED;
ALTER TABLE aggregator_article ADD COLUMN IF NOT EXISTS {PG_HEAD} tsvector GENERATED ALWAYS AS (
    {_pg_part("title", "A")} || {_pg_part("excerpt", "B")}
) STORED;
CREATE INDEX IF NOT EXISTS {PG_INDEX} ON aggregator_article USING GIN ({PG_COLUMN});
"""
PG_REMOVE = (
    f"DROP INDEX IF EXISTS {PG_INDEX}; ALTER TABLE aggregator_article DROP COLUMN IF EXISTS {PG_COLUMN}, "
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
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'aggregator_article' AND indexname = %s "
                "UNION ALL SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'aggregator_article' AND column_name IN (%s, %s)",
                [PG_INDEX, PG_COLUMN, PG_HEAD],
            )
            if [n for (n,) in cursor.fetchall()] != [1, 2]:
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


LATEST_MIGRATION = "0013_search_head_cjk"  # the migration that made the index as above


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
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVectorField

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
    # GIN index); rank on the small head vector (see the module's docstring).
    return (
        articles.alias(document=document)
        .filter(document=search_query)
        .annotate(rank=SearchRank(head, search_query))
        .order_by("-rank", "-sort_at", "-pk")
    )


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
