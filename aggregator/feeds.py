"""Feeds for subscribers: RSS 2.0 and Atom (Django's syndication framework) and JSON
Feed 1.1, for everything, per category, per audience, per source, and the recaps."""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed, Rss201rev2Feed
from django.utils.html import escape

from aggregator.ingest.clean import strip_invisible
from aggregator.models import Article, AudienceTag, Category, Source
from enrichment import labels
from enrichment.models import WeeklyRecap

ITEMS = 50


class NewsRss(Rss201rev2Feed):
    """RSS 2.0 with each item's publisher as <source url="its feed">name</source>."""

    def add_item_elements(self, handler, item):
        super().add_item_elements(handler, item)
        if item.get("source_name"):
            handler.addQuickElement("source", item["source_name"], {"url": item["source_feed"]})


class NewsAtom(Atom1Feed):
    """Atom with each item's original article as <link rel="via">."""

    def add_item_elements(self, handler, item):
        super().add_item_elements(handler, item)
        if item.get("source_url"):
            handler.addQuickElement("link", "", {"rel": "via", "href": item["source_url"]})
        if item.get("story_url"):
            handler.addQuickElement("link", "", {"rel": "related", "href": item["story_url"]})


def _clean(text: str) -> str:
    return strip_invisible(text or "")


def item_title(article: Article) -> str:
    """The publisher's headline: a feed reader shows no label next to a title."""
    return _clean(article.title)


def item_story_url(article: Article) -> str:
    """The absolute link to the article's story page, when the story has other reports."""
    story = article.story if article.story_id else None
    if story is None or story.article_count < 2:
        return ""
    return f"{settings.SITE_URL}{story.get_absolute_url()}"


def item_html(article: Article) -> str:
    """The card as HTML for a feed reader, its machine text labelled; every piece escaped."""
    insight = getattr(article, "insight", None)
    parts = []
    if insight and (insight.hook or insight.has_tldr or insight.title):
        parts.append(f"<p><em>{escape(labels.author_label(insight))}, not the publisher's text:</em></p>")
    if insight and insight.title and insight.title != article.title:
        parts.append(f"<p>Headline in English: {escape(_clean(insight.title))}</p>")
    if insight and insight.hook:
        parts.append(f"<p><strong>{escape(_clean(insight.hook))}</strong></p>")
    if insight and insight.has_tldr:
        rows = [
            ("What changed", insight.what_changed),
            ("Why it matters", insight.why_it_matters),
            ("What to do next", insight.what_next),
        ]
        parts.append(
            "<ul>"
            + "".join(f"<li><b>{label}:</b> {escape(_clean(value))}</li>" for label, value in rows if value)
            + "</ul>"
        )
    elif article.excerpt:
        parts.append(f"<p>{escape(_clean(article.excerpt))}</p>")
    audiences = [a.name for a in article.audiences.all()]
    if audiences:
        parts.append(f"<p>Who should care: {escape(', '.join(audiences))}</p>")
    story_url = item_story_url(article)
    if story_url:
        count = article.story.publisher_count
        parts.append(
            f'<p><a href="{escape(story_url)}">The whole story: {count} publisher{"s" if count != 1 else ""}'
            ", where they differ, the timeline</a></p>"
        )
    origin = article.url or article.source.site_url
    parts.append(
        f'<p>Original source: <a href="{escape(origin)}">{escape(_clean(article.source.name))}</a>. '
        "All content rights belong to original publishers.</p>"
    )
    return "".join(parts)


class ArticleFeed(Feed):
    feed_type = NewsRss
    description_template = None

    def get_object(self, request: HttpRequest, kind: str = "all", slug: str = ""):
        self.request = request
        if kind == "category":
            return get_object_or_404(Category, slug=slug)
        if kind == "audience":
            return get_object_or_404(AudienceTag, slug=slug)
        if kind == "source":
            return get_object_or_404(Source, slug=slug)
        return None

    def title(self, obj) -> str:
        return f"{settings.SITE_NAME}: {obj}" if obj else f"{settings.SITE_NAME}: latest news"

    def link(self, obj) -> str:
        return obj.get_absolute_url() if obj else reverse("front")

    def description(self, obj) -> str:
        return "News from publishers' feeds, each in a thirty-second card with the publisher one click away."

    def items(self, obj):
        articles = Article.objects.visible().for_cards().order_by("-sort_at", "-pk")
        if isinstance(obj, Category):
            articles = articles.filter(category=obj)
        elif isinstance(obj, AudienceTag):
            articles = articles.filter(audiences=obj)
        elif isinstance(obj, Source):
            articles = articles.filter(source=obj)
        return articles[:ITEMS]

    def item_title(self, item: Article) -> str:
        return item_title(item)

    def item_description(self, item: Article) -> str:
        return item_html(item)

    def item_link(self, item: Article) -> str:
        return item.get_absolute_url()

    def item_guid(self, item: Article) -> str:
        return f"{settings.SITE_URL}{item.get_absolute_url()}"

    item_guid_is_permalink = True

    def item_pubdate(self, item: Article):
        return item.published_at or item.collected_at

    def item_updateddate(self, item: Article):
        insight = getattr(item, "insight", None)
        return insight.generated_at if insight else item.collected_at

    def item_author_name(self, item: Article) -> str:
        return _clean(item.source.name)

    def item_categories(self, item: Article) -> list[str]:
        names = [item.category.name] if item.category else []
        return names + [a.name for a in item.audiences.all()]

    def item_extra_kwargs(self, item: Article) -> dict:
        return {
            "source_url": item.url,
            "source_name": _clean(item.source.name),
            "source_feed": item.source.feed_url,
            "story_url": item_story_url(item),
        }


class AtomArticleFeed(ArticleFeed):
    feed_type = NewsAtom
    subtitle = ArticleFeed.description


class RecapFeed(Feed):
    title = f"{settings.SITE_NAME}: weekly recap"
    description = "The week's top stories, once a week."
    feed_type = Rss201rev2Feed

    def link(self) -> str:
        return reverse("recaps")

    def items(self):
        return WeeklyRecap.objects.filter(status=WeeklyRecap.Status.PUBLISHED).order_by("-published_at")[:20]

    def item_title(self, item: WeeklyRecap) -> str:
        return _clean(item.title)

    def item_description(self, item: WeeklyRecap) -> str:
        return escape(_clean(item.intro))

    def item_link(self, item: WeeklyRecap) -> str:
        return item.get_absolute_url()

    def item_guid(self, item: WeeklyRecap) -> str:
        return f"{settings.SITE_URL}{item.get_absolute_url()}"

    def item_pubdate(self, item: WeeklyRecap):
        return item.published_at

    def item_updateddate(self, item: WeeklyRecap):
        return max(item.updated_at, item.published_at) if item.published_at else item.updated_at

    def item_author_name(self, item: WeeklyRecap) -> str:
        return settings.SITE_NAME


class AtomRecapFeed(RecapFeed):
    feed_type = Atom1Feed
    subtitle = RecapFeed.description


def json_feed(request: HttpRequest, kind: str = "all", slug: str = "") -> JsonResponse:
    """JSON Feed 1.1 of the same items as the RSS feed."""
    feed = ArticleFeed()
    obj = feed.get_object(request, kind, slug)
    items = []
    for article in feed.items(obj):
        url = f"{settings.SITE_URL}{article.get_absolute_url()}"
        insight = getattr(article, "insight", None)
        item = {
            "id": url,
            "url": url,
            "external_url": article.url or None,
            "title": item_title(article),
            "content_html": item_html(article),
            "summary": _clean(labels.description(article, insight, limit=300)),
            "date_published": (article.published_at or article.collected_at).isoformat(),
            "authors": [{"name": _clean(article.source.name), "url": article.source.site_url or None}],
            "tags": feed.item_categories(article),
        }
        if insight:
            item["date_modified"] = insight.generated_at.isoformat()
        if article.language:
            item["language"] = article.language
        if story_url := item_story_url(article):
            item["_newsdesk"] = {"story_url": story_url, "publishers": article.story.publisher_count}
        items.append({k: v for k, v in item.items() if v not in (None, "", [])})
    data = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title(obj),
        "home_page_url": f"{settings.SITE_URL}{feed.link(obj)}",
        "feed_url": request.build_absolute_uri(),
        "description": feed.description(obj),
        "language": settings.SITE_LANGUAGE,
        "items": items,
    }
    return JsonResponse(data, content_type="application/feed+json", json_dumps_params={"ensure_ascii": False})
