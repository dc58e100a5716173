"""The card as Claude must return it. The API enforces the JSON shape; the lengths
and counts below it cannot, so Pydantic checks them on our side.

Every claim cites the article's sentences by their numbers (`"ids": [3, 4]`) instead of
copying them: the passage readers see is built from our stored sentences
(enrichment.sentences), so it cannot be invented or altered, and the answer is a
fraction of the output tokens.

Output tokens are the expensive ones, so the answer holds only what the model alone can
write (issue 13):
- no title when the article is already in the site's language: the card shows the
  publisher's headline (`title` is only the translation of a foreign headline);
- no timeline date when the cited sentence states a single date: we read it from there
  (enrichment.text.single_date, in enrichment.backends.claude.draft_from_card);
- audiences as their slugs only: the card shows the tags ("Who should care"), as the
  reference card does, not a reason for each;
- short keys (`ids`), and lengths bounded where the card has a visual limit anyway
  (the reference card's TL;DR lines, takeaways and timeline entries are one line or two).
What each field means is said once, in the system prompt (cached), not again in every
request's schema.

Answers written against the schema before (a batch submitted before a deploy) still
validate: `sentences` and `*_sentences` are read as `ids` and `*_ids`, audiences given as
{"slug", "reason"} keep their reasons, and a title or a date given when it could be left
out is used as given.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

ISO_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"

# Visual limits of the card (characters): the hook is one line; the TL;DR lines, a
# takeaway and a prediction one or two; a timeline entry and the next step one. The
# system prompt states each (tests/test_claude_schema.py checks it does).
LIMITS = {
    "title": 200,
    "hook": 90,
    "what_changed": 200,
    "why_it_matters": 200,
    "what_next": 140,
    "takeaway": 200,
    "prediction": 160,
    "reasoning": 200,
    "timeline": 120,
}


def Ids(name: str = "ids"):  # noqa: N802 - a field factory, read like a type
    # No maxItems: a claim citing too many sentences is dropped by grounding (and
    # counted), not the whole card refused. The older answers' name is still read.
    old = "sentences" if name == "ids" else name.replace("_ids", "_sentences")
    return Field(min_length=1, validation_alias=AliasChoices(name, old))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Takeaway(_Strict):
    text: str = Field(min_length=1, max_length=LIMITS["takeaway"])
    ids: list[int] = Ids()


class Implication(_Strict):
    prediction: str = Field(min_length=1, max_length=LIMITS["prediction"])
    reasoning: str = Field(min_length=1, max_length=LIMITS["reasoning"])
    ids: list[int] = Ids()


class TimelineItem(_Strict):
    date: str = Field(default="", pattern=r"^$|" + ISO_DATE)
    text: str = Field(min_length=1, max_length=LIMITS["timeline"])
    ids: list[int] = Ids()


class ClaudeCard(_Strict):
    title: str = Field(default="", max_length=LIMITS["title"])
    hook: str = Field(min_length=1, max_length=LIMITS["hook"])
    hook_ids: list[int] = Ids("hook_ids")
    what_changed: str = Field(min_length=1, max_length=LIMITS["what_changed"])
    what_changed_ids: list[int] = Ids("what_changed_ids")
    why_it_matters: str = Field(min_length=1, max_length=LIMITS["why_it_matters"])
    why_it_matters_ids: list[int] = Ids("why_it_matters_ids")
    what_next: str = Field(min_length=1, max_length=LIMITS["what_next"])
    category: str
    audiences: list[str] = Field(max_length=3)
    takeaways: list[Takeaway] = Field(min_length=3, max_length=5)
    implications: list[Implication] = Field(max_length=3)
    timeline: list[TimelineItem] = Field(max_length=8)
    # The reasons of an answer in the earlier shape (audiences as {"slug", "reason"}):
    # kept for the card, never asked for (not in the schema sent).
    audience_reasons: SkipJsonSchema[dict[str, str]] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _earlier_audiences(cls, data):
        items = data.get("audiences") if isinstance(data, dict) else None
        if not isinstance(items, list) or not any(isinstance(a, dict) for a in items):
            return data
        objects = [a for a in items if isinstance(a, dict)]
        return {
            **data,
            "audiences": [a.get("slug") if isinstance(a, dict) else a for a in items],
            "audience_reasons": {
                a["slug"]: str(a.get("reason") or "")[:200] for a in objects if isinstance(a.get("slug"), str)
            },
        }
