"""Small feeds built in code for the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape


def rss(
    items: list[dict], *, title: str = "Test Feed", ttl: int | None = None, language: str = "en"
) -> bytes:
    """items: dicts with guid, title, link, and optional description, minutes_ago, content."""
    now = datetime.now(UTC)
    parts = []
    for item in items:
        when = now - timedelta(minutes=item.get("minutes_ago", 10))
        parts.append(
            "<item>"
            f"<title>{escape(item['title'])}</title>"
            f"<link>{escape(item.get('link', ''))}</link>"
            f'<guid isPermaLink="false">{escape(item["guid"])}</guid>'
            f"<pubDate>{format_datetime(when)}</pubDate>"
            f"<description>{escape(item.get('description', ''))}</description>"
            "</item>"
        )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.org/</link><language>{language}</language>"
        f"{ttl_tag}{''.join(parts)}</channel></rss>"
    ).encode()


def page(title: str, paragraphs: list[str], *, lang: str = "en") -> bytes:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="author" content="Ada Writer"></head><body><nav>Home · About</nav>'
        f"<article><h1>{escape(title)}</h1>{body}</article><footer>© Test</footer></body></html>"
    ).encode()


LOREM = [
    "The city council approved a new budget on Tuesday after a debate that lasted most of the night, "
    "with members split over how much to spend on public transport and road repairs.",
    "Supporters said the plan would cut commuting times for thousands of residents, while critics warned "
    "that the costs had been underestimated and that taxes would have to rise within two years.",
    "The mayor said the vote showed the council could still agree on hard questions, and promised to "
    "publish quarterly reports on how the money is spent so residents can hold the city to account.",
]
