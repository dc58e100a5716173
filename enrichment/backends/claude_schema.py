"""The card as Claude must return it. The API enforces the JSON shape; the lengths
and counts below it cannot, so Pydantic checks them on our side.

Every claim cites the article's sentences by their numbers (`[3, 4]`) instead of copying
them: the passage readers see is built from our stored sentences (enrichment.sentences),
so it cannot be invented or altered, and the answer is a fraction of the output tokens."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from enrichment.grounding import MAX_CITED

ISO_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"


def Sentences(what: str = "it rests on"):  # noqa: N802 - a field factory, read like a type
    # No maxItems: a claim citing too many sentences is dropped by grounding (and
    # counted), not the whole card refused.
    return Field(
        min_length=1,
        description=f"Numbers [n] of the sentences {what}, e.g. [3, 4]; at most {MAX_CITED}.",
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Takeaway(_Strict):
    text: str = Field(min_length=1, max_length=300, description="One takeaway, in the site's language.")
    sentences: list[int] = Sentences()


class Implication(_Strict):
    prediction: str = Field(min_length=1, max_length=300, description="What is likely to follow.")
    reasoning: str = Field(min_length=1, max_length=400, description="Why, from the document.")
    sentences: list[int] = Sentences()


class TimelineItem(_Strict):
    date: str = Field(
        pattern=ISO_DATE, description="YYYY, YYYY-MM or YYYY-MM-DD, as precise as the text allows."
    )
    text: str = Field(min_length=1, max_length=240, description="What happened then, in the site's language.")
    sentences: list[int] = Sentences("stating it")


class Audience(_Strict):
    slug: str = Field(description="One of the audience slugs listed in the instructions.")
    reason: str = Field(min_length=1, max_length=200, description="Why this audience should care.")


class ClaudeCard(_Strict):
    title: str = Field(min_length=1, max_length=200, description="The headline in the site's language.")
    hook: str = Field(min_length=1, max_length=90, description="One line, why to read on.")
    hook_sentences: list[int] = Sentences("the hook rests on")
    what_changed: str = Field(min_length=1, max_length=400)
    what_changed_sentences: list[int] = Sentences("stating what changed")
    why_it_matters: str = Field(min_length=1, max_length=400)
    why_it_matters_sentences: list[int] = Sentences("saying why it matters")
    what_next: str = Field(min_length=1, max_length=300, description="A concrete next step for the reader.")
    category: str = Field(description="One of the category slugs listed in the instructions.")
    audiences: list[Audience] = Field(max_length=3)
    takeaways: list[Takeaway] = Field(min_length=3, max_length=5)
    implications: list[Implication] = Field(max_length=3)
    timeline: list[TimelineItem] = Field(max_length=8)
