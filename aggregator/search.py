"""Search over a stored index, ranked, on both databases.

PostgreSQL: a stored, generated tsvector column `aggregator_article.search_document`
(title weight A, excerpt B, text C, the 'simple' configuration: the site holds several
languages) with a GIN index, made by migration 0010; ranked with ts_rank (SearchRank).
The database computes the column on every write, so `.update()`s keep it right too.

SQLite: an FTS5 table `aggregator_article_fts` over the same three columns, kept in step
by triggers; ranked by bm25 with the same weights. The trigram tokenizer (SQLite 3.34+)
matches parts of words, as the plain `icontains` it replaces did, and Chinese, which is
written without spaces. Django rebuilds a SQLite table (dropping its triggers) for some
schema changes, so the triggers are checked after every migrate and the index rebuilt if
they had gone (install_search_index).

Chinese and Japanese words (no spaces between words, so no tsvector token and no trigram
for one or two characters) and words shorter than a trigram are matched with a plain
case-insensitive substring test on the rows the index has already narrowed down; a query
made only of such words reads every article.
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
PG_COLUMN = "search_document"
PG_INDEX = "article_search_document"
FTS_TABLE = "aggregator_article_fts"
WEIGHTS = (10.0, 4.0, 1.0)  # title, excerpt, text (bm25; PostgreSQL weighs A, B, C)
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

PG_SQL = f"""
ALTER TABLE aggregator_article ADD COLUMN IF NOT EXISTS {PG_COLUMN} tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A')
    || setweight(to_tsvector('simple'::regconfig, coalesce(excerpt, '')), 'B')
    || setweight(to_tsvector('simple'::regconfig, left(coalesce(text, ''), 200000)), 'C')
) STORED;
CREATE INDEX IF NOT EXISTS {PG_INDEX} ON aggregator_article USING GIN ({PG_COLUMN});
"""
PG_REMOVE = (
    f"DROP INDEX IF EXISTS {PG_INDEX}; ALTER TABLE aggregator_article DROP COLUMN IF EXISTS {PG_COLUMN};"
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
                "SELECT 1 FROM pg_indexes WHERE tablename = 'aggregator_article' AND indexname = %s",
                [PG_INDEX],
            )
            if cursor.fetchone() is None:
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


@receiver(post_migrate)
def _repair(sender, using: str = "default", **kwargs) -> None:
    from django.db import connections

    conn = connections[using]
    if getattr(sender, "label", "") == "aggregator":
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM django_migrations WHERE app = 'aggregator' AND name = '0010_search_index'"
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


def _search_postgresql(articles: QuerySet, words: list[str]) -> QuerySet:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVectorField

    indexed = [w for w in words if not _UNSPACED.search(w)]
    for word in words:
        if _UNSPACED.search(word):
            articles = articles.filter(_substring(word))
    if not indexed:
        return articles.order_by("-sort_at", "-pk")
    # Constant SQL (the column is not a model field: migration 0010 adds it on PostgreSQL
    # only); the reader's words only ever travel as parameters.
    document = RawSQL(f'"aggregator_article"."{PG_COLUMN}"', [], output_field=SearchVectorField())  # noqa: S611
    search_query = SearchQuery(" ".join(indexed), search_type="websearch", config="simple")
    # Match with @@ (every word, as websearch means it; through the GIN index); a rank
    # above 0 alone also lets in articles that match only some of the words.
    return (
        articles.alias(document=document)
        .filter(document=search_query)
        .annotate(rank=SearchRank(document, search_query))
        .order_by("-rank", "-sort_at")
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
        return articles
    match = " ".join(_fts_phrase(w) for w in indexed)  # phrases: every word, no query syntax
    # Joined (not a subquery per row): bm25 reads the index's statistics once per query.
    # `rank` is bm25 with WEIGHTS (lower is better).
    return (
        articles.extra(  # noqa: S610 - a virtual table cannot be joined otherwise; words are a parameter
            tables=[FTS_TABLE],
            where=[f"{FTS_TABLE}.rowid = aggregator_article.id", f"{FTS_TABLE} MATCH %s"],
            params=[match],
        )
        .annotate(rank=RawSQL(f"-{FTS_TABLE}.rank", []))  # noqa: S611
        .order_by("-rank", "-sort_at")
    )
