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
    takeaways = models.JSONField(default=list, blank=True, help_text='[{"text", "passage"}]')
    implications = models.JSONField(
        default=list, blank=True, help_text='[{"prediction", "reasoning", "passage"}]'
    )
    timeline = models.JSONField(
        default=list, blank=True, help_text='[{"date", "text", "passage", "article_id"}]'
    )
    audience_reasons = models.JSONField(default=dict, blank=True, help_text='{"audience slug": "reason"}')
    related_ids = models.JSONField(default=list, blank=True, help_text="Ids of related articles, best first.")
    error = models.TextField(blank=True)
    generated_at = models.DateTimeField(help_text="When the machine wrote it.")
    updated_at = models.DateTimeField(auto_now=True)

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


class WeeklyRecap(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    iso_year = models.PositiveSmallIntegerField()
    iso_week = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=300)
    intro = models.TextField(blank=True)
    body = models.TextField(blank=True)
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
