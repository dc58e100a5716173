"""The publisher's text on our pages is an excerpt, never the article: the feed's own
summary when it is one, else the first EXCERPT_WORDS words. The full text stays in the
database for grounding and search."""

from __future__ import annotations

import re

from aggregator.ingest.clean import html_to_text

EXCERPT_WORDS = 60
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def words(text: str) -> float:
    """Words in a text; two CJK characters count as one word."""
    return len(re.findall(r"[^\W\d_]+|\d+", _CJK.sub(" ", text))) + len(_CJK.findall(text)) / 2


def clip_words(text: str, limit: int = EXCERPT_WORDS) -> str:
    """The first `limit` words of `text` (whole words; a CJK text cut between characters)."""
    text = " ".join(text.split())
    if words(text) <= limit:
        return text
    out, count = [], 0.0
    for token in re.findall(r"\S+", text):
        cost = words(token)
        if count + cost > limit:
            if _CJK.search(token):
                room = int((limit - count) * 2)
                out.append(token[:room])
            break
        out.append(token)
        count += cost
    return " ".join(out).rstrip(",;:—-，、") + "…"


def publisher_excerpt(article) -> str:
    """The feed's summary when it is shorter than the article, else the text's first words
    (the headline, when the text repeats it, left out)."""
    body = article.body_text or ""
    summary = " ".join(html_to_text(article.summary_html or "").split())
    if summary and words(summary) <= EXCERPT_WORDS * 2 and words(summary) < 0.6 * words(body):
        return summary
    title = " ".join((article.title or "").split()).casefold()
    lines = [
        line for line in body.splitlines() if line.strip() and " ".join(line.split()).casefold() != title
    ]
    return clip_words(" ".join(lines) or summary)
