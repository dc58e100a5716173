from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from aggregator.models import Article, Category, Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def articles():
    cat = Category.objects.get(slug="ai")
    source = Source.objects.create(
        name="Pub & Co",
        slug="pub",
        feed_url="http://127.0.0.1:9/f",
        site_url="https://pub.example/",
        category=cat,
    )
    now = timezone.now()
    made = []
    for i in range(45):
        published = now - timedelta(hours=i * 5)
        made.append(
            Article.objects.create(
                source=source,
                guid=str(i),
                url=f"https://pub.example/{i}",
                title=f"Headline {i}",
                summary_html=f"<p>Lead of story {i}.</p>",
                excerpt=f"Lead of story {i}.",
                text=f"Full text {i}.\n\nSecond paragraph.",
                category=cat,
                published_at=published,
                collected_at=published + timedelta(minutes=26),
                sort_at=published,
            )
        )
    return made


def test_the_front_page_lists_the_newest_cards_paginated(client, articles, django_assert_max_num_queries):
    with django_assert_max_num_queries(7):
        response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<article class="card') == 20
    assert html.index("Headline 0") < html.index("Headline 1")
    assert "Fresh" in html and "collected in 26m" in html and "🤖" in html and "Pub &amp; Co" in html
    assert "Lead of story 0." in html
    page3 = client.get("/?page=3").content.decode()
    assert page3.count('<article class="card') == 5


def test_featured_articles_come_first(client, articles):
    Article.objects.filter(pk=articles[-1].pk).update(is_featured=True)
    html = client.get("/").content.decode()
    assert html.index("Headline 44") < html.index("Headline 0")


def test_hidden_articles_are_not_shown(client, articles):
    Article.objects.filter(pk=articles[0].pk).update(is_hidden=True)
    assert "Headline 0<" not in client.get("/").content.decode()
    assert client.get(articles[0].get_absolute_url()).status_code == 404


def test_the_article_page_shows_the_text_and_credits_the_publisher(
    client, articles, django_assert_max_num_queries
):
    with django_assert_max_num_queries(7):
        response = client.get(articles[0].get_absolute_url())
    html = response.content.decode()
    assert "<h1>Headline 0</h1>" in html and 'class="excerpt"' in html
    assert "Read the full article at" in html
    assert html.count("All content rights belong to original publishers.") == 1
    assert 'Original source: <a href="https://pub.example/0"' in html


def test_the_rights_line_is_said_once_on_every_page(client, articles):
    for url in [articles[0].get_absolute_url(), "/", "/search/?q=Headline"]:
        html = client.get(url).content.decode()
        assert html.count("All content rights belong to original publishers.") == 1, url


def test_search_says_how_many_articles_it_found(client, articles):
    html = client.get("/search/?q=Headline").content.decode()
    assert "45 results for “Headline”" in html and "showing 1–20" in html
    html = client.get("/search/?q=Headline+44").content.decode()
    assert "1 result for “Headline 44”" in html
    html = client.get("/search/?q=nothing-like-it").content.decode()
    assert "0 results for" in html and "Nothing matches" in html


def test_category_and_source_pages_list_their_cards(client, articles, django_assert_max_num_queries):
    for url in ("/category/ai/", "/source/pub/"):
        with django_assert_max_num_queries(8):
            response = client.get(url)
        assert response.content.decode().count('<article class="card') == 20
    assert client.get("/category/nope/").status_code == 404


def test_markup_in_a_title_is_shown_as_text(client, articles):
    Article.objects.filter(pk=articles[0].pk).update(title="<img src=x onerror=alert(1)>")
    html = client.get("/").content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_an_article_without_date_or_text_renders(client):
    source = Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/f")
    article = Article.objects.create(source=source, guid="x", url="", title="Bare")
    assert client.get("/").status_code == 200
    html = client.get(article.get_absolute_url()).content.decode()
    assert "Undated" in html and "We could not read this article" in html
