"""What a reader sees of a card: machine text labelled on every surface, the publisher's
text only as an excerpt, ages by one rule, and an extractive card that never repeats
itself nor fills a part with a stock line."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from aggregator.excerpts import EXCERPT_WORDS, clip_words, publisher_excerpt, words
from aggregator.freshness import age_class, relative, week_of
from enrichment import text as tx
from enrichment.backends import SourceText
from enrichment.backends.extractive import ExtractiveEnricher, keyword_groups, matched_topics
from enrichment.models import Insight

STOCK = [
    "Check whether this changes the tools",
    "Weigh what this means for your strategy",
    "Review your exposure to the companies",
    "Read the publisher's full article before acting",
    "Follow the rule-making",
]


def paragraphs_of(article) -> list[str]:
    """Paragraphs of two sentences or more (a one-sentence paragraph may be quoted)."""
    return [
        p.strip()
        for p in article.body_text.split("\n")
        if len([s for s in tx.sentences(p) if len(s) > 9]) >= 2
    ]


@pytest.mark.django_db
def test_every_demo_card_has_distinct_parts_and_no_stock_line(demo):
    for insight in Insight.objects.select_related("article"):
        html_parts = [insight.hook, insight.what_changed, insight.why_it_matters, insight.what_next]
        assert not any(s in part for s in STOCK for part in html_parts), insight.article.title
        if insight.hook:
            assert not insight.what_changed.startswith(insight.hook[:30])
            assert insight.hook not in (insight.why_it_matters, insight.what_changed)
        texts = [t["passage"] for t in insight.takeaways] + [i["passage"] for i in insight.implications]
        texts += [t["passage"] for t in insight.timeline if t.get("passage")]
        texts += [insight.what_changed, insight.why_it_matters, insight.hook]
        texts = [t for t in texts if t]
        assert len(texts) == len(set(texts)), f"a sentence used twice: {insight.article.title}"
        dates = [(e["date"], e["text"]) for e in insight.timeline]
        assert len(dates) == len(set(dates))
        for takeaway in insight.takeaways:
            assert takeaway["text"] == takeaway["passage"] or takeaway["text"][:-1] in takeaway["passage"]


@pytest.mark.django_db
def test_categories_and_audiences_come_from_the_text_in_any_language(demo):
    insights = list(Insight.objects.select_related("article__source", "article__category"))
    by_source: dict[str, set[str]] = {}
    for insight in insights:
        by_source.setdefault(insight.article.source.slug, set()).add(insight.article.category.slug)
        for reason in insight.audience_reasons.values():
            assert reason.isascii(), reason  # the site's language, not the article's words
    # Every source, German and Chinese included, has articles in more than one category.
    assert all(len(categories) > 1 for categories in by_source.values()), by_source
    assert any(i.audience_reasons for i in insights if i.article.language == "zh")
    assert any(i.audience_reasons for i in insights if i.article.language == "de")


def test_keyword_groups_match_in_any_language_and_are_named_in_the_first():
    spec = "research|forschung|研究, university|universität|大学"
    assert keyword_groups(spec) == [["research", "forschung", "研究"], ["university", "universität", "大学"]]
    assert matched_topics("die forschung an der universität", spec) == ["research", "university"]
    assert matched_topics("东岚大学的研究", spec) == ["research", "university"]


def test_a_section_the_article_does_not_support_is_left_out():
    text = (
        "The city council of Port Calder approved a new budget of 40 million dollars on Monday.\n\n"
        "The vote was close, with eleven members in favour and nine against the plan.\n\n"
        "Residents had asked for more money for parks and libraries in the northern districts."
    )
    draft = ExtractiveEnricher().enrich(
        SourceText(
            article_id=1,
            title="Budget approved",
            text=text,
            language="en",
            source_name="S",
            published_at=None,
        )
    )
    assert draft.what_next == "" and draft.implications == [] and draft.timeline == []
    assert draft.what_changed.startswith("The city council")
    assert draft.hook and not draft.what_changed.startswith(draft.hook[:30])


def test_relative_times_round_down_like_the_script():
    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    assert relative(now - timedelta(days=3, hours=23), now) == "3 days ago"
    assert relative(now - timedelta(hours=1, minutes=59), now) == "1 hour ago"
    assert relative(now - timedelta(seconds=30), now) == "just now"
    assert relative(now - timedelta(days=13), now) == "1 week ago"
    script = (Path(__file__).resolve().parent.parent / "static" / "site.js").read_text(encoding="utf-8")
    assert "Math.floor(a / units[i][1])" in script and "Math.round" not in script


def test_today_is_the_calendar_day_in_the_site_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    late_yesterday = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # 23:30 in Berlin: yesterday there
    assert age_class(late_yesterday, now, tz=berlin) == ("week", "This week")
    assert age_class(late_yesterday, now, tz=ZoneInfo("Asia/Tokyo")) == ("today", "Today")  # both the 26th
    assert age_class(now - timedelta(hours=30), now, tz=berlin)[0] == "week"
    monday = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert age_class(monday - timedelta(hours=2), now, tz=UTC) == ("older", "Older")  # last week's Sunday
    assert week_of(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), berlin) == (2026, 48)
    assert week_of(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), UTC) == (2026, 47)


def test_excerpts_are_short():
    long = " ".join(f"word{i}" for i in range(200))
    assert words(clip_words(long)) <= EXCERPT_WORDS
    assert clip_words("短" * 400).endswith("…") and words(clip_words("短" * 400)) <= EXCERPT_WORDS


@pytest.mark.django_db
def test_the_article_page_shows_an_excerpt_and_sends_readers_to_the_publisher(client, demo):
    for article in demo.select_related("insight", "source")[:20]:
        html = unescape(client.get(article.get_absolute_url()).content.decode())
        excerpt = publisher_excerpt(article)
        for paragraph in paragraphs_of(article):
            assert paragraph in excerpt or paragraph not in html, (article.title, paragraph)
        assert words(excerpt) <= 2 * EXCERPT_WORDS and excerpt in html
        assert "Read the full article at" in html and f'href="{article.url}"' in html


@pytest.mark.django_db
def test_machine_text_is_labelled_on_every_surface(client, demo, settings):
    article = demo.select_related("insight").exclude(insight__hook="").first()
    insight = article.insight
    Insight.objects.filter(pk=insight.pk).update(
        backend="claude", model_name="claude-test", title="A headline the model wrote"
    )
    html = client.get(article.get_absolute_url()).content.decode()
    og = re.search(r'<meta property="og:description" content="([^"]*)"', html).group(1)
    tw = re.search(r'<meta name="twitter:description" content="([^"]*)"', html).group(1)
    assert og.startswith("AI-generated (claude-test): ") and tw == og
    assert re.search(r'<meta property="og:title" content="([^"]*)"', html).group(1) == unescape_attr(
        article.title
    )
    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1))
    assert (
        ld["description"].startswith("AI-generated (claude-test): ") and ld["headline"] == article.title[:110]
    )
    assert "Original headline:" in html

    front = client.get("/").content.decode()
    if "A headline the model wrote" in front:
        assert "AI-generated (claude-test) headline" in front
    assert 'class="machine-tag"' in front

    rss = unescape(client.get("/feeds/rss/").content.decode())
    assert f"<title>{article.title}</title>" in unescape(rss) or article.title in rss
    assert "AI-generated (claude-test), not the publisher's text" in rss
    assert "Automatic summary, not the publisher's text" in rss
    feed = json.loads(client.get("/feeds/json/").content)
    item = next(i for i in feed["items"] if i["url"].endswith(article.get_absolute_url()))
    assert item["title"] == article.title and item["summary"].startswith("AI-generated (claude-test): ")


def unescape_attr(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


@pytest.mark.django_db
def test_the_recap_link_points_to_the_week_that_holds_the_article(client, demo):
    article = demo.order_by("sort_at").first()
    year, week = week_of(article.sort_at)
    html = client.get(article.get_absolute_url()).content.decode()
    assert f'href="/week/{year}/{week}/"' in html
    local = timezone.localtime(article.sort_at)
    assert local.isocalendar()[:2] == (year, week)
