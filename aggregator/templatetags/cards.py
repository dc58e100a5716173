from __future__ import annotations

from django import template
from django.utils import timezone

from aggregator import freshness

register = template.Library()


@register.inclusion_tag("aggregator/_badge.html")
def freshness_badge(article):
    key, label = freshness.age_class(article.published_at, timezone.now())
    return {
        "key": key,
        "label": label,
        "collected_in": freshness.collected_after(article.published_at, article.collected_at),
        "published_at": article.published_at,
    }


@register.filter
def lead(text: str, chars: int = 280) -> str:
    """The first lines of an article's text, cut at a word."""
    text = " ".join((text or "").split())
    if len(text) <= chars:
        return text
    return text[:chars].rsplit(" ", 1)[0] + " …"


@register.filter
def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split("\n") if p.strip()]
