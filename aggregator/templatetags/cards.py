from __future__ import annotations

import json

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from aggregator import excerpts, freshness, listings
from enrichment import injection, labels

register = template.Library()

_JSON_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


@register.inclusion_tag("aggregator/_badge.html")
def freshness_badge(article):
    return {"badge": listings.badge_of(article.published_at, article.collected_at)}


@register.filter
def link(value, name: str) -> str:
    """`{% url name value %}` for a pk or a slug, at a fraction of reverse()'s cost
    (aggregator.listings.link): `{{ article.pk|link:"article" }}`."""
    return listings.link(name, value)


@register.filter(expects_localtime=True)
def iso(value) -> str:
    """`value|date:'c'` (ISO 8601 in the current time zone) at a fifth of its cost: the
    date filter looks its format up through the translation machinery first."""
    if value in (None, ""):
        return ""
    try:
        return value.isoformat()
    except AttributeError:
        return ""


@register.filter
def ago(when) -> str:
    """'3 days ago', rounded down: the same rule as site.js."""
    return freshness.relative(when, timezone.now())


@register.filter
def machine_author(insight) -> str:
    return labels.author_label(insight)


@register.filter
def machine_labelled(text: str, insight) -> str:
    return labels.labelled(insight, text)


@register.filter
def publisher_excerpt(article) -> str:
    return excerpts.publisher_excerpt(article)


@register.filter
def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split("\n") if p.strip()]


@register.filter
def without_instructions(text: str) -> str:
    """The publisher's text without sentences addressed to an AI model (never shown)."""
    return injection.without_instructions(text or "")


@register.filter
def timeline_date(value: str) -> str:
    """2026-11-18 → 18 Nov 2026; 2026-11 → Nov 2026; 2026 → 2026."""
    return freshness.format_partial_date(value)


@register.simple_tag
def json_ld(data: dict) -> SafeString:
    """A JSON-LD block; <, > and & escaped so no text can close the script element."""
    payload = json.dumps(data, ensure_ascii=False).translate(_JSON_ESCAPES)
    return mark_safe(f'<script type="application/ld+json">{payload}</script>')  # noqa: S308
