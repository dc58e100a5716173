"""Listings show stories: one card per story, led by its best report, ranked by coverage
and recency; the story page shows what happened, where reports differ, and every report."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from aggregator.listings import coverage_boost_hours
from aggregator.models import Article, AudienceTag, Category, Source, Story
from enrichment.stories import refresh_story
from enrichment.story_card import Report, disagreements, facts, what_happened

pytestmark = pytest.mark.django_db

LONG = " ".join(["The committee met and reviewed the plans for the harbour in detail."] * 12)


def make_story(n_publishers: int, *, at, title: str = "Story", language: str = "en", category=None) -> Story:
    story = Story.objects.create(headline=title)
    for i in range(n_publishers):
        source, _ = Source.objects.get_or_create(
            slug=f"pub-{i}", defaults={"name": f"Publisher {i}", "feed_url": f"http://127.0.0.1:9/{i}"}
        )
        Article.objects.create(
            source=source,
            guid=f"{title}-{i}",
            url=f"https://pub{i}.example/{title}",
            title=f"{title} by publisher {i}",
            text=LONG,
            language=language,
            category=category,
            published_at=at - timedelta(minutes=i),
            collected_at=at,
            sort_at=at - timedelta(minutes=i),
            story=story,
        )
    refresh_story(story)
    story.refresh_from_db()
    return story


def cards(html: str) -> list[str]:
    return re.findall(r'<h2 class="card-title"><a href="/a/(\d+)/', html)


def test_it_shows_one_card_per_story_with_its_publishers_languages_and_update_time(client):
    now = timezone.now()
    story = make_story(3, at=now - timedelta(hours=1), title="Harbour")
    Article.objects.filter(story=story, source__slug="pub-2").update(language="de")
    html = client.get("/").content.decode()
    assert len(cards(html)) == 1
    assert "3 publishers · 2 languages" in html
    assert "Also Publisher 2, Publisher 0" in html  # led by Publisher 1: earliest English report
    assert f'href="{story.get_absolute_url()}"' in html and "Updated" in html


def test_it_leads_with_the_earliest_full_report_in_the_sites_language_or_the_editors_pick(client):
    now = timezone.now()
    story = make_story(4, at=now, title="Lead")
    by_source = {a.source.slug: a for a in Article.objects.filter(story=story).select_related("source")}
    # pub-3 is the earliest: make it German; pub-2 next: make it a brief.
    Article.objects.filter(pk=by_source["pub-3"].pk).update(language="de")
    Article.objects.filter(pk=by_source["pub-2"].pk).update(text="A brief.")
    assert cards(client.get("/").content.decode()) == [str(by_source["pub-1"].pk)]
    Article.objects.filter(pk=by_source["pub-3"].pk).update(is_featured=True)
    html = client.get("/").content.decode()
    assert cards(html) == [str(by_source["pub-3"].pk)] and "card-featured" in html


def test_coverage_outranks_a_single_report_of_the_same_hour_but_not_a_much_newer_one(client):
    now = timezone.now()
    wide = make_story(5, at=now - timedelta(hours=2), title="Wide")
    single = make_story(1, at=now - timedelta(hours=1), title="Single")
    order = cards(client.get("/").content.decode())
    assert order.index(str(wide.lead_article_id)) < order.index(str(single.lead_article_id))
    Article.objects.filter(story=single).update(sort_at=now + timedelta(hours=coverage_boost_hours(5)))
    order = cards(client.get("/").content.decode())
    assert order.index(str(single.lead_article_id)) < order.index(str(wide.lead_article_id))


def test_an_article_not_yet_in_a_story_is_a_story_of_one(client):
    source = Source.objects.create(name="Lone", slug="lone", feed_url="http://127.0.0.1:9/lone")
    article = Article.objects.create(source=source, guid="1", url="https://lone.example/1", title="Alone")
    make_story(2, at=timezone.now() - timedelta(days=1), title="Pair")
    html = client.get("/").content.decode()
    assert str(article.pk) in cards(html) and len(cards(html)) == 2


def test_no_story_appears_twice_across_listing_pages_and_hidden_reports_never_lead(client):
    now = timezone.now()
    stories = [make_story(3, at=now - timedelta(hours=i), title=f"S{i}") for i in range(25)]
    shown = cards(client.get("/").content.decode()) + cards(client.get("/?page=2").content.decode())
    story_of = dict(Article.objects.values_list("pk", "story_id"))
    assert len(shown) == 25 and len({story_of[int(pk)] for pk in shown}) == 25
    lead = Article.objects.get(pk=shown[0])
    Article.objects.filter(pk=lead.pk).update(is_hidden=True)
    again = cards(client.get("/").content.decode())
    assert str(lead.pk) not in again and story_of[int(again[0])] == stories[0].pk


def test_filtered_listings_and_search_show_stories_but_source_pages_list_articles(client):
    cat = Category.objects.get(slug="ai")
    story = make_story(3, at=timezone.now(), title="Quasar", category=cat)
    tag = AudienceTag.objects.get(slug="developers")
    tag.articles.add(*Article.objects.filter(story=story))
    for url in ("/category/ai/", "/for/developers/", "/search/?q=Quasar"):
        html = client.get(url).content.decode()
        assert len(cards(html)) == 1 and "3 publishers" in html, url
    # A publisher with two reports in one story: both on its source page.
    first = Article.objects.filter(story=story).first()
    Article.objects.create(
        source=first.source,
        guid="follow-up",
        url="https://x.example/f",
        title="Quasar follow-up",
        story=story,
    )
    assert len(cards(client.get(f"/source/{first.source.slug}/").content.decode())) == 2
    assert len(cards(client.get("/").content.decode())) == 1


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", ["/", "/category/ai/", "/for/developers/", "/search/?q=publisher", "WEEK"])
def test_listing_queries_are_the_same_for_5_and_20_stories(client, url):
    cat = Category.objects.get(slug="ai")
    tag = AudienceTag.objects.get(slug="developers")
    now = timezone.now()
    if url == "WEEK":
        year, week, _ = timezone.localtime(now).isocalendar()
        url = f"/week/{year}/{week}/"

    def build(n: int, offset: int) -> None:
        for i in range(n):
            story = make_story(3, at=now - timedelta(minutes=10 * i), title=f"T{offset + i}", category=cat)
            tag.articles.add(*Article.objects.filter(story=story))

    build(5, 0)
    five = queries_for(client, url)
    assert len(cards(client.get(url).content.decode())) == 5
    build(15, 5)
    assert len(cards(client.get(url).content.decode())) == 20
    assert (
        queries_for(client, url) == five <= 9
    )  # generation, featured, window, stories, leads, audiences, publishers, nav, object


def test_the_story_page_makes_the_same_queries_for_short_and_long_stories(client):
    short = make_story(3, at=timezone.now(), title="Short")
    long = make_story(40, at=timezone.now(), title="Long")
    assert queries_for(client, short.get_absolute_url()) == queries_for(client, long.get_absolute_url())
    html = client.get(long.get_absolute_url()).content.decode()
    assert "page 1 of 2" in html and html.count('<li><span class="meta">') == 30
    page2 = client.get(long.get_absolute_url() + "?page=2").content.decode()
    assert page2.count('<li><span class="meta">') == 10 and "What happened" not in page2


def test_feeds_stay_per_article_and_link_the_story(client):
    story = make_story(2, at=timezone.now(), title="Fed")
    data = json.loads(client.get("/feeds/json/").content)
    assert len(data["items"]) == 2
    assert {i["_newsdesk"]["story_url"] for i in data["items"]} == {
        f"http://testserver{story.get_absolute_url()}"
    } or all(i["_newsdesk"]["story_url"].endswith(story.get_absolute_url()) for i in data["items"])
    rss = client.get("/feeds/rss/").content.decode()
    assert rss.count(escape(story.get_absolute_url())) >= 2
    assert 'rel="related"' in client.get("/feeds/atom/").content.decode()


# The story card's parts, as pure functions.


def test_facts_are_dates_and_counted_figures():
    found = facts("In April 2026 about six hours of outage cost 4,000 shops 19 billion dollars in 2025.")
    assert [(f.kind, f.value) for f in found] == [
        ("date", "2026-04"),
        ("number", "6 hour"),
        ("number", "4000 shop"),
        ("number", "19 billion dollar"),
    ]


def test_disagreements_need_the_same_fact_and_a_value_the_other_never_mentions():
    a = Report.from_text(
        1, "Alpha", "en", "It was the second incident this year; in April 2026 a power failure hit a hall."
    )
    b = Report.from_text(
        2, "Beta", "en", "It is the second incident this year; in March 2026 a cooling failure hit a hall."
    )
    c = Report.from_text(
        3, "Gamma", "en", "The second incident this year came in March 2026 when a failure hit a hall."
    )
    found = disagreements([a, b, c])
    assert len(found) == 1 and found[0].kind == "date"
    assert {(v.label, tuple(v.publishers)) for v in found[0].versions} == {
        ("Apr 2026", ("Alpha",)),
        ("Mar 2026", ("Beta", "Gamma")),
    }
    # Two different events, each mentioned by both: no disagreement.
    d = Report.from_text(
        4, "Delta", "en", "Earlier, in April 2026, a power failure hit a hall; in March 2026 another."
    )
    assert disagreements([a, d]) == []
    # Another language, another publisher's own figures, or an unrelated sentence: none.
    e = Report.from_text(
        5, "Epsilon", "de", "Im März 2026 fiel ein Saal aus, der zweite Vorfall in diesem Jahr."
    )
    f = Report.from_text(
        6, "Alpha", "en", "It was the second incident this year; in May 2026 a power failure hit a hall."
    )
    g = Report.from_text(7, "Zeta", "en", "Shares rose in March 2026 after strong results.")
    assert disagreements([a, e]) == disagreements([a, f]) == disagreements([a, g]) == []


def test_figures_disagree_only_when_they_count_the_same_thing():
    a = Report.from_text(
        1, "Alpha", "en", "Okafor said the total cost of the plant, about 19 billion dollars, was unchanged."
    )
    b = Report.from_text(
        2, "Beta", "en", "Okafor said the project will cost about 18 billion dollars in total, unchanged."
    )
    c = Report.from_text(
        3,
        "Gamma",
        "en",
        "Okafor said the total budget is unchanged, but the company now expects capital spending of 6.5 billion dollars next year.",
    )
    found = disagreements([a, b, c])
    assert len(found) == 1 and [v.label for v in found[0].versions] == [
        "19 billion dollars",
        "18 billion dollars",
    ]


def test_what_happened_prefers_what_several_publishers_say():
    a = Report.from_text(
        1, "Alpha", "en", "Lions escaped from the city zoo on Monday morning. The keeper was on holiday."
    )
    b = Report.from_text(
        2, "Beta", "en", "Three lions escaped from the city zoo early on Monday. Nobody was hurt."
    )
    claims = what_happened([a, b], limit=1)
    assert claims[0].publisher == "Alpha" and claims[0].also == ["Beta"]
    assert "lions escaped" in claims[0].text.lower()


def test_the_demo_story_page_shows_the_earlier_incident_dated_differently_by_two_publishers(client, demo):
    story = Story.objects.get(articles__title__startswith="A bad configuration push took down Stratus")
    html = client.get(story.get_absolute_url()).content.decode()
    assert "Where reports differ" in html and "Reports give different dates" in html
    versions = re.findall(
        r'<span class="value">([^<]+)</span><span class="who">([^<]+)</span>',
        html.split("Where reports differ")[1],
    )
    assert ("Apr 2026", "The Harbor Post") in versions and ("Mar 2026", "Northwind Tech Review") in versions
    assert "<mark>April 2026</mark>" in html and "<mark>March 2026</mark>" in html
    assert "What happened" in html and "Covered by 5 publishers" in html and "Timeline" in html
    for article in Article.objects.filter(story=story):
        assert article.get_absolute_url() in html


def test_the_demo_front_pages_show_each_story_once(client, demo):
    shown = []
    for page in (1, 2, 3):
        shown += cards(client.get(f"/?page={page}").content.decode())
    story_of = dict(Article.objects.values_list("pk", "story_id"))
    stories = [story_of[int(pk)] for pk in shown]
    assert len(stories) == len(set(stories)) == Story.objects.count()
    stratus = Story.objects.get(articles__title__startswith="A bad configuration push took down Stratus")
    assert stories.count(stratus.pk) == 1
    pages = "".join(client.get(f"/?page={p}").content.decode() for p in (1, 2, 3))
    assert pages.count(f'href="{stratus.get_absolute_url()}"') == 1
    assert "5 publishers · 3 languages" in pages


def test_the_ranking_window_keeps_every_story_that_can_reach_the_page(client):
    """Only recent articles are ranked (aggregator.listings.window_start), yet a widely
    covered older story still leads newer single reports, an old featured story still
    comes first, and later pages find the older stories."""
    now = timezone.now()
    singles = [make_story(1, at=now - timedelta(minutes=i), title=f"N{i}") for i in range(45)]
    wide = make_story(5, at=now - timedelta(hours=10), title="Wide")
    old = make_story(1, at=now - timedelta(days=100), title="Old")
    first = cards(client.get("/").content.decode())
    assert first[0] == str(wide.lead_article_id) and len(first) == 20
    Article.objects.filter(story=old).update(is_featured=True)
    first = cards(client.get("/").content.decode())
    assert first[:2] == [str(old.lead_article_id), str(wide.lead_article_id)]
    Article.objects.filter(story=old).update(is_featured=False)
    pages = [cards(client.get(f"/?page={n}").content.decode()) for n in (1, 2, 3)]
    shown = [pk for page in pages for pk in page]
    assert len(shown) == len(set(shown)) == 47 and shown[-1] == str(old.lead_article_id)
    assert shown[1:46] == [str(s.lead_article_id) for s in singles]
    assert "Page 2<" in client.get("/?page=2").content.decode()
    assert client.get("/?page=4").status_code == 404
    assert client.get("/?page=x").status_code == 200
