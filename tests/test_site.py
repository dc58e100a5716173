"""The reader's site: every part of the card, listings, search, sharing, speed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from aggregator.models import Article, AudienceTag, Source
from enrichment.models import Insight, WeeklyRecap
from enrichment.service import enrich_article

pytestmark = pytest.mark.django_db


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_every_demo_article_page_shows_the_parts_its_text_supports(client, demo):
    assert demo.count() >= 20
    for article in demo.select_related("insight"):
        insight = article.insight
        html = client.get(article.get_absolute_url()).content.decode()
        assert "30-Second TL;DR" in html and "What changed" in html
        if insight.hook:
            assert "💡" in html and escape(insight.hook) in html
        assert "Automatic summary: sentences chosen from the article" in html
        assert len(insight.takeaways) >= 1, article.title
        assert html.count('class="passage') >= len(insight.takeaways)
        assert "Original source:" in html and f'href="{article.url}"' in html
        assert "Weekly Recap" in html
        if insight.implications:
            assert "Future Implications" in html and "not facts" in html
        if insight.timeline:
            assert "⏳ Timeline" in html or "Timeline</h3>" in html


def test_a_part_with_nothing_in_it_is_left_out(client):
    source = Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/f")
    article = Article.objects.create(
        source=source,
        guid="1",
        url="http://127.0.0.1:9/1",
        title="Short",
        text="Too short.",
        state=Article.State.EXTRACTED,
    )
    enrich_article(article.pk)
    html = client.get(article.get_absolute_url()).content.decode()
    for heading in ("Key Takeaways", "Future Implications", "Timeline", "Who should care", "Related Updates"):
        assert heading not in html
    assert "None" not in html


@pytest.mark.parametrize(
    "url", ["/", "/category/ai/", "/for/developers/", "/source/demo-rheinblick/", "/search/?q=said", "WEEK"]
)
def test_listing_pages_make_the_same_number_of_queries_for_5_or_20_cards(client, demo, url):
    if url == "WEEK":
        year, week, _ = timezone.localtime(Article.objects.latest("sort_at").sort_at).isocalendar()
        url = f"/week/{year}/{week}/"
    AudienceTag.objects.get(slug="developers").articles.add(*demo)
    full = queries_for(client, url)
    shown = re.findall(r'<h2 class="card-title"><a href="/a/(\d+)/', client.get(url).content.decode())
    assert len(shown) >= 2
    Article.objects.exclude(pk__in=shown[:5]).update(is_hidden=True)
    assert queries_for(client, url) == full
    assert (
        full <= 9
    )  # generation, object, featured, window, page of stories, leads, audiences, publishers, nav


def test_the_article_page_makes_a_bounded_number_of_queries(client, demo, django_assert_max_num_queries):
    article = max(demo.select_related("insight"), key=lambda a: len(a.insight.related_ids))
    assert article.insight.related_ids
    with django_assert_max_num_queries(8):
        client.get(article.get_absolute_url())


def test_audience_source_and_category_pages_list_their_cards(client, demo):
    article = demo.filter(audiences__isnull=False).first()
    tag = article.audiences.first()
    html = client.get(tag.get_absolute_url()).content.decode()
    assert escape(f"For {tag.name}") in html and escape(article.title) in html
    assert client.get("/for/nobody/").status_code == 404


def test_search_finds_words_in_titles_and_text(client, demo):
    html = client.get("/search/?q=Helios+Aurora-3").content.decode()
    assert html.count('<article class="card') >= 1
    assert "Nothing matches" in client.get("/search/?q=zzzqqqxxx").content.decode()
    assert "Type a few words" in client.get("/search/").content.decode()


def test_the_week_page_lists_that_weeks_articles_and_its_published_recap(client, demo):
    year, week, _ = timezone.localtime(Article.objects.latest("sort_at").sort_at).isocalendar()
    html = client.get(f"/week/{year}/{week}/").content.decode()
    assert '<article class="card' in html
    WeeklyRecap.objects.create(
        iso_year=year,
        iso_week=week,
        title="The week in brief",
        status="published",
        published_at=timezone.now(),
    )
    assert "The week in brief" in client.get(f"/week/{year}/{week}/").content.decode()
    article_html = client.get(demo.first().get_absolute_url()).content.decode()
    assert f'href="/week/{year}/{week}/">The week in brief' in article_html
    assert client.get("/week/2026/60/").status_code == 404


def test_articles_are_tagged_for_sharing_and_search_engines(client, demo, settings):
    article = demo.first()
    html = client.get(article.get_absolute_url()).content.decode()
    canonical = f"{settings.SITE_URL}{article.get_absolute_url()}"
    assert f'<link rel="canonical" href="{canonical}">' in html
    for tag in (
        'property="og:title"',
        'property="og:description"',
        'property="og:url"',
        'name="twitter:card"',
        'name="description"',
    ):
        assert tag in html
    assert html.count("<h1") == 1
    data = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1))
    assert data["@type"] == "NewsArticle" and data["isBasedOn"] == article.url
    assert data["headline"] == article.title[:110]


def test_json_ld_cannot_be_closed_by_a_title():
    from aggregator.templatetags.cards import json_ld

    out = json_ld({"headline": "</script><script>alert(1)</script>"})
    assert out.count("</script>") == 1 and "\\u003C/script\\u003E" in out


def test_sitemap_and_robots(client, demo):
    xml = client.get("/sitemap.xml").content.decode()
    assert demo.first().get_absolute_url() in xml and "<urlset" in xml
    robots = client.get("/robots.txt").content.decode()
    assert "Sitemap:" in robots and "Disallow: /admin/" in robots


def test_pages_answer_conditional_requests(client, demo):
    url = demo.first().get_absolute_url()
    etag = client.get(url).headers["ETag"]
    assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_hostile_and_odd_articles_render_safely(client):
    source = Source.objects.create(name="<b>Bold</b> Source", slug="odd", feed_url="http://127.0.0.1:9/f")
    cases = {
        "html-title": dict(
            title='<script>alert("x")</script><img src=x onerror=alert(1)>', text="Body text here."
        ),
        "empty": dict(title="Nothing", text=""),
        "huge": dict(
            title="Huge", text=("A long sentence about the budget and the council vote. " * 20 + "\n\n") * 180
        ),
        "rtl": dict(
            title="خبر عاجل عن الميزانية",
            text="وافق المجلس على الميزانية الجديدة بعد نقاش طويل. " * 5,
            language="ar",
        ),
        "chinese": dict(
            title="模型发布", text="赫利俄斯实验室发布了新模型。预计明年推出更小的版本。" * 5, language="zh"
        ),
    }
    for n, (key, fields) in enumerate(cases.items()):
        article = Article.objects.create(
            source=source,
            guid=key,
            url=f"http://127.0.0.1:9/{n}",
            state=Article.State.EXTRACTED,
            published_at=None,
            **fields,
        )
        enrich_article(article.pk)
        html = client.get(article.get_absolute_url()).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>Bold</b>" not in html
        assert "Undated" in html
    assert len(Article.objects.get(guid="huge").text) > 190_000
    front = client.get("/").content.decode()
    assert "&lt;script&gt;alert" in front and 'lang="ar"' in front


def test_machine_output_is_escaped_where_it_is_shown(client, demo):
    article = demo.first()
    Insight.objects.filter(article=article).update(
        hook='<img src=x onerror="alert(1)">',
        takeaways=[{"text": "<script>bad()</script>", "passage": "<a href='javascript:x'>p</a>"}],
    )
    html = client.get(article.get_absolute_url()).content.decode() + client.get("/").content.decode()
    assert "<img src=x" not in html and "<script>bad" not in html and "href='javascript" not in html


def test_freshness_badge_classes():
    from aggregator.freshness import age_class, collected_after

    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # a Thursday
    assert age_class(now - timedelta(hours=1), now)[1] == "Fresh"
    assert age_class(now - timedelta(hours=10), now)[1] == "Today"
    assert age_class(now - timedelta(days=3), now)[1] == "This week"
    assert age_class(now - timedelta(days=30), now)[1] == "Older"
    assert age_class(None, now)[1] == "Undated"
    assert collected_after(now - timedelta(minutes=26), now) == "26m"
    assert collected_after(now - timedelta(hours=5), now) == "5h"
    assert collected_after(now - timedelta(days=3), now) == "3d"
