from __future__ import annotations

import datetime as dt

from django.db import models
from django.urls import reverse


class Insight(models.Model):
    """What the machine inferred about one article: every part of the card that the
    publisher did not write. Each takeaway, implication and timeline entry carries the
    passage of the source it rests on."""

    article = models.OneToOneField("aggregator.Article", on_delete=models.CASCADE, related_name="insight")
    backend = models.CharField(max_length=40, help_text="Which enricher wrote it: extractive, claude.")
    model_name = models.CharField(max_length=100, blank=True)
    language = models.CharField(max_length=16, blank=True, help_text="The language the card is written in.")
    title = models.CharField(max_length=500, blank=True, help_text="The headline in the site's language.")
    hook = models.CharField(max_length=200, blank=True)
    what_changed = models.TextField(blank=True)
    why_it_matters = models.TextField(blank=True)
    what_next = models.TextField(blank=True)
    takeaways = models.JSONField(default=list, blank=True, help_text='[{"text", "passage", "sentences"}]')
    implications = models.JSONField(
        default=list, blank=True, help_text='[{"prediction", "reasoning", "passage"}]'
    )
    timeline = models.JSONField(
        default=list, blank=True, help_text='[{"date", "text", "passage", "article_id"}]'
    )
    audience_reasons = models.JSONField(default=dict, blank=True, help_text='{"audience slug": "reason"}')
    support = models.JSONField(
        default=dict,
        blank=True,
        help_text='The passages the hook and TL;DR rest on: {"hook", "what_changed", "why_it_matters"}.',
    )
    support_sentences = models.JSONField(
        default=dict,
        blank=True,
        help_text='The article\'s sentence ids those passages are: {"hook": [2], "what_changed": [1]}.',
    )
    dropped = models.JSONField(
        default=list,
        blank=True,
        help_text='Claims grounding took off the card: [{"part", "text", "passage", "reason"}].',
    )
    related_ids = models.JSONField(default=list, blank=True, help_text="Ids of related articles, best first.")
    error = models.TextField(blank=True, help_text="Why the preferred enricher could not write this card.")
    generated_at = models.DateTimeField(help_text="When the machine wrote it.")
    updated_at = models.DateTimeField(auto_now=True)

    # Grounding: claims kept because their passage was found, and claims dropped (or,
    # with GROUNDING_MODE=mark, shown marked unsupported) because it was not.
    grounded_claims = models.PositiveIntegerField(default=0)
    unsupported_claims = models.PositiveIntegerField(default=0)

    # Claude: where this article stands, and what writing its card cost.
    class Claude(models.TextChoices):
        NONE = "", "Not sent"
        QUEUED = "queued", "Queued for a batch"
        BATCHED = "batched", "In a batch"
        DONE = "done", "Written by Claude"
        RETRY = "retry", "Will retry"
        FAILED = "failed", "Failed"
        CAPPED = "capped", "Skipped: daily spending cap"
        SHARED = "shared", "Copied from a syndicated twin"

    reviewed_at = models.DateTimeField(null=True, blank=True, help_text="When an editor checked this card.")
    reviewed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    claude_status = models.CharField(
        max_length=16, choices=Claude.choices, default="", blank=True, db_index=True
    )
    retry_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    batch_id = models.CharField(max_length=100, blank=True, db_index=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)

    class Meta:
        indexes = [models.Index(fields=["backend", "generated_at"])]

    def __str__(self) -> str:
        return f"Insight for {self.article}"

    @property
    def author_label(self) -> str:
        return self.model_name if self.backend != "extractive" else "automatic summary"

    @property
    def has_tldr(self) -> bool:
        return bool(self.what_changed or self.why_it_matters or self.what_next)

    @property
    def has_deep_insight(self) -> bool:
        return bool(self.takeaways or self.implications)


class Correction(models.Model):
    """An editor's change to a card already shown to readers; the card lists them.

    A public record: deleting the article or its source is refused while it has one
    (pause the source, hide the article: the correction stays readable on its URL)."""

    insight = models.ForeignKey(Insight, on_delete=models.PROTECT, related_name="corrections")
    field = models.CharField(max_length=40)
    before = models.TextField(blank=True)
    after = models.TextField(blank=True)
    editor = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.field} corrected on {self.created_at:%Y-%m-%d}"

    @property
    def label(self) -> str:
        return self.field.replace("_", " ")


class ApiCall(models.Model):
    """One paid call to a model (or one result of a batch): what it cost and how it ended."""

    article = models.ForeignKey(
        "aggregator.Article", null=True, blank=True, on_delete=models.SET_NULL, related_name="api_calls"
    )
    backend = models.CharField(max_length=40)
    model_name = models.CharField(max_length=100)
    batch_id = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=40, help_text="ok, refusal, max_tokens, invalid, ungrounded, error")
    error = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.model_name} {self.outcome} ${self.cost_usd}"


class WeeklyRecap(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    iso_year = models.PositiveSmallIntegerField()
    iso_week = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=300)
    intro = models.TextField(blank=True)
    body = models.TextField(blank=True, help_text="Editor's notes shown after the sections (optional).")
    backend = models.CharField(max_length=40, blank=True, help_text="Which enricher drafted it.")
    model_name = models.CharField(max_length=100, blank=True)
    generated_at = models.DateTimeField(null=True, blank=True)
    # Parts of the draft left out because they were not grounded in the sentences cited.
    unsupported_claims = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-iso_year", "-iso_week"]
        constraints = [
            models.UniqueConstraint(fields=["iso_year", "iso_week"], name="recap_unique_week"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("week", args=[self.iso_year, self.iso_week])

    @property
    def monday(self) -> dt.date:
        return dt.date.fromisocalendar(self.iso_year, self.iso_week, 1)

    @property
    def sections(self) -> list[dict]:
        """The items grouped by theme, in order:
        [{"theme", "items": [{"story_id", "headline", "summary", "publishers",
        "article_id", "sentences", "passage", "article_url", "publisher", "language"}]}]."""
        sections: list[dict] = []
        for item in self.items.select_related("article__source"):
            if not sections or sections[-1]["theme"] != item.theme:
                sections.append({"theme": item.theme, "items": []})
            sections[-1]["items"].append(
                {
                    "story_id": item.story_id,
                    "headline": item.headline,
                    "summary": item.summary,
                    "publishers": item.publishers,
                    "article_id": item.article_id,
                    "sentences": item.sentences,
                    "passage": item.passage,
                    # Where the passage is from, for the reader (None when it has no passage).
                    "article_url": item.article.get_absolute_url() if item.article and item.passage else "",
                    "publisher": item.article.source.name if item.article and item.passage else "",
                    "language": item.article.language if item.article and item.passage else "",
                }
            )
        return sections


class RecapItem(models.Model):
    """One story of a recap. The story is a foreign key, so a recluster or a merge that
    keeps or redirects the story keeps the link; the headline and summary are the
    recap's own words and stay as written."""

    recap = models.ForeignKey(WeeklyRecap, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField(default=0)
    theme = models.CharField(max_length=80)
    story = models.ForeignKey(
        "aggregator.Story", null=True, blank=True, on_delete=models.SET_NULL, related_name="recap_items"
    )
    headline = models.CharField(max_length=500)
    summary = models.TextField(blank=True)
    publishers = models.PositiveIntegerField(default=0)
    # What the summary rests on: sentences of the story's lead report, by id, and the
    # passage built from them (enrichment.sentences.passage_of). Empty on older recaps.
    article = models.ForeignKey(
        "aggregator.Article", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sentences = models.JSONField(default=list, blank=True, help_text="The cited sentence ids: [2, 3].")
    passage = models.TextField(blank=True)

    class Meta:
        ordering = ["recap", "position", "pk"]

    def __str__(self) -> str:
        return self.headline


class StoryInsight(models.Model):
    """The story-level card Claude wrote from a story's reports (the extractive card is
    built on request, offline). Every claim carries its passage and the article it comes
    from; a claim whose passage is not in that article was dropped and counted."""

    story = models.OneToOneField("aggregator.Story", on_delete=models.CASCADE, related_name="insight")
    backend = models.CharField(max_length=40, default="claude")
    model_name = models.CharField(max_length=100, blank=True)
    language = models.CharField(max_length=16, blank=True)
    claims = models.JSONField(default=list, blank=True, help_text='[{"text", "passage", "article_id"}]')
    disagreements = models.JSONField(
        default=list, blank=True, help_text='[{"fact", "versions": [{"value", "passage", "article_id"}]}]'
    )
    article_ids = models.JSONField(default=list, blank=True, help_text="The reports it was written from.")
    unsupported_claims = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    error = models.TextField(
        blank=True, help_text="Why Claude could not write it (the extractive card shows)."
    )
    generated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Story card for {self.story}"
