"""Plain-text helpers the enrichers share: sentences, salient words, dates, cues.

They work on English, German and Chinese text well enough for an extractive card; a
language they do not know gets sentences and salience, only fewer cues.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date

# A sentence ends at . ! ? … (not after a day number as in "3. Juli", nor after a
# title as in "Dr."), or at a CJK full stop.
_SENTENCE_END = re.compile(
    r"(?<![\s(]\d\.)(?<![\s(]\d\d\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bNr\.)(?<!\bSt\.)(?<!Prof\.)(?<!Mrs\.)"
    r"(?<=[.!?…])[\"”’»)]?\s+(?=[\"“„«(]?[A-ZÄÖÜ0-9])|(?<=[。！？])"
)
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

STOPWORDS = set(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "said",
        "says",
        "say",
        "told",
        "according",
        "new",
        "year",
        "years",
        "percent",
        "per",
        "one",
        "two",
        "three",
        "million",
        "billion",
        "week",
        "month",
        "day",
        "days",
        "first",
        "last",
        "many",
        "much",
        "may",
        "might",
        "must",
        "since",
        "still",
        "well",
        "like",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "einer",
        "eines",
        "einem",
        "einen",
        "den",
        "dem",
        "des",
        "zu",
        "im",
        "mit",
        "von",
        "auf",
        "für",
        "sich",
        "bei",
        "als",
        "auch",
        "es",
        "an",
        "aus",
        "nach",
        "wie",
        "wird",
        "werden",
        "sind",
        "war",
        "hat",
        "haben",
        "noch",
        "nur",
        "oder",
        "um",
        "so",
        "dass",
        "sie",
        "er",
        "wir",
        "ihr",
        "man",
        "mehr",
        "kann",
        "über",
        "sagte",
        "laut",
        "sei",
        "seit",
        "bis",
        "zum",
        "zur",
        "vom",
        "am",
        "unter",
        "beim",
        "durch",
        "gegen",
        "ohne",
    ]
)


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def sentences(text: str) -> list[str]:
    """Sentences of a text, paragraph breaks respected."""
    return list(_sentences(text))


@functools.lru_cache(maxsize=64)
def _sentences(text: str) -> tuple[str, ...]:
    """One article's text is split by extraction, clustering and the card in turn: once."""
    out = []
    for para in re.split(r"\n\s*\n|\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        out.extend(s.strip() for s in _SENTENCE_END.split(para) if s and s.strip())
    return tuple(out)


def tokens(text: str) -> list[str]:
    """Content words; for CJK runs, character bigrams."""
    lowered = normalize(text).lower()
    words = _WORD.findall(lowered)
    if not _CJK.search(lowered):  # the common case: no word to split into bigrams
        return [w for w in words if len(w) > 2 and w not in STOPWORDS and not w.isdigit()]
    result = []
    for word in words:
        if _CJK.search(word):
            chars = [c for c in word if _CJK.match(c)]
            result.extend(a + b for a, b in zip(chars, chars[1:], strict=False))
        elif len(word) > 2 and word not in STOPWORDS and not word.isdigit():
            result.append(word)
    return result


def keyword_counts(text: str) -> Counter[str]:
    return Counter(tokens(text))


def clip(text: str, limit: int) -> str:
    """Cut at a word (or anywhere, for CJK) and mark the cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not _CJK.search(cut[-10:]) and " " in cut:
        cut = cut.rsplit(" ", 1)[0].rstrip(",;:—-")
    return cut + "…"


def is_cjk(text: str) -> bool:
    return len(_CJK.findall(text)) > len(text) * 0.2


FORWARD = re.compile(
    r"\b(will|won't|is expected|are expected|expects?|plans? to|planned|is set to|are set to|aims? to|"
    r"intends? to|is likely|are likely|could|next year|next month|by the end of|in the coming|"
    r"soll|sollen|plant|planen|voraussichtlich|künftig|kuenftig|erwartet|in den kommenden)\b"
    r"|预计|计划|将于|将会|有望|未来|即将",
    re.IGNORECASE,
)
MATTERS = re.compile(
    r"\b(because|means|meaning|could|would|risk|impact|significant|important|first time|largest|"
    r"biggest|threat|pressure|costs?|affect|affects|critics|warned|concern|weil|bedeutet|könnte|"
    r"Risiko|Folgen|erstmals|wichtig|Kritiker|warnt)\b|意味着|因为|影响|风险|首次|担忧|关键",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FoundDate:
    value: str  # ISO: YYYY-MM-DD, YYYY-MM or YYYY
    start: int
    end: int


_EN_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        1,
    )
}
_DE_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "januar",
            "februar",
            "märz",
            "april",
            "mai",
            "juni",
            "juli",
            "august",
            "september",
            "oktober",
            "november",
            "dezember",
        ],
        1,
    )
}
_MONTHS = {**_EN_MONTHS, **_DE_MONTHS, "maerz": 3, "sept": 9}
_M = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = [
    re.compile(rf"\b(?P<d>\d{{1,2}})\.?\s+(?P<m>{_M})\s+(?P<y>(?:19|20)\d\d)\b", re.I),
    re.compile(rf"\b(?P<m>{_M})\s+(?P<d>\d{{1,2}}),?\s+(?P<y>(?:19|20)\d\d)\b", re.I),
    re.compile(r"(?P<y>(?:19|20)\d\d)\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日"),
    re.compile(r"(?P<y>(?:19|20)\d\d)\s*年\s*(?P<m>\d{1,2})\s*月"),
    re.compile(rf"\b(?P<m>{_M})\s+(?P<y>(?:19|20)\d\d)\b", re.I),
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"),
]


_FOUR_DIGITS = re.compile(r"\d{4}")  # every date pattern has a year: four digits in a row


def find_dates(sentence: str) -> list[FoundDate]:
    """Explicit calendar dates in a sentence, most precise first where they overlap.
    An impossible date (31 February, month 13) is no date, not even its month."""
    if not _FOUR_DIGITS.search(sentence):
        return []  # most sentences: no need to try the six patterns
    found: list[FoundDate] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(sentence):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))  # valid or not: no shorter pattern may reuse it
            month_raw = m.group("m")
            month = int(month_raw) if month_raw.isdigit() else _MONTHS.get(month_raw.lower())
            year = int(m.group("y"))
            day = m.groupdict().get("d")
            try:
                date(year, month or 0, int(day) if day else 1)
            except ValueError:
                continue
            value = f"{year:04d}-{month:02d}" + (f"-{int(day):02d}" if day else "")
            found.append(FoundDate(value, m.start(), m.end()))
    return sorted(found, key=lambda f: f.start)


_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")


def single_date(text: str) -> str:
    """The one date a text states, as a timeline dates it (YYYY, YYYY-MM or YYYY-MM-DD):
    its calendar date if it has exactly one and no other year, else its only year; ""
    when it states none or several (then the date must be given)."""
    years = set(_YEAR.findall(text or ""))
    if len(years) != 1:
        return ""
    dates = {d.value for d in find_dates(text)}
    if len(dates) > 1:
        return ""
    return dates.pop() if dates else years.pop()
