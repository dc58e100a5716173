"""Reading each new article in full: fetch its page, extract, keep the feed's text
when the page cannot be had. The article is held with a lease while it is read
(aggregator.ingest.leases): a dead worker's article is read again after it runs out."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from aggregator.ingest.clean import html_to_text, one_line
from aggregator.ingest.extract import Extraction, ExtractionError, clip_text, extract_html
from aggregator.ingest.http import FetchError, FetchResult, fetch
from aggregator.ingest.leases import ARTICLE, held
from aggregator.models import Article, excerpt_of, text_fingerprint
from enrichment.injection import find_instructions, without_instructions
from enrichment.sentences import split as split_sentences

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
State = Article.State


def without_headline(text: str, title: str) -> str:
    """Pages repeat the headline above the article; the card shows it already."""
    first, _, rest = text.partition("\n")
    if rest and " ".join(first.split()).casefold() == " ".join(title.split()).casefold():
        return rest.lstrip("\n")
    return text


def fetch_page(url: str) -> FetchResult:
    """The network half of reading an article (no database): safe to run in a thread."""
    if not url:
        raise ExtractionError("the feed entry has no link to a page")
    return fetch(
        url,
        headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"},
        max_bytes=settings.EXTRACT_MAX_BYTES,
    )


def fetch_and_extract(url: str) -> Extraction:
    return extract_page(fetch_page(url))


def extract_page(response: FetchResult) -> Extraction:
    if response.status >= 400:
        raise ExtractionError(f"the page answered HTTP {response.status}")
    if response.content_type and "html" not in response.content_type:
        raise ExtractionError(f"the page is {response.content_type}, not HTML")
    return extract_html(response.content, url=response.url)


def extract_article(
    article_id: int, *, now: datetime | None = None, page: FetchResult | Exception | None = None
) -> str:
    """Claim one discovered article, read its page, store the text. Idempotent: an
    article another worker holds (a live lease) or already finished is left alone; one
    a dead worker left extracting is read again, and given its feed's text after
    MAX_ATTEMPTS. `page` is what fetch_page() already got for it (or the error it
    raised), when it was fetched ahead."""
    with held(ARTICLE, [article_id]) as hold:
        if not hold:
            return "skipped: another worker holds it"
        article = Article.objects.filter(pk=article_id).select_related("source").first()
        return extract_held(article, now=now or timezone.now(), page=page)


def extract_held(article: Article | None, *, now: datetime, page: FetchResult | Exception | None) -> str:
    """extract_article for an article the caller holds (its lease) and has just read;
    what is written is also set on `article`, so the next steps need not read it again."""
    if article is None or article.state not in (State.DISCOVERED, State.EXTRACTING):
        return "skipped: not waiting for extraction"
    if article.state == State.EXTRACTING and article.extract_attempts >= MAX_ATTEMPTS:
        give_up(article, now=now)  # its page killed the worker reading it, again and again
        return f"gave up reading the page after {MAX_ATTEMPTS} attempts: kept the feed's text"
    if not article.claim(
        from_state=(State.DISCOVERED, State.EXTRACTING),
        to_state=State.EXTRACTING,
        now=now,
        extract_attempts=F("extract_attempts") + 1,
    ):
        return "skipped: not waiting for extraction"
    article.extract_attempts += 1

    feed_text = clip_text(
        html_to_text(article.content_html or article.summary_html), settings.EXTRACT_MAX_CHARS
    )
    fields: dict = {
        "state": State.EXTRACTED,
        "extracted_at": timezone.now(),
        "state_changed_at": timezone.now(),
    }
    try:
        if page is None:
            page = fetch_page(article.url)
        if isinstance(page, Exception):
            raise page
        page = extract_page(page)
    except (FetchError, ExtractionError) as exc:
        fields.update(text=feed_text, extraction_error=f"{exc}; showing the feed's own text")
        if not article.excerpt:
            fields["excerpt"] = excerpt_of(feed_text)
        outcome = f"kept the feed's text: {exc}"
    else:
        page_text = without_headline(page.text, article.title)
        use_page = len(page_text) >= len(feed_text) * 0.5
        fields.update(text=page_text if use_page else feed_text, extraction_error="")
        if not article.excerpt:
            fields["excerpt"] = excerpt_of(fields["text"])
        if not article.author and page.author:
            fields["author"] = one_line(page.author)[:300]
        if not article.image_url and page.image:
            fields["image_url"] = page.image[:2000]
        if page.language:
            fields["language"] = page.language
        if article.published_at is None and page.published_at and page.published_at <= now:
            fields["published_at"] = page.published_at
        outcome = f"extracted {len(page.text):,} characters"
    fields["text_hash"] = text_fingerprint(fields["text"])
    fields.update(instruction_fields(fields["text"], fields.get("excerpt", article.excerpt)))
    fields["sentences"] = split_sentences(
        fields["text"], language=fields.get("language") or article.language, title=article.title
    )
    updated = Article.objects.filter(pk=article.pk, state=State.EXTRACTING).update(**fields)
    if not updated:
        return "skipped: another worker finished it first"
    for name, value in fields.items():  # as a fresh read would give them (UTC times)
        setattr(article, name, value.astimezone(UTC) if isinstance(value, datetime) else value)
    return outcome


def instruction_fields(text: str, excerpt: str) -> dict:
    """Sentences addressed to a model, flagged on the article; the excerpt without them."""
    flags = find_instructions(text) + find_instructions(excerpt)
    fields: dict = {"model_instructions": [f.as_dict() for f in dict.fromkeys(flags)]}
    if find_instructions(excerpt):
        fields["excerpt"] = excerpt_of(without_instructions(excerpt))
    return fields


def give_up(article: Article, *, now: datetime) -> None:
    feed_text = clip_text(
        html_to_text(article.content_html or article.summary_html), settings.EXTRACT_MAX_CHARS
    )
    Article.objects.filter(pk=article.pk, state=State.EXTRACTING).update(
        **instruction_fields(feed_text, article.excerpt),
        sentences=split_sentences(feed_text, language=article.language, title=article.title),
        state=State.EXTRACTED,
        state_changed_at=now,
        extracted_at=now,
        text=feed_text,
        text_hash=text_fingerprint(feed_text),
        extraction_error=f"gave up reading the page after {MAX_ATTEMPTS} attempts; showing the feed's own text",
    )
