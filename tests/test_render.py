"""Pages built for speed show the same: card links built without a reverse() each, ISO
dates without the date filter, listing cards read as plain values (escaped as strictly
as ever: feed text and model output are untrusted), the story card kept per content
generation (a change shows at once). bench/render.py compares the HTML of every demo page
with a git revision's."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.template import engines
from django.test import Client
from django.urls import NoReverseMatch, reverse, set_script_prefix
from django.utils import timezone

from aggregator.listings import link
from aggregator.models import Article, AudienceTag, Category, Source, Story
from enrichment.models import Insight, StoryInsight
from enrichment.stories import refresh_story

EVIL = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("article", 7),
        ("story", 1234567),
        ("category", "ai"),
        ("audience", "developers"),
        ("source", "the-harbor-post"),
        ("source", "a_b-9"),
        ("article", "12"),  # not an int: through reverse()
    ],
)
def test_a_card_link_is_what_reverse_gives(name, value):
    assert link(name, value) == reverse(name, args=[value])


def test_a_card_link_follows_the_script_prefix():
    set_script_prefix("/news/")
    try:
        assert link("article", 5) == reverse("article", args=[5]) == "/news/a/5/"
        assert link("source", "pub") == reverse("source", args=["pub"]) == "/news/source/pub/"
    finally:
        set_script_prefix("/")
    assert link("article", 5) == "/a/5/"


@pytest.mark.parametrize(("name", "value"), [("category", "ünï code"), ("article", "abc"), ("source", "")])
def test_a_value_reverse_refuses_is_refused_the_same_way(name, value):
    with pytest.raises(NoReverseMatch):
        reverse(name, args=[value])
    with pytest.raises(NoReverseMatch):
        link(name, value)


def test_iso_writes_what_the_date_filter_s_c_format_wrote():
    before = engines["django"].from_string("{{ d|date:'c' }}")
    after = engines["django"].from_string("{% load cards %}{{ d|iso }}")
    values = [
        timezone.now(),
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC),  # the night clocks change in Berlin
        dt.datetime(2026, 11, 29, 5, 30, 12, 345678),  # naive
        dt.date(2026, 1, 2),
        None,
        "",
    ]
    for zone in ("UTC", "Europe/Berlin", "Asia/Tokyo"):
        with timezone.override(ZoneInfo(zone)):
            for value in values:
                assert after.render({"d": value}) == before.render({"d": value}), (zone, value)


@pytest.fixture
def hostile(db):
    """A story of two publishers and a lone report, every text a card shows written to
    break out of its element."""
    now = timezone.now()
    category = Category.objects.create(name=f"Cat {EVIL}", slug="cat", icon="<i>")
    tag = AudienceTag.objects.create(name=f"Tag {EVIL}", slug="tag")
    story = Story.objects.create(headline="h")
    made = []
    for i in range(3):
        source = Source.objects.create(
            name=f"Pub{i} {EVIL}", slug=f"pub{i}", feed_url=f"http://127.0.0.1:9/{i}"
        )
        article = Article.objects.create(
            source=source,
            guid=str(i),
            url=f"https://pub.example/{i}",
            title=f"Title{i} {EVIL}",
            excerpt=f"Excerpt{i} {EVIL}",
            language="en",
            category=category,
            published_at=now - timedelta(minutes=i),
            collected_at=now,
            sort_at=now - timedelta(minutes=i),
            story=story if i < 2 else None,
            is_featured=i == 2,
        )
        article.audiences.add(tag)
        if i != 1:
            Insight.objects.create(
                article=article,
                backend="claude",
                model_name=f"model {EVIL}",
                language="en",
                title=f"Machine title{i} {EVIL}",
                hook=f"Hook{i} {EVIL}",
                generated_at=now,
                reviewed_at=now,
            )
        made.append(article)
    refresh_story(story)
    return made


@pytest.mark.parametrize("url", ["/", "/category/cat/", "/for/tag/", "/source/pub0/", "/search/?q=Title0"])
def test_every_text_on_a_card_is_escaped(client, hostile, url):
    html = client.get(url).content.decode()
    assert '<article class="card' in html
    assert "<script>" not in html and "<i>" not in html
    for part in ("Title", "Pub", "Cat", "Tag"):
        assert f"{part}" in html and f" {ESCAPED}" in html, part
    if url == "/":
        for part in ("Machine title2", "Hook2", "Title2", "Excerpt1", "Pub0", "Pub1", "Cat", "Tag", "model"):
            assert f"{part} {ESCAPED}" in html, part


def test_a_card_shows_every_part_it_has(client, hostile):
    html = client.get("/").content.decode()
    lone, lead = hostile[2], hostile[1]  # the earliest report leads the story
    assert '<article class="card card-featured">' in html  # the featured lone report
    assert f'href="/a/{lead.pk}/" lang="en"' in html and f'href="/a/{lone.pk}/"' in html
    assert f'href="/story/{lead.story_id}/"' in html and "2 publishers · 1 language" in html
    assert f"Also Pub0 {ESCAPED}" in html and "Updated <time datetime=" in html
    assert 'href="/category/cat/"' in html and 'href="/source/pub2/"' in html and 'href="/for/tag/"' in html
    assert "Reviewed by an editor" in html and "Original headline:" in html
    assert f"AI-generated (model {ESCAPED})" in html
    source_page = client.get("/source/pub1/").content.decode()  # no card of its own: its excerpt
    assert f"Excerpt1 {ESCAPED}" in source_page and "Covered by 2 publishers →" in source_page


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_story_card_shows_a_change_at_once(settings, hostile):
    """Kept per content generation while the page cache is on: an editor's hide and a
    Claude card written show at the next render (the page cache serves new content up to
    PAGE_FRESH_SECONDS late: here 0)."""
    settings.PAGE_CACHE_SECONDS, settings.PAGE_FRESH_SECONDS = 60, 0
    cache.clear()
    story_url = f"/story/{hostile[0].story_id}/"
    reader = Client()
    first = reader.get(story_url).content.decode()
    assert "Covered by 2 publishers" in first and "Pub1" in first
    assert reader.get(story_url + "?again").content.decode() == first
    StoryInsight.objects.create(
        story_id=hostile[0].story_id,
        backend="claude",
        model_name="claude-test",
        claims=[{"text": "Claude says so.", "passage": "Claude says so.", "article_id": hostile[0].pk}],
        article_ids=[hostile[0].pk, hostile[1].pk],
        generated_at=timezone.now(),
    )
    html = reader.get(story_url).content.decode()
    assert "AI-generated by claude-test from 2 reports" in html and "Claude says so." in html
    Article.objects.filter(pk=hostile[1].pk).update(is_hidden=True)  # an editor's hide
    html = reader.get(story_url).content.decode()
    assert "Covered by 1 publisher:" in html and "Pub1" not in html
    cache.clear()
