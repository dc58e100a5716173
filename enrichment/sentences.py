"""An article's body as numbered sentences: split once (at extraction, or by the
backfill for older articles), stored on the article, and used for everything that cites
the text — the numbered document Claude reads, the ids every claim of a card cites, the
grounding check, and the passage readers see, which is always built from these stored
sentences (`passage_of`), never copied from a model's answer.

Splitting is sentencex's (rule-based, per language with fallbacks for ~300 languages:
"Jan. 5", "U.S.", "Dr.", "z. B.", "3. Juli", and 。！？ for Chinese and Japanese, a closing
quote kept with its sentence), one paragraph at a time; it is compiled (Rust) and splits
an article in well under a millisecond, where pysbd (used before, and left in stored
sentences: nothing is split again) took 25–30 ms of CPU an article. One gap of
sentencex's is closed here: it keeps a CJK full stop followed by a digit ("。2025年")
inside one sentence, as it would a decimal point. Sentences that only
repeat the headline and sentences addressed to an AI model (enrichment.injection) are
left out, so no id can point at them. Ids are 1-based: sentence 1 is `sentences[0]`.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from sentencex import segment

from enrichment import text as tx

logger = logging.getLogger(__name__)

MAX_SENTENCE_CHARS = 1200  # a "sentence" longer than this (a table, a list run together) is cut
MAX_SENTENCES = 400
# After a CJK sentence end (and any closing quotes or brackets) a new sentence starts,
# whatever follows: sentencex misses the ones that start with a digit.
_CJK_END = re.compile(
    r"(?<=[。！？])(?=[^。！？”’」』）》〉】\s])|(?<=[。！？][”’」』）》〉】])(?=[^。！？”’」』）》〉】\s])"
)


def splitter_language(language: str, text: str = "") -> str:
    """The splitter's language for an article's language code (en-US → en); CJK text
    whose language is unknown is split as Chinese, any other as English."""
    primary = (language or "").split("-")[0].split("_")[0].lower()
    if primary:
        return primary
    return "zh" if text and tx.is_cjk(text[:400]) else "en"


def _segment(language: str, para: str) -> list[str]:
    parts = []
    for part in segment(language, para):
        if "。" in part or "！" in part or "？" in part:
            parts.extend(_CJK_END.split(part))
        else:
            parts.append(part)
    return parts


def _flat(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split()).strip(" .!?。！？")


def _pieces(sentence: str) -> list[str]:
    """A run-on "sentence" cut at spaces into pieces of at most MAX_SENTENCE_CHARS."""
    out = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        cut = sentence.rfind(" ", 0, MAX_SENTENCE_CHARS)
        cut = cut if cut > MAX_SENTENCE_CHARS // 2 else MAX_SENTENCE_CHARS
        out.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*out, sentence] if sentence else out


def split(text: str, *, language: str = "", title: str = "") -> list[str]:
    """The sentences of `text`, in order, whitespace collapsed, paragraph breaks kept as
    sentence breaks; the headline's repetitions and sentences addressed to a model left out."""
    from enrichment.injection import why_flagged

    language = splitter_language(language, text)
    headline = _flat(title)
    out: list[str] = []
    for para in re.split(r"\n+", text or ""):
        para = " ".join(para.split())
        if not para:
            continue
        try:
            parts = _segment(language, para)
        except Exception:  # noqa: BLE001 - a splitter bug must not lose the paragraph
            logger.exception("sentencex could not split a paragraph; kept whole")
            parts = [para]
        for part in parts:
            for sentence in _pieces(" ".join(part.split())):
                if not sentence or (headline and _flat(sentence) == headline) or why_flagged(sentence):
                    continue
                out.append(sentence)
                if len(out) >= MAX_SENTENCES:
                    return out
    return out


def joiner(sentences: list[str]) -> str:
    """How cited sentences are joined into a passage: nothing between CJK sentences."""
    return "" if sentences and all(tx.is_cjk(s) for s in sentences) else " "


def passage_of(sentences: list[str], ids: list[int]) -> str:
    """The passage readers see for a claim citing `ids`: those stored sentences, in the
    article's order, each once. Ids that do not exist are ignored here (grounding drops
    a claim that cites one)."""
    chosen = [sentences[i - 1] for i in sorted(set(ids)) if 1 <= i <= len(sentences)]
    return joiner(chosen).join(chosen)


def numbered(sentences: list[str]) -> str:
    """The document Claude reads: one sentence a line, each after its id in brackets."""
    return "\n".join(f"[{n}] {s}" for n, s in enumerate(sentences, 1))


def sentences_of(article, *, save: bool = True) -> list[str]:
    """The stored sentences of an article; split (and stored) now if it has none yet,
    as for an article stored before sentences were (the backfill does the rest)."""
    if article.sentences or not article.body_text.strip():
        return list(article.sentences or [])
    found = split(article.body_text, language=article.language, title=article.title)
    if save and article.pk and found:
        type(article).objects.filter(pk=article.pk).update(sentences=found)
    article.sentences = found
    return found
