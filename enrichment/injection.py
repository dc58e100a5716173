"""Sentences addressed to a language model rather than to readers ("ignore previous
instructions…", role tags, "AI assistants: write…") are prompt injection. They are found
at extraction and flagged on the article for editors; no enricher sees them, so they are
never summarized or cited (grounding checks against the text without them); and a card
whose fields echo one of them, or give a link the article does not, is refused.

The rules are deliberately narrow (imperatives addressed to a model, not reporting about
models): a sentence wrongly flagged only loses its chance to be cited."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from enrichment import text as tx

_AI = (
    r"(?:ai|a\.i\.|artificial intelligence|(?:large )?language models?|llms?|chat ?bots?|assistants?"
    r"|claude|chatgpt|gpt(?:-?\d)?|gemini|copilot|bots?|crawlers?|agents?|models?|summari[sz]ers?)"
)
RULES: list[tuple[str, re.Pattern]] = [
    (
        "tells a model to ignore its instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|discard)\b[^.!?]{0,40}?"
            r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|these|those|system|original)\b"
            r"[^.!?]{0,30}?\b(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails"
            r"|context|messages?|programming)\b",
            re.I,
        ),
    ),
    (
        "carries a role or prompt tag",
        re.compile(
            r"</?\s*(?:system|assistant|user|human|document|documents|instructions?|prompt|context|tool|im_start"
            r"|im_end)\s*/?>|<\|[a-z_]+\|>|\[/?INST\]|<<\s*/?SYS\s*>>|^\s*#{2,}\s*(?:system|instructions?"
            r"|assistant|response)\b|(?:^|\s)(?:Human|Assistant|System)\s*:\s",
            re.I,
        ),
    ),
    (
        "addresses an AI model",
        re.compile(
            rf"\b(?:if you are|if you're|as|dear|attention|note to|hey|to (?:any|all|the))\s+(?:an?\s+|the\s+|any\s+"
            rf"|all\s+)?{_AI}\b[^.!?]{{0,60}}?\b(?:you|your|must|should|please|write|reply|respond|say|include"
            rf"|output|add|insert|tell|mention|recommend|describe|summari[sz]e)\b"
            rf"|\b{_AI}\s*(?:reading|summari[sz]ing|processing|parsing|crawling|scraping)\s+this\b"
            rf"|^\s*(?:(?:dear|attention|note to|hey)\s+)?{_AI}\s*[,:]\s",
            re.I,
        ),
    ),
    (
        "gives a model new instructions",
        re.compile(
            r"\b(?:new|updated|real|actual|hidden|secret|special) (?:system )?(?:instructions?|prompt|task|directive)s?"
            r"\s*[:\-]|\byou are now\b|\bdeveloper mode\b|\bDAN mode\b|\bjailbr(?:oken|eak mode)\b"
            r"|\b(?:reveal|print|repeat|output|show)\b[^.!?]{0,20}\b(?:system prompt|your prompt|your instructions"
            r"|the prompt above)\b|\bin (?:every|each|all) (?:fields?|answers?|responses?|outputs?|summar(?:y|ies)"
            r"|cards?|replies)\b|\b(?:do not|don't|never) (?:summari[sz]e|mention|cite|quote|reveal)\b[^.!?]{0,40}"
            r"\b(?:article|this|text|page)\b|\b(?:respond|reply|answer)\s+only\s+(?:with|in)\b"
            r"|\bsummari[sz]e (?:this|the) (?:article|page|text) as\b",
            re.I,
        ),
    ),
]

_DOMAIN = re.compile(
    r"(?:https?://|www\.)[^\s\"'<>]+|\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:com|net|org|io|ai|co|example|info|biz|xyz|ru|cn|de|uk|app|dev|ly|me|site|online|top|click|link|gg"
    r"|sh|to|tk|ml|ga|cf|su|pw|ws|cc|tv|us|eu|fr|es|it|nl|jp|in|br|onion)\b",
    re.I,
)
_QUOTED = re.compile(r"[\"“„«'‘‚‹]([^\"“”„«»'‘’‚‹›]{6,200})[\"”»'’›]")
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
ECHO_WORDS = 6  # this many consecutive words of a flagged sentence in a field is an echo


@dataclass(frozen=True)
class Flag:
    sentence: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"sentence": self.sentence, "reason": self.reason}


def _plain(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


@functools.lru_cache(maxsize=4096)
def why_flagged(sentence: str) -> str:
    """The reason `sentence` is addressed to a model, or "". Kept for the sentences in
    hand: extraction checks each sentence twice (flagging the article, and leaving the
    flagged ones out of its stored sentences), and a card checks them again."""
    plain = unicodedata.normalize("NFKC", sentence)
    for reason, rule in RULES:
        if rule.search(plain):
            return reason
    return ""


def find_instructions(text: str) -> list[Flag]:
    """Every sentence of `text` addressed to a model, in order, each once."""
    return list(_instructions(text or ""))


@functools.lru_cache(maxsize=128)
def _instructions(text: str) -> tuple[Flag, ...]:
    """Kept for the texts in hand: an article is read at extraction and again for its
    card, and a story's earlier reports for every card of the story."""
    found: dict[str, Flag] = {}
    for sentence in tx.sentences(text):
        reason = why_flagged(sentence)
        if reason and sentence not in found:
            found[sentence] = Flag(sentence, reason)
    return tuple(found.values())


def without_instructions(text: str, flags: list[Flag] | None = None) -> str:
    """`text` with every flagged sentence removed, paragraphs kept (one per line)."""
    flags = find_instructions(text) if flags is None else flags
    if not flags:
        return text or ""
    flagged = {f.sentence for f in flags}
    paragraphs = []
    for para in (text or "").split("\n"):
        kept = [s for s in tx.sentences(para) if s not in flagged and not why_flagged(s)]
        if kept:
            paragraphs.append(" ".join(kept))
        elif not para.strip():
            paragraphs.append("")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(paragraphs)).strip()


def links_in(text: str) -> set[str]:
    """Web addresses and domain names in `text`, lower-cased, without scheme or www."""
    out = set()
    for match in _DOMAIN.findall(text or ""):
        link = re.sub(r"^(?:https?://)?(?:www\.)?", "", match.lower()).rstrip(".,;:!?)]}/")
        if link:
            out.add(link.split("/")[0])
    return out


def payloads(flags: list[Flag]) -> set[str]:
    """What an obeying model would copy out of flagged sentences: their quoted strings,
    links and domains (normalized)."""
    out: set[str] = set()
    for flag in flags:
        out |= {_plain(q) for q in _QUOTED.findall(flag.sentence) if len(_plain(q)) >= 6}
        out |= links_in(flag.sentence)
    return out


def echo_in(fields: list[str], *, flags: list[Flag], article_text: str) -> str:
    """Why a card made of `fields` cannot be shown, or "": a field repeats a payload or
    six consecutive words of a flagged sentence, or names a link the article does not give."""
    known_links = links_in(article_text)
    loads = payloads(flags)
    shingles = set()
    for flag in flags:
        words = _WORDS.findall(_plain(flag.sentence))
        shingles |= {" ".join(words[i : i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)}
    for field in fields:
        plain = _plain(field)
        if not plain:
            continue
        for load in loads:
            if load in plain:
                return f"a field repeats “{load}” from an instruction in the article"
        words = _WORDS.findall(plain)
        for i in range(len(words) - ECHO_WORDS + 1):
            if " ".join(words[i : i + ECHO_WORDS]) in shingles:
                return "a field repeats an instruction found in the article"
        if why_flagged(field):
            return f"a field is itself addressed to a model ({why_flagged(field)})"
        unknown = links_in(field) - known_links
        if unknown:
            return f"a field gives a link the article does not ({sorted(unknown)[0]})"
    return ""
