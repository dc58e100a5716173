"""The card as Claude must return it. The API enforces the JSON shape; the lengths
and counts below it cannot, so Pydantic checks them on our side."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ISO_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Takeaway(_Strict):
    text: str = Field(min_length=1, max_length=300, description="One takeaway, in the site's language.")
    passage: str = Field(
        min_length=8,
        max_length=600,
        description="The exact sentence(s) of the document it rests on, copied verbatim.",
    )


class Implication(_Strict):
    prediction: str = Field(min_length=1, max_length=300, description="What is likely to follow.")
    reasoning: str = Field(min_length=1, max_length=400, description="Why, from the document.")
    passage: str = Field(
        min_length=8, max_length=600, description="The passage of the document it rests on, verbatim."
    )


class TimelineItem(_Strict):
    date: str = Field(
        pattern=ISO_DATE, description="YYYY, YYYY-MM or YYYY-MM-DD, as precise as the text allows."
    )
    text: str = Field(min_length=1, max_length=240, description="What happened then, in the site's language.")
    passage: str = Field(
        min_length=8, max_length=600, description="The passage of the document stating it, verbatim."
    )


class Audience(_Strict):
    slug: str = Field(description="One of the audience slugs listed in the instructions.")
    reason: str = Field(min_length=1, max_length=200, description="Why this audience should care.")


class ClaudeCard(_Strict):
    title: str = Field(min_length=1, max_length=200, description="The headline in the site's language.")
    hook: str = Field(min_length=1, max_length=90, description="One line, why to read on.")
    hook_passage: str = Field(
        min_length=8,
        max_length=600,
        description="The sentence(s) of the document the hook rests on, verbatim.",
    )
    what_changed: str = Field(min_length=1, max_length=400)
    what_changed_passage: str = Field(
        min_length=8, max_length=600, description="The sentence(s) stating what changed, verbatim."
    )
    why_it_matters: str = Field(min_length=1, max_length=400)
    why_it_matters_passage: str = Field(
        min_length=8, max_length=600, description="The sentence(s) saying why it matters, verbatim."
    )
    what_next: str = Field(min_length=1, max_length=300, description="A concrete next step for the reader.")
    category: str = Field(description="One of the category slugs listed in the instructions.")
    audiences: list[Audience] = Field(max_length=3)
    takeaways: list[Takeaway] = Field(min_length=3, max_length=5)
    implications: list[Implication] = Field(max_length=3)
    timeline: list[TimelineItem] = Field(max_length=8)
