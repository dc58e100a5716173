"""Does a claim rest on its passage? One plain check, the same for every backend and
every part of the card (hook, TL;DR, takeaways, implications, timeline).

A claim is shown only when its passage
- is in the article's body (not only in its headline; hidden page text never reaches the
  body: see aggregator.ingest.clean.drop_hidden), starting and ending on word boundaries;
- is at least a full clause (six words, three of them content words; CJK: twelve
  characters); three common words support nothing;
- is consistent with the claim: every number, date, month and proper name of the claim
  appears in the passage, and the claim does not flip its negation.

`check_claim(claim, passage, article)` returns "" when the claim may be shown, else the
reason, in words an editor reads. Cards cite sentence ids (`check_cited`): the passage is
then the article's stored sentences with those numbers (enrichment.sentences), joined,
so it is in the text by construction, and the same rules decide the rest. A verbatim
passage (older cards, an editor's quotation) is checked by `check_claim` as it is.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property

from enrichment import text as tx

_QUOTES = str.maketrans(
    {c: '"' for c in "“”„‟«»″"} | {c: "'" for c in "‘’‚‛‹›′`´"} | {c: "-" for c in "‐‑‒–—―−"}
)
_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\s\"'.,;:!?…。！？，、-]+|[\s\"'.,;:!?…。！？，、-]+$")
_WORDCHAR = re.compile(r"\w")

MIN_WORDS = 6
MIN_CONTENT = 3
MIN_CJK_CHARS = 12


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES).casefold()
    return _SPACE.sub(" ", text).strip()


def _fold(word: str) -> str:
    """Casefolded, accents removed: München → munchen."""
    folded = word.casefold()
    if folded.isascii():  # nothing to decompose
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _joined(a: str, b: str) -> bool:
    """Two characters of one word (CJK characters are words of their own)."""
    return bool(_WORDCHAR.match(a) and _WORDCHAR.match(b)) and not (tx.is_cjk(a) or tx.is_cjk(b))


def _occurs(needle: str, haystack: str) -> bool:
    """`needle` occurs in `haystack`, not cut out of the middle of a word."""
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        cut_before = _joined(before, needle[0])
        cut_after = _joined(needle[-1], after)
        if not cut_before and not cut_after:
            return True
        start = haystack.find(needle, start + 1)
    return False


def passage_in(passage: str, text: str) -> bool:
    """True when `passage` (at least a few words long) occurs in `text`."""
    needle = _EDGE.sub("", normalize(passage))
    if len(needle) < 8:
        return False
    return _occurs(needle, normalize(text))


@dataclass
class ArticleText:
    """The text a claim may rest on: the article's body, its headline apart."""

    body: str
    title: str = ""
    language: str = ""
    claim_language: str = ""  # the language the card is written in
    # Other texts a claim may cite (earlier articles of the same story).
    others: list[str] = field(default_factory=list)
    # The article's stored sentences: what a claim cites by number (1 is the first).
    sentences: list[str] = field(default_factory=list)

    @cached_property
    def body_norm(self) -> str:
        """The body without the lines that only repeat the headline."""
        title = _EDGE.sub("", normalize(self.title))
        lines = [normalize(line) for line in (self.body or "").splitlines()]
        kept = [line for line in lines if line and _EDGE.sub("", line) != title]
        return " ".join(kept)

    @cached_property
    def others_norm(self) -> list[str]:
        return [normalize(t) for t in self.others if t]

    def holds(self, passage: str) -> bool:
        needle = _EDGE.sub("", normalize(passage))
        return bool(needle) and (
            _occurs(needle, self.body_norm) or any(_occurs(needle, t) for t in self.others_norm)
        )

    def in_title(self, passage: str) -> bool:
        needle = _EDGE.sub("", normalize(passage))
        return bool(needle) and needle in normalize(self.title)


# ---------------------------------------------------------------- what a claim states

_NUMBER = re.compile(r"(?<!\d)(?<!\d[.,])\d+(?:[.,  ]\d+)*")
_SCALE_WORDS = {
    "thousand": 1e3,
    "tausend": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "millionen": 1e6,
    "mio": 1e6,
    "billion": 1e9,
    "billions": 1e9,
    "milliarde": 1e9,
    "milliarden": 1e9,
    "mrd": 1e9,
    "trillion": 1e12,
    "billionen": 1e12,
    "k": 1e3,
    "m": 1e6,
    "bn": 1e9,
    "万": 1e4,
    "亿": 1e8,
    "千": 1e3,
}
_SCALE = re.compile(
    r"\s*(" + "|".join(sorted((re.escape(w) for w in _SCALE_WORDS), key=len, reverse=True)) + r")(?![a-z])",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "twenty": 20,
    "zwei": 2,
    "drei": 3,
    "vier": 4,
    "fünf": 5,
    "sechs": 6,
    "sieben": 7,
    "acht": 8,
    "neun": 9,
    "zehn": 10,
    "zwölf": 12,
    "zwanzig": 20,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_NUMBER_WORD = re.compile(
    r"\b(" + "|".join(w for w in _NUMBER_WORDS if w.isascii() or w[0] in "fz") + r")\b", re.IGNORECASE
)
_CJK_NUMBER_WORD = re.compile(r"([两三四五六七八九十])(?=[个家名位项种年月天款座条次倍成])")


def _canonical(raw: str) -> str:
    """1,000 / 1.000 / 1 000 → 1000; 2,5 / 2.5 → 2.5."""
    parts = re.split(r"[.,  ]", raw)
    if len(parts) == 1:
        return str(int(parts[0])) if parts[0].isdigit() else parts[0]
    if all(len(p) == 3 for p in parts[1:]) and not (len(parts) == 2 and raw[len(parts[0])] in " "):
        return str(int("".join(parts)))
    whole, frac = "".join(parts[:-1]), parts[-1].rstrip("0")
    return str(int(whole)) + (f".{frac}" if frac else "")


def numbers(text: str) -> dict[str, set[float]]:
    """Each number of a text, written canonically, with the values it may stand for
    (70 billion and 700亿 are both 7e10)."""
    found: dict[str, set[float]] = {}
    text = unicodedata.normalize("NFKC", text or "")
    for m in _NUMBER.finditer(text):
        key = _canonical(m.group(0))
        try:
            value = float(key)
        except ValueError:
            continue
        values = found.setdefault(key, set())
        values.add(value)
        scale = _SCALE.match(text, m.end())
        if scale:
            values.add(value * _SCALE_WORDS[scale.group(1).lower()])
    for m in [*_NUMBER_WORD.finditer(text), *_CJK_NUMBER_WORD.finditer(text)]:
        value = _NUMBER_WORDS[m.group(1).lower()]
        found.setdefault(str(value), set()).add(float(value))
    return found


_MONTH_WORD = re.compile(r"\b(" + "|".join(sorted(tx._MONTHS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_CJK_MONTH = re.compile(r"(\d{1,2})\s*月")
_ISO_MONTH = re.compile(r"\b(?:19|20)\d\d-(\d\d)\b")


def months(text: str) -> set[int]:
    found = {tx._MONTHS[m.group(1).lower()] for m in _MONTH_WORD.finditer(text or "")}
    found |= {int(m.group(1)) for m in _CJK_MONTH.finditer(text or "")}
    found |= {int(m.group(1)) for m in _ISO_MONTH.finditer(text or "")}
    # "may" is a month only when a day or a year stands next to it.
    if re.search(r"\bmay\b", text or "", re.IGNORECASE) and not re.search(
        r"\bmai\b|\bmay\s+\d|\d\.?\s+may\b|\bMay\b|(?<!\d)0?5\s*月|-05\b", text or "", re.IGNORECASE
    ):
        found.discard(5)
    return {m for m in found if 1 <= m <= 12}


_CAPITAL_WORD = re.compile(r"[^\W\d_][\w'’&.-]*[\w]|[^\W\d_]", re.UNICODE)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;…]\s+|[\"“„(]\s*)$")
_WEEKDAYS = {
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "montag",
    "dienstag",
    "mittwoch",
    "donnerstag",
    "freitag",
    "samstag",
    "sonntag",
}
_COMMON_CAPITALS = (
    tx.STOPWORDS | _WEEKDAYS | set(tx._MONTHS) | {"i", "ai", "ki", "ceo", "us", "eu", "uk", "un"}
)


_DIGIT = re.compile(r"\d")
_POSSESSIVE = re.compile(r"['’]s$")


def _hard_name(word: str) -> bool:
    """A name no translation changes: has a digit, inner capitals, or is an acronym."""
    return bool(_DIGIT.search(word)) or word[1:] != word[1:].lower() or (len(word) > 1 and word.isupper())


def names(text: str) -> list[str]:
    """Proper names in a claim: capitalized words that do not start a sentence, and words
    anywhere that are names on their face (Aurora-3, NVIDIA, iPhone)."""
    found = []
    text = unicodedata.normalize("NFKC", text or "")
    for m in _CAPITAL_WORD.finditer(text):
        word = _POSSESSIVE.sub("", m.group(0)).strip(".'’-")
        if not word or not word[0].isalpha() or not word.isascii() and tx.is_cjk(word):
            continue
        is_name = _hard_name(word) or (
            word[0].isupper() and not _SENTENCE_START.search(text[: m.start()])  # starts a sentence
        )
        if is_name and len(word) > 1 and _fold(word) not in _COMMON_CAPITALS:
            found.append(word)
    return list(dict.fromkeys(found))


_NEGATION = re.compile(
    r"\b(?:not(?!\s+only)|no|never|none|nobody|nothing|neither|nor|without|cannot|can't|won't|isn't|aren't|"
    r"wasn't|weren't|doesn't|don't|didn't|hasn't|haven't|hadn't|shouldn't|wouldn't|couldn't|"
    r"nicht(?!\s+nur)|kein|keine|keinen|keinem|keiner|keines|nie|niemals|ohne|weder)\b"
    r"|不(?!过|断|少|仅|同|久|足|错|论|管|但|只|如)|没|未(?!来|知)|无法|并非|从未",
    re.IGNORECASE,
)


def negated(text: str) -> bool:
    return bool(_NEGATION.search(unicodedata.normalize("NFKC", text or "").translate(_QUOTES)))


def is_clause(passage: str) -> bool:
    """At least a full clause: enough words, and enough of them content words."""
    flat = " ".join((passage or "").split())
    cjk = len(tx._CJK.findall(flat))
    if cjk >= MIN_CJK_CHARS:
        return True
    words = tx._WORD.findall(flat)
    content = [w for w in words if w.lower() not in tx.STOPWORDS and not w.isdigit()]
    return len(words) >= MIN_WORDS and len(content) >= MIN_CONTENT


def _name_in(
    name: str, passage_norm: str, passage_words: Callable[[], list[str]], *, cross_language: bool
) -> bool:
    folded = _fold(name)
    if _occurs(folded, passage_norm):
        return True
    if not cross_language:
        return False
    # A translated claim may spell a name the way its language does (Kommission / Commission).
    return any(SequenceMatcher(None, folded, w).ratio() >= 0.75 for w in passage_words())


def _primary(language: str) -> str:
    return (language or "").split("-")[0].lower()


def check_claim(claim: str, passage: str, article: ArticleText, *, date: str = "") -> str:
    """ "" when `claim` may be shown as resting on `passage` of `article`; else why not.
    `date` is a timeline entry's date (YYYY, YYYY-MM or YYYY-MM-DD)."""
    if not (passage or "").strip():
        return "no passage given"
    if not is_clause(passage):
        return "the passage is too short to support a claim (not a full clause)"
    if not article.holds(passage):
        if article.in_title(passage):
            return "the passage is only in the headline, not in the article's text"
        return "the passage is not in the article's text"
    return _states(claim, passage, article, date=date)


def _states(claim: str, passage: str, article: ArticleText, *, date: str = "") -> str:
    if date and not date_in(date, passage):
        return f"the date {date} is not in its passage"
    return consistency(claim, passage, article)


MAX_CITED = 4


def cited_ids(raw) -> list[int]:
    """Sentence ids as a card stores them ([3, 4]) or an editor types them ("3, 4")."""
    if isinstance(raw, str):
        return [int(x) for x in re.findall(r"-?\d+", raw)]
    return [int(x) for x in raw or [] if isinstance(x, int) or str(x).lstrip("-").isdigit()]


def check_cited(claim: str, ids, article: ArticleText, *, date: str = "") -> tuple[str, str]:
    """(passage, reason) for a claim citing the article's sentences by number: the
    passage is built from the stored sentences (never from the claim's author), and
    the reason is "" when the claim may be shown. An id that does not exist, a sentence
    that is the headline, or a passage that fails the rules of `check_claim` drops it."""
    passage, reason = cited_passage(ids, article)
    if reason or not passage:
        return passage, reason
    return passage, _states(claim, passage, article, date=date)


def cited_passage(ids, article: ArticleText) -> tuple[str, str]:
    """(passage, reason): the stored sentences `ids` cite, and "" when they may support a
    claim at all (ids that exist, at most MAX_CITED, not the headline, a full clause);
    what the claim states is `check_cited`'s (or, for a text resting on several
    articles' sentences, the caller's) to check."""
    from enrichment.sentences import passage_of

    ids = cited_ids(ids)
    if not ids:
        return "", "no sentence cited"
    missing = [i for i in ids if not 1 <= i <= len(article.sentences)]
    if missing:
        return "", f"it cites sentence {missing[0]}, which the article does not have"
    if len(set(ids)) > MAX_CITED:
        return "", f"it cites {len(set(ids))} sentences; at most {MAX_CITED} may support one claim"
    passage = passage_of(article.sentences, ids)
    title = _EDGE.sub("", normalize(article.title))
    if title and any(_EDGE.sub("", normalize(article.sentences[i - 1])) == title for i in ids):
        return passage, "the passage is only in the headline, not in the article's text"
    if not is_clause(passage):
        return passage, "the passage is too short to support a claim (not a full clause)"
    return passage, ""


def date_in(date: str, passage: str) -> bool:
    """A timeline date (YYYY, YYYY-MM, YYYY-MM-DD) is stated by the passage."""
    parts = [int(p) for p in date.split("-") if p.isdigit()]
    if not parts:
        return False
    found = numbers(passage)
    if str(parts[0]) not in found:
        return False
    if len(parts) > 1 and parts[1] not in months(passage):
        return False
    return len(parts) < 3 or str(parts[2]) in found


def consistency(claim: str, passage: str, article: ArticleText) -> str:
    """The claim states nothing its passage does not: numbers, dates, names, negation."""
    passage_numbers = numbers(passage)
    passage_values = set().union(*passage_numbers.values()) if passage_numbers else set()
    for key, values in numbers(claim).items():
        if key not in passage_numbers and not values & passage_values:
            return f"the number {key} is not in its passage"
    missing_months = months(claim) - months(passage)
    if missing_months:
        return f"the month {sorted(missing_months)[0]:02d} is not in its passage"
    passage_norm = normalize(passage)
    passage_fold = _fold(passage_norm)

    @functools.cache
    def passage_words() -> list[str]:  # only a translated claim needs them
        return [_fold(w) for w in tx._WORD.findall(passage_norm)]

    cjk_passage = tx.is_cjk(passage)
    cross = tx.is_cjk(claim) != cjk_passage or _primary(article.language) != _primary(article.claim_language)
    for name in names(claim):
        if cjk_passage and not tx.is_cjk(name) and not _hard_name(name):
            continue  # a Chinese name in Latin letters cannot be matched without a dictionary
        if not _name_in(name, passage_fold, passage_words, cross_language=cross):
            return f"the name “{name}” is not in its passage"
    if negated(claim) != negated(passage):
        side = "the claim" if negated(claim) else "the passage"
        return f"negation differs: only {side} says “not”"
    return ""


# ------------------------------------------------------------------- a whole card

HOOK_MAX = 90
NO_DATE = "no date given, and its sentences state none or several to read it from"
TLDR_PARTS = ("hook", "what_changed", "why_it_matters")


@dataclass
class Counts:
    kept: int = 0
    unsupported: int = 0


def article_text_of(source, *, claim_language: str = "") -> ArticleText:
    """The ArticleText of an enricher's SourceText."""
    return ArticleText(
        body=source.text,
        title=source.title,
        language=source.language,
        claim_language=claim_language,
        others=[text for _pk, _when, _title, text in source.story],
        sentences=list(source.sentences),
    )


def ground_card(draft, source, *, mode: str = "drop") -> tuple[object, Counts]:
    """Check every claim of a CardDraft against the SourceText it was written from.

    A claim citing sentence ids (`draft.cites` for the hook and TL;DR, `.sentences` on
    takeaways, implications and timeline entries) gets its passage built from the
    stored sentences; one carrying only a verbatim passage (an older card) is checked
    as it is. A claim that fails is taken off (with mode="mark": kept, marked
    unsupported) and recorded in `draft.dropped` with its reason. Every string is
    cleaned and bounded.
    """
    from aggregator.ingest.clean import strip_invisible
    from enrichment.backends.base import TimelineEntry

    def clean(value: str, limit: int) -> str:
        return tx.clip(strip_invisible(value or ""), limit)

    article = article_text_of(source, claim_language=draft.language)
    story_ids = {pk for pk, *_ in source.story}
    counts = Counts()
    draft.dropped = []

    def verdict(part: str, claim: str, passage: str, ids: list[int] | None, **kw) -> tuple[bool, str]:
        """(kept, passage): the passage is the stored sentences when ids are cited."""
        if ids:
            passage, reason = check_cited(claim, ids, article, **kw)
        else:
            reason = check_claim(claim, passage, article, **kw)
        if not reason:
            counts.kept += 1
            return True, passage
        counts.unsupported += 1
        draft.dropped.append(
            {"part": part, "text": clean(claim, 400), "passage": clean(passage, 800), "reason": reason}
            | ({"sentences": cited_ids(ids)} if ids else {})
        )
        return False, passage

    draft.title = clean(draft.title, 500)
    draft.hook = clean(draft.hook, HOOK_MAX)
    for name in ("what_changed", "why_it_matters", "what_next"):
        setattr(draft, name, clean(getattr(draft, name), 600))
    cites = {k: cited_ids(v) for k, v in (getattr(draft, "cites", None) or {}).items() if k in TLDR_PARTS}
    support = {k: v for k, v in (draft.support or {}).items() if k in TLDR_PARTS}
    for name in TLDR_PARTS:
        value = getattr(draft, name)
        if not value:
            continue
        ok, passage = verdict(name.replace("_", " "), value, support.get(name, ""), cites.get(name))
        if passage:
            support[name] = passage if cites.get(name) else clean(passage, 800)
        if not ok:
            support.pop(name, None)
            cites.pop(name, None)
            if mode != "mark":
                setattr(draft, name, "")
    draft.support = {k: v for k, v in support.items() if getattr(draft, k)}
    draft.cites = {k: v for k, v in cites.items() if getattr(draft, k) and k in draft.support}

    def check(items: list, part: str, claim_of, *, limit: int) -> list:
        kept = []
        for item in items:
            if isinstance(item, TimelineEntry) and item.article_id in story_ids and item.article_id:
                counts.kept += 1  # an article of this story we hold, linked
                kept.append(item)
                continue
            if item.article_id if isinstance(item, TimelineEntry) else False:
                item.article_id = None  # a link to an article that is not in this story
            date = item.date if isinstance(item, TimelineEntry) else ""
            ids = cited_ids(getattr(item, "sentences", None))
            if isinstance(item, TimelineEntry) and not date:
                # No date given, and its sentences state none or several to read it from.
                counts.unsupported += 1
                draft.dropped.append(
                    {"part": part, "text": clean(item.text, 400), "passage": "", "reason": NO_DATE}
                    | ({"sentences": ids} if ids else {})
                )
                continue
            ok, item.passage = verdict(part, claim_of(item), item.passage, ids, date=date)
            item.sentences = ids if ok else []
            if not ok:
                item.supported = False
                if mode != "mark":
                    continue
            kept.append(item)
        return kept[:limit]

    draft.takeaways = check(draft.takeaways, "takeaway", lambda t: t.text, limit=5)
    draft.implications = check(
        draft.implications, "implication", lambda i: f"{i.prediction} {i.reasoning}", limit=5
    )
    draft.timeline = check(draft.timeline, "timeline", lambda t: t.text, limit=12)
    # A cited passage is our stored sentences, shown whole; a quoted one is bounded.
    for item in draft.takeaways:
        item.text, item.passage = (
            clean(item.text, 400),
            item.passage if item.sentences else clean(item.passage, 800),
        )
    for item in draft.implications:
        item.prediction, item.reasoning = clean(item.prediction, 400), clean(item.reasoning, 400)
        item.passage = item.passage if item.sentences else clean(item.passage, 800)
    for item in draft.timeline:
        item.text, item.passage = (
            clean(item.text, 300),
            item.passage if item.sentences else clean(item.passage, 800),
        )
    draft.audiences = {
        slug: clean(reason, 200) for slug, reason in draft.audiences.items() if slug in source.audiences
    }
    return draft, counts
