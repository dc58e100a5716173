"""What search engines and link previews read about a page."""

from __future__ import annotations

from django.conf import settings

from aggregator.models import Article


def news_article(article: Article, *, canonical: str, description: str) -> dict:
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": article.title[:110],
        "url": canonical,
        "mainEntityOfPage": canonical,
        "description": description,
        "isBasedOn": article.url or article.source.site_url,
        "publisher": {"@type": "Organization", "name": settings.SITE_NAME, "url": settings.SITE_URL},
        "sourceOrganization": {
            "@type": "Organization",
            "name": article.source.name,
            "url": article.source.site_url or None,
        },
    }
    if article.published_at:
        data["datePublished"] = article.published_at.isoformat()
    if article.author:
        data["author"] = {"@type": "Person", "name": article.author}
    if article.image_url:
        data["image"] = [article.image_url]
    if article.language:
        data["inLanguage"] = article.language
    return data
