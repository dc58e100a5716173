"""Sanitizing what publishers send us: HTML we keep, and plain text we show."""

from __future__ import annotations

import html
import re

import lxml.etree
import lxml.html
import nh3

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "cite",
    "code",
    "dd",
    "del",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# C0/C1 controls (but tab, newline, carriage return), surrogates and non-characters
# (invalid in XML), invisible format characters used
# to hide text, and Unicode tag characters; none has a place in a headline or a card.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
    "\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff\U000e0000-\U000e007f]"
)
_SPACE = re.compile(r"\s+")


def strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


# Elements a reader of the page never sees: their text is no part of the article
# (nor a passage a claim may rest on). trafilatura already drops display:none and
# visibility:hidden; these it keeps.
_HIDDEN = (
    "//*[@hidden] | //*[@aria-hidden='true'] | //template"
    " | //*[contains(translate(@style, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ ', 'abcdefghijklmnopqrstuvwxyz'),"
    " 'display:none')]"
    " | //*[contains(translate(@style, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ ', 'abcdefghijklmnopqrstuvwxyz'),"
    " 'visibility:hidden')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' sr-only ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' visually-hidden ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' screen-reader-text ')]"
)
# A zero font size (0, 0px, 0.0em…) hides text; 0.9em does not (XPath 1.0 cannot tell
# the two apart, so this one is matched here).
_ZERO_FONT = re.compile(
    r"(?:^|;)\s*font-size\s*:\s*(?:0+(?:\.0*)?|\.0+)(?:[a-z]+|%)?\s*(?:!\s*important\s*)?(?:;|$)", re.I
)
_MAYBE_HIDDEN = re.compile(r"hidden|display|font-size|sr-only|<template", re.IGNORECASE)


def drop_hidden(tree) -> int:
    """Remove the hidden elements of an lxml.html tree (their tails stay); how many."""
    hidden = tree.xpath(_HIDDEN)
    hidden += [
        element
        for element in tree.xpath("//*[contains(translate(@style, 'FONTSIZE', 'fontsize'), 'font-size')]")
        if _ZERO_FONT.search(element.get("style", "")) and element not in hidden
    ]
    for element in hidden:
        if element.getparent() is not None:
            element.drop_tree()
    return len(hidden)


def drop_hidden_html(fragment: str) -> str:
    """`fragment` without its hidden elements (unchanged when it has none)."""
    if not fragment or not _MAYBE_HIDDEN.search(fragment):
        return fragment
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (ValueError, lxml.etree.ParserError):
        return fragment
    if not drop_hidden(root):
        return fragment
    return "".join([root.text or ""] + [lxml.html.tostring(child, encoding="unicode") for child in root])


def sanitize_html(fragment: str) -> str:
    """Publisher HTML reduced to inert structure: no script, style, event handler,
    image or frame, and links only to http(s)/mailto with rel=noopener nofollow."""
    if not fragment:
        return ""
    return nh3.clean(
        strip_invisible(drop_hidden_html(fragment)),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow ugc",
        strip_comments=True,
    ).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, paragraphs kept as blank-line breaks."""
    if not fragment:
        return ""
    marked = re.sub(r"(?i)<\s*(br|/p|/div|/li|/h[1-6]|/blockquote|/tr)\b[^>]*>", "\n\n", fragment)
    text = html.unescape(nh3.clean(strip_invisible(marked), tags=set()))
    paragraphs = (_SPACE.sub(" ", p).strip() for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


def one_line(fragment: str) -> str:
    """A headline or name: tags dropped, entities decoded, whitespace collapsed."""
    return _SPACE.sub(" ", html_to_text(fragment)).strip()


def text_line(value: str, content_type: str = "text/html") -> str:
    """One line of a feed's text construct. Plain text (an RSS title, an Atom
    type="text" title) is already text: "Why <script> tags break pages" is six words
    about HTML, not markup, so it is kept whole (templates escape it); only HTML
    content has its tags dropped."""
    if content_type == "text/plain":
        return _SPACE.sub(" ", strip_invisible(value)).strip()
    return one_line(value)
