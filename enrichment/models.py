from __future__ import annotations

from django.db import models


class Insight(models.Model):
    """What the machine inferred about one article. Filled in by the enrichment issues."""

    article = models.OneToOneField("aggregator.Article", on_delete=models.CASCADE, related_name="insight")
    backend = models.CharField(max_length=40, help_text="Which enricher wrote it: extractive, claude.")
    model_name = models.CharField(max_length=100, blank=True)
    hook = models.CharField(max_length=200, blank=True)
    what_changed = models.TextField(blank=True)
    why_it_matters = models.TextField(blank=True)
    what_next = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="Takeaways, implications, timeline.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Insight for {self.article}"


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
