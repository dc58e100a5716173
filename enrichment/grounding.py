"""Is a claim's passage really in the text we hold? Tolerant of whitespace, quotes,
dashes and case; nothing else."""

from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans(
    {c: '"' for c in "“”„‟«»″"} | {c: "'" for c in "‘’‚‛‹›′`´"} | {c: "-" for c in "‐‑‒–—―−"}
)
_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\s\"'.,;:!?…-]+|[\s\"'.,;:!?…-]+$")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES).casefold()
    return _SPACE.sub(" ", text).strip()


def passage_in(passage: str, text: str) -> bool:
    """True when `passage` (at least a few words long) occurs in `text`."""
    needle = _EDGE.sub("", normalize(passage))
    if len(needle) < 8:
        return False
    return needle in normalize(text)
