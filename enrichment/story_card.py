"""The story-level card, built offline from the reports of one story: what happened
(sentences several publishers agree on, each with its publisher), where reports disagree
(different dates or numbers for the same fact, every version shown with its publisher,
never merged), and the timeline merged across publishers.

The functions over reports are pure; `story_card` picks a bounded sample of the story's
reports (one per publisher, the earliest full report first), so a story of a thousand
articles costs no more than one of twelve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations

from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Length

from aggregator.listings import FULL_REPORT_CHARS, first_of_each
from aggregator.models import Article, Story
from enrichment import text as tx
from enrichment.sentences import sentences_of
from enrichment.timeline import Entry, story_timeline

MAX_REPORTS = 12  # publishers whose reports the card reads
STORY_CARD_SECONDS = 600  # a card kept for its content generation (cached_story_card)
LEAD_SENTENCES = 8  # what happened is in a report's first sentences
MAX_CLAIMS = 3
SAME_FACT = 0.3  # overlap of two sentences' other words for them to state one fact
MIN_SHARED_WORDS = 3


@dataclass
class Report:
    """What the card reads of one article: its stored sentences (enrichment.sentences:
    the one splitter of the product; the headline and sentences addressed to a model are
    not among them), numbered from 1 as every card cites them."""

    article_id: int
    publisher: str
    language: str
    sentences: list[str]

    @classmethod
    def from_text(cls, article_id: int, publisher: str, language: str, text: str) -> Report:
        """A report of a text not stored as an article (tests, benchmarks): split as
        extraction splits an article's body."""
        from enrichment.sentences import split

        return cls(article_id, publisher, language, split(text, language=language))


@dataclass
class Claim:
    text: str  # extractive: a stored sentence of the report, verbatim (its own passage)
    publisher: str
    article_id: int
    also: list[str] = field(default_factory=list)  # publishers whose reports say the same
    language: str = ""
    passage: str = ""  # Claude: the report's stored sentences the claim cites
    sentences: list[int] = field(default_factory=list)  # the ids of those sentences


@dataclass
class Version:
    value: str  # normalised: 2026-04, 6 hours
    label: str  # as shown: Apr 2026, 6 hours
    publishers: list[str]
    article_id: int
    passage: str
    before: str  # the passage around the value, for highlighting it
    found: str
    after: str
    language: str = ""


@dataclass
class Disagreement:
    kind: str  # "date", "number", or "claude" (then `fact` says what it is about)
    versions: list[Version]
    fact: str = ""

    @property
    def heading(self) -> str:
        if self.fact:
            return self.fact
        return "Reports give different dates" if self.kind == "date" else "Reports give different figures"


@dataclass
class StoryCard:
    claims: list[Claim]
    disagreements: list[Disagreement]
    timeline: list[Entry]
    reports_read: int
    other_languages: list[str]
    backend: str = "extractive"
    model_name: str = ""


def _language(code: str) -> str:
    return (code or "").split("-")[0].lower()


# A story's card is built again after every change anywhere on the site (each content
# generation), from the same stored sentences: what these two pure functions find in a
# sentence is kept (per process, the most recent SENTENCES_KEPT sentences).
SENTENCES_KEPT = 8192


@lru_cache(maxsize=SENTENCES_KEPT)
def _words(sentence: str) -> frozenset[str]:
    return frozenset(tx.tokens(sentence))


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    shared = a & b
    if len(shared) < MIN_SHARED_WORDS:
        return 0.0
    return len(shared) / min(len(a), len(b))


def what_happened(reports: list[Report], *, limit: int = MAX_CLAIMS) -> list[Claim]:
    """The lead sentences most publishers agree on, each with its publisher and the
    others that say the same; earlier sentences and earlier reports win ties."""
    candidates = []
    for r_index, report in enumerate(reports):
        for s_index, sentence in enumerate(report.sentences[:LEAD_SENTENCES]):
            words = _words(sentence)
            if len(words) >= 5:
                candidates.append((r_index, s_index, sentence, words, report))
    scored = []
    for r_index, s_index, sentence, words, report in candidates:
        also = []
        for other in candidates:
            publisher = other[4].publisher
            if (
                publisher != report.publisher
                and publisher not in also
                and _overlap(words, other[3]) >= SAME_FACT
            ):
                also.append(publisher)
        scored.append((-len(also), s_index, r_index, sentence, words, report, also))
    scored.sort(key=lambda c: c[:3])
    chosen: list[Claim] = []
    chosen_words: list[frozenset[str]] = []
    for _, _, _, sentence, words, report, also in scored:
        if any(_overlap(words, w) >= 0.35 for w in chosen_words):
            continue
        chosen.append(
            Claim(
                sentence, report.publisher, report.article_id, also, report.language, sentences=[s_index + 1]
            )
        )
        chosen_words.append(words)
        if len(chosen) == limit:
            break
    return chosen


# Numbers with what they count: "six hours", "4,000 domains", "15 percent".
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_FIGURE = re.compile(
    r"(?<![\w.,])(?P<n>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|" + "|".join(_NUMBER_WORDS) + r")"
    r"(?:[\s-]+(?P<scale>million|billion|thousand))?[\s-]+(?P<unit>[a-z]{3,})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Fact:
    kind: str
    value: str
    label: str
    start: int
    end: int


def _unit(word: str) -> str:
    word = word.lower()
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


@lru_cache(maxsize=SENTENCES_KEPT)
def facts(sentence: str) -> tuple[Fact, ...]:
    """The dates and counted figures a sentence states."""
    found = [Fact("date", d.value, _date_label(d.value), d.start, d.end) for d in tx.find_dates(sentence)]
    for m in _FIGURE.finditer(sentence):
        if any(m.start() < f.end and f.start < m.end() for f in found):
            continue
        raw = m.group("n").lower()
        number = _NUMBER_WORDS.get(raw)
        if number is None:
            number = float(raw.replace(",", ""))
            if number.is_integer():
                number = int(number)
            if 1900 <= number <= 2100 and not m.group("scale"):
                continue  # a year, not a count
        scale = (m.group("scale") or "").lower()
        unit = _unit(m.group("unit"))
        value = f"{number} {scale} {unit}".replace("  ", " ")
        found.append(Fact("number", value, " ".join(m.group(0).split()), m.start(), m.end()))
    return tuple(found)


def _date_label(value: str) -> str:
    from aggregator.freshness import format_partial_date

    return format_partial_date(value)


def _mentions(report_facts: list[tuple[str, list[Fact]]]) -> set[str]:
    values = set()
    for _, found in report_facts:
        for f in found:
            values.add(f.value)
            if f.kind == "date":
                values.update({f.value[:7], f.value[:4]})
    return values


def disagreements(reports: list[Report]) -> list[Disagreement]:
    """Facts two publishers state differently: sentences in one language whose other
    words overlap enough to be about the same thing, giving dates of the same precision
    (or figures of the same unit) that differ, where neither publisher mentions the
    other's value anywhere (else they are describing two things, not disagreeing)."""
    per_report = []
    for report in reports:
        items = []
        for sentence in report.sentences:
            found = facts(sentence)
            if found:
                rest = sentence
                for f in sorted(found, key=lambda f: -f.start):
                    rest = rest[: f.start] + " " + rest[f.end :]
                items.append((sentence, found, _words(rest)))
        per_report.append((report, items, _mentions([(s, f) for s, f, _ in items])))
    groups: list[dict[tuple[str, str], Version]] = []
    kinds: list[str] = []
    for (a, a_items, a_values), (b, b_items, b_values) in combinations(per_report, 2):
        if a.publisher == b.publisher or _language(a.language) != _language(b.language):
            continue
        for a_sentence, a_facts, a_words in a_items:
            for b_sentence, b_facts, b_words in b_items:
                if _overlap(a_words, b_words) < SAME_FACT:
                    continue
                for fa in a_facts:
                    for fb in b_facts:
                        if not _conflict(fa, fb) or fa.value in b_values or fb.value in a_values:
                            continue
                        if not _near(a_sentence, fa) & _near(b_sentence, fb):
                            continue  # the same sentence shape, but the values count different things
                        _add(groups, kinds, fa.kind, (a, a_sentence, fa), (b, b_sentence, fb))
    return [Disagreement(kind, list(group.values())) for kind, group in zip(kinds, groups, strict=True)]


def _near(sentence: str, fact: Fact, *, width: int = 6) -> set[str]:
    """Content words within `width` words either side of a fact (its unit left out)."""
    before = sentence[: fact.start].split()[-width:]
    after = sentence[fact.end :].split()[:width]
    unit = fact.value.split(" ")[-1]
    return {w for w in tx.tokens(" ".join(before + after)) if _unit(w) != unit}


def _conflict(a: Fact, b: Fact) -> bool:
    if a.kind != b.kind or a.value == b.value:
        return False
    if a.kind == "date":
        return len(a.value) == len(b.value)
    return a.value.split(" ")[-1] == b.value.split(" ")[-1]


def _version(report: Report, sentence: str, fact: Fact) -> Version:
    return Version(
        value=fact.value,
        label=fact.label,
        publishers=[report.publisher],
        article_id=report.article_id,
        passage=sentence,
        before=sentence[: fact.start],
        found=sentence[fact.start : fact.end],
        after=sentence[fact.end :],
        language=report.language,
    )


def _add(groups, kinds, kind: str, *sides: tuple[Report, str, Fact]) -> None:
    """Put both sides in the group that already holds one of their passages, else a new one;
    publishers giving the same value share one version."""
    passages = {(r.publisher, s) for r, s, _ in sides}
    group = next(
        (
            g
            for g, k in zip(groups, kinds, strict=True)
            if k == kind and passages & {(p, v.passage) for v in g.values() for p in v.publishers}
        ),
        None,
    )
    if group is None:
        group = {}
        groups.append(group)
        kinds.append(kind)
    for report, sentence, fact in sides:
        key = (fact.kind, fact.value)
        if key in group:
            if report.publisher not in group[key].publishers:
                group[key].publishers.append(report.publisher)
        else:
            group[key] = _version(report, sentence, fact)


# What the card reads of a sampled report (the body only where no sentences are stored,
# enrichment.sentences.sentences_of); the rest stays unread.
SAMPLE_FIELDS = (
    "title",
    "language",
    "sentences",
    "text",
    "content_html",
    "summary_html",
    "published_at",
    "collected_at",
    "sort_at",
    "source",
    "source__name",
    "source__language",
    "insight__timeline",
)


def sample_reports(story: Story, *, limit: int = MAX_REPORTS) -> list[Article]:
    """The earliest full report of each publisher (up to `limit` publishers, earliest
    first), in one query whatever the story's size."""
    language = settings.SITE_LANGUAGE.split("-")[0].lower()
    first = first_of_each(
        Article.objects.visible().filter(story=story).annotate(text_length=Length("text")),
        [F("source_id")],
        [
            Case(When(Q(text_length__gte=FULL_REPORT_CHARS), then=Value(0)), default=Value(1)).asc(),
            Coalesce("published_at", "collected_at").asc(),
            F("pk").asc(),
        ],
    )
    ranked = (
        Article.objects.filter(first)
        .select_related("source", "insight")
        .only(*SAMPLE_FIELDS)
        .order_by(Coalesce("published_at", "collected_at").asc(), "pk")
    )
    articles = list(ranked[:limit])
    articles.sort(key=lambda a: _language(a.language or a.source.language) != language)
    return articles


def _split(passage: str, value: str) -> tuple[str, str, str]:
    at = passage.casefold().find(value.casefold())
    if at < 0 or not value:
        return passage, "", ""
    return passage[:at], passage[at : at + len(value)], passage[at + len(value) :]


def claude_parts(insight, articles: list[Article]) -> tuple[list[Claim], list[Disagreement]]:
    """Claude's grounded claims and disagreements (see enrichment.story_claude), with
    the publisher of each article they cite."""
    ids = {c["article_id"] for c in insight.claims} | {
        v["article_id"] for d in insight.disagreements for v in d["versions"]
    }
    known = {a.pk: a for a in articles}
    missing = ids - set(known)
    if missing:
        known.update({a.pk: a for a in Article.objects.filter(pk__in=missing).select_related("source")})
    claims = [
        Claim(c["text"], known[c["article_id"]].source.name, c["article_id"], passage=c["passage"])
        for c in insight.claims
        if c["article_id"] in known
    ]
    found = []
    for item in insight.disagreements:
        versions = []
        for v in item["versions"]:
            article = known.get(v["article_id"])
            if article is None:
                continue
            before, value, after = _split(v["passage"], v["value"])
            versions.append(
                Version(
                    value=v["value"],
                    label=v["value"],
                    publishers=[article.source.name],
                    article_id=article.pk,
                    passage=v["passage"],
                    before=before,
                    found=value,
                    after=after,
                    language=_language(article.language or article.source.language),
                )
            )
        if len(versions) >= 2:
            found.append(Disagreement("claude", versions, fact=item["fact"]))
    return claims, found


def story_card(story: Story) -> StoryCard:
    from enrichment.models import StoryInsight

    articles = sample_reports(story)
    insight = StoryInsight.objects.filter(story=story, backend="claude", error="").first()
    # The stored sentences: those addressed to a model are not among them, so are never quoted.
    reports = [
        Report(a.pk, a.source.name, _language(a.language or a.source.language), sentences_of(a, save=False))
        for a in articles
    ]
    site = _language(settings.SITE_LANGUAGE)
    readable = [r for r in reports if r.language == site] or reports[:1]
    card = StoryCard(
        claims=what_happened(readable),
        disagreements=disagreements(reports),
        timeline=story_timeline(story, articles=articles),
        reports_read=len(reports),
        other_languages=sorted({r.publisher for r in reports if r not in readable}),
    )
    if insight is not None and insight.claims:
        card.claims, card.disagreements = claude_parts(insight, articles)
        card.backend, card.model_name = "claude", insight.model_name
        card.reports_read, card.other_languages = len(insight.article_ids), []
    return card


def cached_story_card(story: Story) -> StoryCard:
    """story_card, built once per story and content generation (aggregator.pagecache)
    and kept in the cache while the page cache is on (PAGE_CACHE_SECONDS): every change
    readers could see moves the generation (a report added, hidden or corrected, a card
    written), so a card found is never stale. A story page is rendered more than once
    per generation: once per encoding and query string the page cache keeps apart, again
    when its copy expires on a quiet site, in each process, and on every request of an
    editor (never served from the page cache). The card reads no clock, so it cannot age.
    The generation's time is in the key too: a database rolled back (a restore) may
    count the same numbers again."""
    if settings.PAGE_CACHE_SECONDS <= 0:
        return story_card(story)
    from aggregator.pagecache import current_generation

    generation = current_generation()
    key = f"story-card:{story.pk}:{generation.editorial}:{generation.content}:{generation.changed_at}"
    card = cache.get(key)
    if card is None:
        card = story_card(story)
        cache.set(key, card, STORY_CARD_SECONDS)
    return card
