"""The extractive enricher: offline, deterministic, immediate.

Every part of the card is a sentence of the article (or a rule over its words), so
nothing on it is invented: takeaways are the most salient sentences, implications the
forward-looking ones, the timeline the dated ones. It says plainly that it is an
automatic summary.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from enrichment import text as tx
from enrichment.backends.base import CardDraft, Implication, SourceText, Takeaway, TimelineEntry

HOOK_MAX = 90
NEXT_STEPS = {
    "developers": "Check whether this changes the tools, models or APIs you build on.",
    "executives": "Weigh what this means for your strategy, suppliers and competitors.",
    "investors": "Review your exposure to the companies and markets involved.",
    "policy": "Follow the rule-making and who it will bind, and when.",
    "researchers": "Read the underlying work and look at how the results were measured.",
    "creators": "Consider how this affects the tools and rights in your craft.",
    "security-ops": "Review your own dependencies and incident plans in light of this.",
}
DEFAULT_NEXT = "Read the publisher's full article before acting on this summary."


def _keywords(spec: str) -> list[str]:
    return list(dict.fromkeys(k.strip().lower() for k in spec.split(",") if k.strip()))


def _matches(text_lower: str, keywords: list[str]) -> list[str]:
    """The keywords that occur as whole words (or anywhere, for CJK)."""
    return [
        kw
        for kw in keywords
        if (kw in text_lower if tx.is_cjk(kw) else re.search(rf"(?<!\w){re.escape(kw)}(?!\w)", text_lower))
    ]


class ExtractiveEnricher:
    name = "extractive"

    def enrich(self, source: SourceText) -> CardDraft:
        body = source.text or ""
        title_key = " ".join(source.title.split()).casefold()
        sents = [
            s
            for s in tx.sentences(body)
            if (len(s) >= 25 or tx.is_cjk(s) and len(s) >= 10) and s.casefold() != title_key
        ]
        draft = CardDraft(backend=self.name, language=source.language)
        if not sents:
            draft.category = source.category_hint
            return draft
        words = tx.keyword_counts(f"{source.title}\n{body}")
        title_words = set(tx.tokens(source.title))
        scores = self._scores(sents, words, title_words)

        lead = sents[0]
        draft.what_changed = tx.clip(lead, 320)
        draft.hook = tx.clip(lead, HOOK_MAX)
        ranked = sorted(range(len(sents)), key=lambda i: (-scores[i], i))
        why = next((sents[i] for i in ranked if i != 0 and tx.MATTERS.search(sents[i])), None)
        if why is None and len(ranked) > 1:
            why = sents[next(i for i in ranked if i != 0)]
        draft.why_it_matters = tx.clip(why, 320) if why else ""

        chosen = sorted(i for i in ranked[:5] if i != 0) or ranked[:1]
        draft.takeaways = [Takeaway(text=tx.clip(sents[i], 300), passage=sents[i]) for i in chosen[:5]]
        if len(draft.takeaways) < 3 and 0 not in chosen:
            draft.takeaways.insert(0, Takeaway(text=tx.clip(lead, 300), passage=lead))

        forward = [s for s in sents if tx.FORWARD.search(s) and not self._only_past(s, source)]
        draft.implications = [
            Implication(prediction=tx.clip(s, 300), reasoning="", passage=s) for s in forward[:3]
        ]
        draft.timeline = self._timeline(source, sents)

        text_lower = f"{source.title}\n{body}".lower()
        draft.category = self._category(source, text_lower)
        draft.audiences = self._audiences(source, text_lower)
        first = next(iter(draft.audiences), "")
        draft.what_next = NEXT_STEPS.get(first, DEFAULT_NEXT)
        return draft

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
    def _timeline(source: SourceText, sents: list[str]) -> list[TimelineEntry]:
        entries: dict[tuple[str, str], TimelineEntry] = {}
        for article_id, published, title, _text in source.story:
            if published:
                key = (published.date().isoformat(), title)
                entries[key] = TimelineEntry(date=key[0], text=title, article_id=article_id)
        for s in sents:
            for found in tx.find_dates(s)[:1]:
                entries.setdefault(
                    (found.value, s), TimelineEntry(date=found.value, text=tx.clip(s, 240), passage=s)
                )
        ordered = sorted(entries.values(), key=lambda e: e.date)
        return ordered[:8]

    @staticmethod
    def _category(source: SourceText, text_lower: str) -> str:
        best, best_hits = source.category_hint, 0
        for slug, spec in source.categories.items():
            hits = len(_matches(text_lower, _keywords(spec)))
            if hits > best_hits + (1 if best == source.category_hint and best else 0):
                best, best_hits = slug, hits
        return best

    @staticmethod
    def _audiences(source: SourceText, text_lower: str) -> dict[str, str]:
        scored = []
        for slug, spec in source.audiences.items():
            hits = _matches(text_lower, _keywords(spec))
            if len(hits) >= 2:
                scored.append((len(hits), slug, hits))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return {slug: "The article mentions " + ", ".join(hits[:4]) + "." for _n, slug, hits in scored[:3]}
