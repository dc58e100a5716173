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
from tests.conftest import POSTGRES_ONLY

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


def _story(headline: str, *titles_and_hours: tuple[str, int]) -> list[Article]:
    """A story of several reports (titles, hours ago), each from its own publisher."""
    from aggregator.models import Story

    story = Story.objects.create(headline=headline, publisher_count=len(titles_and_hours))
    made = []
    for i, (title, hours) in enumerate(titles_and_hours):
        article = make(title, hours_ago=hours)
        source = Source.objects.create(
            name=f"{headline} {i}",
            slug=f"{headline.lower()}-{i}",
            feed_url=f"http://127.0.0.1:9/{headline}{i}",
        )
        Article.objects.filter(pk=article.pk).update(story=story, source=source)
        made.append(article)
    return made


def test_only_the_best_matches_are_ranked_into_stories_best_first(client, monkeypatch):
    """The page ranks the best SEARCH_DEPTH matches (relevance, then recency) by story;
    the total comes from the index and the page says the rest are not shown."""
    monkeypatch.setattr("aggregator.search.SEARCH_DEPTH", 4)
    # In the headline: the most relevant, whatever their age.
    title_old = make("Turbine maker opens a plant", hours_ago=50)
    story = _story("Kiel", ("Turbine order for Kiel", 40), ("Kiel signs the turbine order", 30))
    # In the text only: less relevant; the newest of them fill what is left of the depth.
    in_text = [
        make(f"Harbour report {i}", text=f"{FILLER} A turbine was mentioned.", hours_ago=i) for i in range(6)
    ]
    make("Unrelated news", hours_ago=0)
    html = client.get("/search/", {"q": "turbine"}).content.decode()
    # 9 matches; the best 4: the three headline matches (two of them one story) and the
    # newest match in a text. Three stories.
    assert "9 reports match “turbine” · the 3 best stories" in html
    shown = titles_on_page(client, "turbine")
    assert len(shown) == 3 and title_old.title in shown[:2] and shown[2] == in_text[0].title
    assert story[0].title in shown[:2] or story[1].title in shown[:2]
    assert "Only the best matches are shown" in html
    for other in in_text[1:]:
        assert other.title not in html


def test_the_ranked_window_keeps_the_order_of_ranking_every_match():
    """Within the depth, the stories come in the order ranking every match gives."""
    from aggregator.listings import ranked_matches, ranked_stories

    make("Turbine maker opens a plant", hours_ago=50)
    _story("Kiel", ("Turbine order for Kiel", 40), ("A turbine for Kiel", 2))
    _story("Oslo", ("Oslo port", 1), ("Oslo turbine deal", 20), ("Oslo again", 3))
    for i in range(5):
        make(f"Harbour report {i}", text=f"{FILLER} A turbine was mentioned.", hours_ago=i * 3)
    found = search_articles(Article.objects.visible(), "turbine")
    every = [row["key"] for row in ranked_stories(found)]
    rows, total = ranked_matches(found, 100)
    assert [row["key"] for row in rows] == every and total == 9
    assert len(every) == 8  # a story of two matches, seven of one
    rows, total = ranked_matches(found, 3)
    assert total == 9 and [row["key"] for row in rows] == every[: len(rows)]


def test_the_total_counts_every_match_beyond_the_ranked_ones(client, monkeypatch):
    from aggregator.listings import ranked_matches

    for i in range(7):
        make(f"Glacier report {i}", hours_ago=i)
    make("Volcano report")
    found = search_articles(Article.objects.visible(), "glacier")
    rows, total = ranked_matches(found, 3)
    assert total == 7 and len(rows) == 3
    assert ranked_matches(search_articles(Article.objects.visible(), "nothing"), 3) == ([], 0)
    monkeypatch.setattr("aggregator.search.SEARCH_DEPTH", 3)
    html = client.get("/search/", {"q": "glacier"}).content.decode()
    assert "7 reports match “glacier” · the 3 best stories" in html
    assert titles_on_page(client, "glacier") == [f"Glacier report {i}" for i in range(3)]  # newest first
    monkeypatch.setattr("aggregator.search.SEARCH_DEPTH", 7)  # every match ranked: counted as stories
    html = client.get("/search/", {"q": "glacier"}).content.decode()
    assert "7 results for “glacier”" in html and "Only the best" not in html


def test_chinese_and_japanese_are_matched_as_exact_substrings():
    """Every character of a run is findable; a phrase must be adjacent in one run."""
    zh = make(
        "东岚大学发布气候研究报告", text="研究人员周二发布了新报告。报告称，海港气候变化加快。", language="zh"
    )
    split = make("研究。究人", text="两个句子：研究；报告", language="zh")  # 研究 and 报告 in separate runs
    ja = make("東京の研究所", text="研究者はデータを公開した。", language="ja")
    assert sorted(found("研究")) == sorted([zh.pk, split.pk, ja.pk])
    assert found("气候研究报告") == [zh.pk]
    assert found("研究报告") == [zh.pk]  # not `split`: its 研究 and 报告 are in two runs
    assert found("究报") == [zh.pk]
    # 研究人: in `zh`; in `split` only across two runs (研究。究人), which is not a match
    assert found("研究人") == [zh.pk] and found("研究人员") == [zh.pk]
    assert sorted(found("究人")) == sorted([zh.pk, split.pk])
    assert sorted(found("岚")) == [zh.pk] and sorted(found("告")) == sorted([zh.pk, split.pk])
    assert found("データ") == [ja.pk] and found("東京 研究所") == [ja.pk]
    assert found("海港 研究 变化") == [zh.pk]
    assert found("研究报告人") == [] and found("报告研究") == []


def test_a_chinese_word_in_the_headline_ranks_first():
    in_text = make("海港新闻", text="研究员周二发布了新报告。", hours_ago=0, language="zh")
    in_title = make("大学的研究员", text="周二发布了新报告。", hours_ago=5, language="zh")
    make("城市新闻", text="周二发布了新报告。", hours_ago=0, language="zh")
    assert found("研究员") == [in_title.pk, in_text.pk]


def test_chinese_search_reads_the_index_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip(f"the character-pair index is tested {POSTGRES_ONLY}")
    for i in range(30):
        make(f"Story number {i} about the harbour")
    make("大学发布气候研究报告", language="zh")
    for query in ["研究", "气候研究报告", "研", "海港 研究", "harbour 研究"]:
        plan = _plan(query)
        assert PG_INDEX in plan, plan
        assert "~~" not in plan and "like" not in plan.lower(), plan  # no substring scan
        assert "newsdesk_cjk_bigrams" not in plan  # the stored column, not computed per row


def test_a_search_of_many_matches_is_counted_up_to_the_limit_and_ranked_the_same(client, monkeypatch):
    """Beyond COUNT_LIMIT matches, PostgreSQL reads the head matches through their own
    index and then the newest matches in texts alone, in wider and wider windows of the
    newest articles: the rows are those of ranking every match, the count stops at the
    limit and the page says there are more."""
    from aggregator.listings import story_key
    from aggregator.search import best_matches

    monkeypatch.setattr("aggregator.search.COUNT_LIMIT", 5)
    monkeypatch.setattr("aggregator.search.WINDOW", 1)  # windows of depth + 1 articles, then 4 times as many
    both_in_head = make("Kiel harbour", excerpt="A turbine order.", hours_ago=40)
    one_in_head = make("Turbine maker opens a plant", text=f"{FILLER} Kiel", hours_ago=50)
    in_texts = [
        make(f"Harbour report {i}", text=f"{FILLER} A turbine for Kiel.", hours_ago=i) for i in range(1, 13)
    ]
    for i in range(10):  # the newest articles match nothing: the first window holds no match
        make(f"Unrelated news {i}")
    for query in ["turbine", "turbine kiel", "kiel"]:
        matches = search_articles(Article.objects.visible(), query)
        every = list(matches.annotate(key=story_key()).values_list("key", flat=True))
        assert len(every) == 14
        for depth in [1, 2, 3, 13, 20]:
            rows, total = best_matches(matches, depth)
            assert [row[0] for row in rows] == every[: depth + 1], (query, depth)
            assert total == (6 if connection.vendor == "postgresql" else 14)
    # The headline above the summary above the text, and then the newest
    assert found("turbine") == [one_in_head.pk, both_in_head.pk] + [a.pk for a in in_texts]
    assert found("turbine kiel")[0] == both_in_head.pk
    monkeypatch.setattr("aggregator.search.SEARCH_DEPTH", 3)
    html = client.get("/search/", {"q": "turbine"}).content.decode()
    assert "More than 5 reports match “turbine” · the 3 best stories" in html
