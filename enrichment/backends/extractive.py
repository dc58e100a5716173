"""The extractive enricher: offline, deterministic, immediate.

Every part of the card is a sentence of the article (or a clause of one), so nothing on
it is invented, and each sentence is used once: the lead says what changed, a sentence
that gives a reason or a consequence says why it matters, a short salient one is the
hook, forward-looking sentences are implications, dated ones the timeline, and the most
salient of the rest the takeaways (a short clause, with its sentence as the passage). A
part the article does not support is left out, never filled with a stock line.
Categories and audiences come from the taxonomy's keywords found in the text (keyword
groups such as ``research|forschung|研究`` match in any language and are named in the
first, the site's, language).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Callable

from enrichment import grounding
from enrichment import text as tx
from enrichment.backends.base import CardDraft, Implication, SourceText, Takeaway, TimelineEntry

HOOK_MAX = 90
CLAIM_MAX = 140
TAKEAWAYS = 5
IMPLICATIONS = 2

# Sentences that tell the reader to do something: the only "what to do next" an
# extractive card may show, and only when the article says it.
ADVICE = re.compile(
    r"\b(should|are advised|is advised|recommends?|recommended|urged?|must update|can apply|"
    r"deadline|sollten|empfiehlt|empfohlen|raten|können sich .* bewerben)\b|建议|应当|敦促|可申请|截止",
    re.IGNORECASE,
)
# Where a long sentence may be cut to a shorter claim: before an attribution or a
# second clause.
_CLAUSE_CUT = re.compile(
    r",\s+(?:the \w+ said|said|says|according to|which|while|after|as|but|and|wie|sagte|teilte|laut|"
    r"während|nachdem|und|aber|so)\b|;\s+|\s+[—–]\s+|，(?:但|而|并|据)|；",
    re.IGNORECASE,
)


def keyword_groups(spec: str) -> list[list[str]]:
    """ "research|forschung|研究, university" → [["research", "forschung", "研究"], ["university"]]."""
    groups = []
    for part in spec.split(","):
        alternatives = [a.strip().lower() for a in part.split("|") if a.strip()]
        if alternatives:
            groups.append(alternatives)
    return groups


_WORD_RUN = re.compile(r"\w+")


@functools.lru_cache(maxsize=4)
def _word_runs(text_lower: str) -> frozenset[str]:
    """The text's runs of word characters: a keyword made of word characters only is
    found as a whole word exactly when it is one of them. Kept for the few texts in
    hand (each article's text is matched against every category's and audience's spec)."""
    return frozenset(_WORD_RUN.findall(text_lower))


@functools.lru_cache(maxsize=512)
def _matcher(word: str) -> Callable[[str], bool]:
    """How to find `word` in a lowercased text: a CJK word anywhere, a plain word as one
    of the text's words, any other (with a space, a dot, a hyphen) by a pattern."""
    if tx.is_cjk(word):
        return lambda text_lower: word in text_lower
    if _WORD_RUN.fullmatch(word):
        return lambda text_lower: word in _word_runs(text_lower)
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)")
    return lambda text_lower: pattern.search(text_lower) is not None


def _found(text_lower: str, word: str) -> bool:
    return _matcher(word)(text_lower)


@functools.lru_cache(maxsize=256)
def _groups(spec: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(group) for group in keyword_groups(spec))


def matched_topics(text_lower: str, spec: str) -> list[str]:
    """The keyword groups found in the text, each named by its first form."""
    names = []
    for group in _groups(spec):
        if group[0] not in names and any(_found(text_lower, word) for word in group):
            names.append(group[0])
    return names


_STARTS_MIDWAY = re.compile(r"(?:But|And|Others|It|This|That|They|He|She|Aber|Und|Das|Er|Sie|Es|但|而)\b")


def _unbalanced(text: str) -> bool:
    """A quotation opened and not closed (or closed and not opened): a piece of one."""
    pairs = [("„", "“")] if "„" in text else [("“", "”")]  # German „…“, English “…”
    pairs += [("«", "»"), ("「", "」")]
    return any(text.count(a) != text.count(b) for a, b in pairs) or text.count('"') % 2 == 1


def width(text: str) -> int:
    """Display width: a CJK character takes the room of two Latin ones."""
    return len(text) + len(tx._CJK.findall(text))


def _key(sentence: str) -> str:
    return grounding.normalize(sentence).rstrip(".!?。！？…")


def short_claim(sentence: str) -> str:
    """The sentence's longest leading clause that fits CLAIM_MAX and stands on its own (a
    full clause, the same negation) when the sentence is longer; else the sentence."""
    if width(sentence) <= CLAIM_MAX:
        return sentence
    cuts = [m.start() for m in _CLAUSE_CUT.finditer(sentence)]
    if tx.is_cjk(sentence):
        cuts += [m.start() for m in re.finditer("，", sentence)]
    best = ""
    for cut in sorted(set(cuts)):
        head = sentence[:cut].rstrip(" ,;—–，；")
        if width(head) > CLAIM_MAX:
            break
        if grounding.is_clause(head) and grounding.negated(head) == grounding.negated(sentence):
            best = head
    if not best:
        return sentence
    return best + ("。" if tx.is_cjk(best) else ".")


class ExtractiveEnricher:
    name = "extractive"

    def enrich(self, source: SourceText) -> CardDraft:
        """Every claim cites the article's stored sentences by id, as Claude's do, so
        both backends go through one grounding path."""
        body = source.text or ""
        title_key = _key(source.title)
        sents: list[str] = []
        ids: list[int] = []  # the stored sentence id of each of `sents`
        seen = set()
        for n, s in enumerate(source.sentences, 1):
            key = _key(s)
            if key == title_key or key in seen or not grounding.is_clause(s):
                continue
            seen.add(key)
            sents.append(s)
            ids.append(n)
        draft = CardDraft(backend=self.name, language=source.language)
        text_lower = f"{source.title}\n{body}".lower()
        draft.category = self._category(source, text_lower)
        draft.audiences = self._audiences(source, text_lower)
        if not sents:
            return draft
        words = tx.keyword_counts(f"{source.title}\n{body}")
        title_words = set(tx.tokens(source.title))
        scores = self._scores(sents, words, title_words)
        ranked = sorted(range(len(sents)), key=lambda i: (-scores[i], i))
        used: set[int] = set()

        def take(i: int) -> str:
            used.add(i)
            return sents[i]

        draft.what_changed = take(0)
        draft.cites["what_changed"] = [ids[0]]
        floor = 0.6 * sorted(scores)[len(scores) // 2]
        salient = [i for i in ranked if scores[i] >= floor]
        hook = self._hook(sents, salient, used)
        if hook is not None:
            i, line = hook
            draft.hook = line
            take(i)
            draft.cites["hook"] = [ids[i]]
        why = next((i for i in ranked if i not in used and tx.MATTERS.search(sents[i])), None)
        if why is not None:
            draft.why_it_matters = take(why)
            draft.cites["why_it_matters"] = [ids[why]]
        advice = next((i for i in range(len(sents)) if i not in used and ADVICE.search(sents[i])), None)
        if advice is not None:
            draft.what_next = take(advice)

        forward = [
            i
            for i in range(len(sents))
            if i not in used and tx.FORWARD.search(sents[i]) and not self._only_past(sents[i], source)
        ]
        draft.implications = [
            Implication(prediction=short_claim(take(i)), reasoning="", sentences=[ids[i]])
            for i in forward[:IMPLICATIONS]
        ]
        draft.timeline = self._timeline(source, sents, ids, used)
        # The most salient of the rest; a sentence far below the article's typical
        # salience (a boilerplate line) is no takeaway.
        draft.takeaways = [
            Takeaway(text=short_claim(sents[i]), sentences=[ids[i]]) for i in salient if i not in used
        ][:TAKEAWAYS]
        return draft

    @staticmethod
    def _hook(sents: list[str], ranked: list[int], used: set[int]) -> tuple[int, str] | None:
        """A short salient sentence, or the first clause of one, that is not the lead:
        under HOOK_MAX characters whole, never cut mid-sentence with an ellipsis."""
        lead = _key(sents[0])
        fits = [
            i
            for i in ranked
            if i not in used
            and width(sents[i]) <= HOOK_MAX
            and not lead.startswith(_key(sents[i])[:40])
            # not a piece of a quotation, nor a sentence that leans on the one before
            and not _unbalanced(sents[i])
            and not _STARTS_MIDWAY.match(sents[i])
        ]
        # A dated sentence tells history: the timeline's, unless nothing else fits.
        undated = [i for i in fits if not tx.find_dates(sents[i])]
        best = (undated or fits)[:1]
        return (best[0], sents[best[0]]) if best else None

    @staticmethod
    def _scores(sents: list[str], words: Counter[str], title_words: set[str]) -> list[float]:
        scores = []
        for i, s in enumerate(sents):
            toks = set(tx.tokens(s))
            if not toks:
                scores.append(0.0)
                continue
            weight = sum(math.log1p(words[t]) for t in toks) / math.sqrt(len(toks))
            weight += 0.5 * len(toks & title_words)
            weight *= 1.0 + 0.5 / (1 + i)  # news puts what matters first
            scores.append(weight)
        return scores

    @staticmethod
    def _only_past(sentence: str, source: SourceText) -> bool:
        """A sentence dated only before publication reports history, not a prospect."""
        dates = tx.find_dates(sentence)
        if not dates or source.published_at is None:
            return False
        published = source.published_at.date().isoformat()
        return all(d.value < published[: len(d.value)] for d in dates)

    @staticmethod
    def _timeline(
        source: SourceText, sents: list[str], ids: list[int], used: set[int]
    ) -> list[TimelineEntry]:
        """Earlier articles of the story (linked), then the article's own dated sentences
        not used elsewhere on the card; one entry per event."""
        entries: dict[str, TimelineEntry] = {}
        for article_id, published, title, _text in source.story:
            if published:
                key = _key(title)
                entries.setdefault(
                    key, TimelineEntry(date=published.date().isoformat(), text=title, article_id=article_id)
                )
        for i, s in enumerate(sents):
            if i in used:
                continue
            found = tx.find_dates(s)[:1]
            if found and _key(s) not in entries:
                used.add(i)
                entries[_key(s)] = TimelineEntry(date=found[0].value, text=short_claim(s), sentences=[ids[i]])
        return sorted(entries.values(), key=lambda e: e.date)[:8]

    @staticmethod
    def _category(source: SourceText, text_lower: str) -> str:
        """The category whose keywords the article's text matches most; the source's own
        only when the text matches none."""
        scored = [(len(matched_topics(text_lower, spec)), slug) for slug, spec in source.categories.items()]
        scored = [(n, slug) for n, slug in scored if n]
        if not scored:
            return source.category_hint
        best = max(n for n, _slug in scored)
        leaders = [slug for n, slug in scored if n == best]
        return source.category_hint if source.category_hint in leaders else sorted(leaders)[0]

    @staticmethod
    def _audiences(source: SourceText, text_lower: str) -> dict[str, str]:
        scored = []
        for slug, spec in source.audiences.items():
            topics = matched_topics(text_lower, spec)
            if len(topics) >= 2:
                scored.append((len(topics), slug, topics))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return {slug: "It is about " + ", ".join(topics[:4]) + "." for _n, slug, topics in scored[:3]}
