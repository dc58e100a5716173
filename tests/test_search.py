"""Search reads a stored index (a generated tsvector with a GIN index on PostgreSQL, an
FTS5 table on SQLite), ranks what it finds, and follows every change to an article."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from aggregator.models import Article, Source
from aggregator.search import FTS_TABLE, PG_INDEX, SQLITE_TRIGGERS, search_articles

pytestmark = pytest.mark.django_db

FILLER = "The council met on Tuesday and reviewed the plans for the harbour in detail."


def make(
    title: str, *, text: str = FILLER, excerpt: str = "", hours_ago: int = 0, language: str = "en"
) -> Article:
    source, _ = Source.objects.get_or_create(
        slug="pub", defaults={"name": "Publisher", "feed_url": "http://127.0.0.1:9/feed"}
    )
    at = timezone.now() - timedelta(hours=hours_ago)
    return Article.objects.create(
        source=source,
        guid=title,
        url=f"https://pub.example/{len(Article.objects.all())}",
        title=title,
        excerpt=excerpt,
        text=text,
        language=language,
        sort_at=at,
        published_at=at,
    )


def found(query: str) -> list[int]:
    return list(search_articles(Article.objects.visible(), query).values_list("pk", flat=True))


def titles_on_page(client, query: str) -> list[str]:
    html = client.get("/search/", {"q": query}).content.decode()
    return re.findall(r'<h2 class="card-title"><a href="/a/\d+/"[^>]*>([^<]+)</a>', html)


def test_a_word_in_the_headline_ranks_above_the_same_word_in_the_text(client):
    in_text = make("Harbour plans reviewed", text=f"{FILLER} The turbine maker said nothing.", hours_ago=0)
    in_title = make("Turbine maker opens a plant", hours_ago=5)  # older: only relevance puts it first
    in_excerpt = make("A quiet week", excerpt="The turbine order was signed.", hours_ago=1)
    make("Unrelated news", hours_ago=0)
    assert found("turbine") == [in_title.pk, in_excerpt.pk, in_text.pk]
    ranked = search_articles(Article.objects.visible(), "turbine")
    assert [a.rank for a in ranked] == sorted((a.rank for a in ranked), reverse=True)
    assert ranked[0].rank > ranked[2].rank
    assert titles_on_page(client, "turbine") == [in_title.title, in_excerpt.title, in_text.title]


def test_every_word_must_match_and_the_query_is_inert():
    both = make("Turbine maker opens a plant in Kiel")
    make("Turbine maker closes a plant")
    assert found("turbine kiel") == [both.pk]
    for odd in [
        '"',
        'turbine" OR "x',
        "title:turbine",
        "NEAR(turbine kiel)",
        "turbine*",
        "'; DROP TABLE x; --",
    ]:
        found(odd)  # no syntax error, whatever the reader types
    assert found('turbine" OR "x') == []


def test_the_index_follows_an_edited_a_hidden_and_a_deleted_article():
    article = make("Glacier report published")
    assert found("glacier") == [article.pk]
    Article.objects.filter(pk=article.pk).update(title="Volcano report published")  # no save()
    assert found("glacier") == [] and found("volcano") == [article.pk]
    Article.objects.filter(pk=article.pk).update(text="The seismologists were surprised.")
    assert found("seismologists") == [article.pk]
    Article.objects.filter(pk=article.pk).update(is_hidden=True)
    assert found("volcano") == []
    Article.objects.filter(pk=article.pk).delete()
    assert found("volcano") == [] and found("seismologists") == []


def test_chinese_and_german_articles_are_found_by_their_words():
    zh = make(
        "东岚大学发布气候研究报告", text="东岚大学的研究人员周二发布了关于海港气候的新报告。", language="zh"
    )
    de = make(
        "Forschung an der Universität", text="Die Forscherinnen stellten den Bericht vor.", language="de"
    )
    assert found("研究") == [zh.pk]  # two characters: shorter than any index token
    assert found("气候研究报告") == [zh.pk]
    assert found("海港 研究") == [zh.pk]
    assert found("universität") == [de.pk] and found("UNIVERSITÄT") == [de.pk]
    assert found("研究 Universität") == []


def _plan(query: str) -> str:
    sql, params = search_articles(Article.objects.visible(), query).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: show the index is usable
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_search_reads_the_stored_index():
    for i in range(30):
        make(f"Story number {i} about the harbour")
    make("Turbine maker opens a plant")
    plan = _plan("turbine")
    if connection.vendor == "postgresql":
        assert PG_INDEX in plan and "to_tsvector" not in plan  # the stored column, not computed per row
    else:
        assert "VIRTUAL TABLE INDEX" in plan and FTS_TABLE in plan


def test_a_lost_index_is_made_again_after_migrate():
    """Django rebuilds a SQLite table for some schema changes, dropping its triggers; on
    PostgreSQL an index can be dropped by hand. `migrate` puts them back."""
    article = make("Glacier report published")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP INDEX {PG_INDEX}")
        else:
            for name in SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER {name}")
    Article.objects.filter(pk=article.pk).update(title="Volcano report published")
    if connection.vendor == "postgresql":  # the test's own inserts would hold off ALTER TABLE
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    call_command("migrate", verbosity=0)
    assert found("volcano") == [article.pk] and found("glacier") == []
    if connection.vendor == "postgresql":  # (made in this test's transaction, after its
        # updates: PostgreSQL lets only later transactions use it, so look for it instead)
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [PG_INDEX])
            assert "gin (search_document)" in cursor.fetchone()[0]
    else:
        assert "VIRTUAL TABLE INDEX" in _plan("volcano")
