from __future__ import annotations

import json

import feedparser
import pytest
from django.utils import timezone

from aggregator.models import Article, AudienceTag
from enrichment.models import Insight, WeeklyRecap

pytestmark = pytest.mark.django_db

FEED_URLS = [
    "/feeds/rss/",
    "/feeds/atom/",
    "/feeds/category/ai/rss/",
    "/feeds/category/ai/atom/",
    "/feeds/audience/developers/rss/",
    "/feeds/source/demo-rheinblick/rss/",
    "/feeds/source/demo-qianfeng/atom/",
    "/feeds/recap/rss/",
    "/feeds/recap/atom/",
]


@pytest.fixture
def site(demo):
    AudienceTag.objects.get(slug="developers").articles.add(*demo[:5])
    WeeklyRecap.objects.create(
        iso_year=2026,
        iso_week=48,
        title="Week 48 in brief",
        intro="The week.",
        status="published",
        published_at=timezone.now(),
    )
    return demo


@pytest.mark.parametrize("url", FEED_URLS)
def test_every_feed_parses_without_error(client, site, url):
    response = client.get(url)
    assert response.status_code == 200
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.entries


def test_each_item_carries_the_card_and_the_publisher(client, site):
    parsed = feedparser.parse(client.get("/feeds/rss/").content)
    article = Article.objects.select_related("insight", "source").get(
        pk=int(parsed.entries[0].link.rstrip("/").split("/")[-1])
    )
    entry = parsed.entries[0]
    assert entry.title == article.title
    assert entry.id == f"http://127.0.0.1:8000{article.get_absolute_url()}"
    assert entry.link.endswith(article.get_absolute_url())
    assert article.insight.hook[:40] in entry.summary
    assert "What changed" in entry.summary and "Original source" in entry.summary
    assert article.url in entry.summary
    assert entry.source.title == article.source.name
    assert entry.published_parsed


def test_atom_items_link_the_original_article(client, site):
    parsed = feedparser.parse(client.get("/feeds/atom/").content)
    via = [link.href for link in parsed.entries[0].links if link.rel == "via"]
    assert via and via[0].startswith("http://127.0.0.1")


def test_json_feed_1_1(client, site):
    data = json.loads(client.get("/feeds/json/").content)
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    item = data["items"][0]
    assert {"id", "url", "title", "content_html", "date_published", "authors", "external_url"} <= set(item)
    assert client.get("/feeds/json/").headers["Content-Type"].startswith("application/feed+json")


def test_control_characters_never_break_a_feed(client, site):
    article = site.first()
    Article.objects.filter(pk=article.pk).update(title="Bad\x08title\x1b with \x0c controls\ufffe")
    Insight.objects.filter(article=article).update(hook="Hook\x07 with a bell")
    for url in ("/feeds/rss/", "/feeds/atom/"):
        parsed = feedparser.parse(client.get(url).content)
        assert not parsed.bozo, parsed.get("bozo_exception")
    json.loads(client.get("/feeds/json/").content)


def test_a_feed_keeps_its_etag_until_its_content_changes(client, site):
    first = client.get("/feeds/rss/")
    etag = first.headers["ETag"]
    assert client.get("/feeds/rss/").headers["ETag"] == etag
    assert client.get("/feeds/rss/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    Article.objects.filter(pk=site.order_by("-sort_at").first().pk).update(title="A corrected headline")
    assert client.get("/feeds/rss/").headers["ETag"] != etag


def test_every_page_advertises_its_feeds(client, site):
    html = client.get("/").content.decode()
    assert 'type="application/rss+xml"' in html and 'type="application/atom+xml"' in html
    assert 'type="application/feed+json"' in html
    html = client.get("/category/ai/").content.decode()
    assert 'href="/feeds/category/ai/rss/"' in html


def test_unknown_feed_objects_are_404(client, db):
    assert client.get("/feeds/category/nope/rss/").status_code == 404
