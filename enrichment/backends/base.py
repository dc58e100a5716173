from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol


class EnrichmentError(Exception):
    """An enricher could not write a card; the article keeps what it had."""


@dataclass
class SourceText:
    """Everything an enricher may read about one article. Text is data, not instructions."""

    article_id: int
    title: str
    text: str
    language: str
    source_name: str
    published_at: datetime | None
    category_hint: str = ""
    # Earlier articles of the same story: (article id, published, title, text).
    story: list[tuple[int, datetime | None, str, str]] = field(default_factory=list)
    categories: dict[str, str] = field(default_factory=dict)  # slug -> comma-separated keywords
    audiences: dict[str, str] = field(default_factory=dict)  # slug -> comma-separated keywords
    # Sentences addressed to a model, already removed from `text` (enrichment.injection):
    # a card that echoes them is refused.
    instructions: list[str] = field(default_factory=list)
    # The article's stored sentences (enrichment.sentences): claims cite them by number,
    # 1 for the first. The text above is the same body, for what is not cited.
    sentences: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sentences and self.text:  # not from a stored article: split it the same way
            from enrichment.sentences import split

            self.sentences = split(self.text, language=self.language, title=self.title)


@dataclass
class Takeaway:
    text: str
    passage: str = ""  # built from `sentences` by grounding; older cards quoted it
    supported: bool = True  # False: the passage was not found (shown marked, never as fact)
    sentences: list[int] = field(default_factory=list)  # the article's sentence ids it cites


@dataclass
class Implication:
    prediction: str
    reasoning: str
    passage: str = ""
    supported: bool = True
    sentences: list[int] = field(default_factory=list)


@dataclass
class TimelineEntry:
    date: str  # YYYY, YYYY-MM or YYYY-MM-DD
    text: str
    passage: str = ""
    article_id: int | None = None
    supported: bool = True
    sentences: list[int] = field(default_factory=list)


@dataclass
class CardDraft:
    backend: str
    model_name: str = ""
    language: str = ""
    title: str = ""
    hook: str = ""
    what_changed: str = ""
    why_it_matters: str = ""
    what_next: str = ""
    category: str = ""
    audiences: dict[str, str] = field(default_factory=dict)  # slug -> reason
    takeaways: list[Takeaway] = field(default_factory=list)
    implications: list[Implication] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    # The passages the hook, what changed and why it matters rest on: {"hook": "..."},
    # built by grounding from the sentence ids they cite: {"hook": [2]}.
    support: dict[str, str] = field(default_factory=dict)
    cites: dict[str, list[int]] = field(default_factory=dict)
    # What grounding took off the card, and why: [{"part", "text", "passage", "reason"}].
    dropped: list[dict] = field(default_factory=list)

    def as_fields(self) -> dict:
        return {
            "backend": self.backend,
            "model_name": self.model_name,
            "language": self.language,
            "title": self.title,
            "hook": self.hook,
            "what_changed": self.what_changed,
            "why_it_matters": self.why_it_matters,
            "what_next": self.what_next,
            "takeaways": [asdict(t) for t in self.takeaways],
            "implications": [asdict(i) for i in self.implications],
            "timeline": [asdict(t) for t in self.timeline],
            "audience_reasons": dict(self.audiences),
            "support": dict(self.support),
            "support_sentences": dict(self.cites),
            "dropped": list(self.dropped),
        }


class Enricher(Protocol):
    name: str

    def enrich(self, source: SourceText) -> CardDraft: ...
