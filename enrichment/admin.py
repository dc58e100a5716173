from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Sum
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from aggregator.tasks import enqueue
from enrichment.models import ApiCall, Correction, Insight, RecapItem, WeeklyRecap
from enrichment.recap import build_recap, last_week


def reenrich(modeladmin, request, article_ids: list[int]) -> None:
    from aggregator.models import Article

    for article in Article.objects.filter(pk__in=article_ids):
        modeladmin.log_change(request, article, "Re-enrichment requested")
        enqueue("aggregator.tasks.enrich_article_task", article.pk, True, group="enrich")
    modeladmin.message_user(
        request, f"{len(article_ids)} articles will be re-enriched by the workers.", messages.SUCCESS
    )


EDITABLE_TEXT = ["title", "hook", "what_changed", "why_it_matters", "what_next"]
EDITABLE_LISTS = ["takeaways", "implications", "timeline"]


class InsightForm(forms.ModelForm):
    mark_reviewed = forms.BooleanField(
        required=False, help_text="Put “Reviewed by an editor” on the public card."
    )

    class Meta:
        model = Insight
        fields = EDITABLE_TEXT + EDITABLE_LISTS


class ReviewedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return [("no", "Waiting for review"), ("yes", "Reviewed")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(reviewed_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(reviewed_at__isnull=False)
        return queryset


class CorrectionInline(admin.TabularInline):
    model = Correction
    extra = 0
    can_delete = False
    fields = ["created_at", "field", "before", "after", "editor"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


def record_corrections(request, before: Insight, after: Insight) -> list[str]:
    """Each changed part of a card readers have seen becomes a public correction."""
    changed = []
    for name in EDITABLE_TEXT + EDITABLE_LISTS:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changed.append(name)
            Correction.objects.create(
                insight=after, field=name, before=_as_text(old), after=_as_text(new), editor=request.user
            )
    return changed


def _as_text(value) -> str:
    if isinstance(value, list):
        return "\n".join(
            str(v.get("text") or v.get("prediction") or v) if isinstance(v, dict) else str(v) for v in value
        )
    return str(value)


@admin.register(Insight)
class InsightAdmin(admin.ModelAdmin):
    form = InsightForm
    inlines = [CorrectionInline]
    list_display = [
        "article",
        "backend",
        "model_name",
        "claude_status",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "grounded_claims",
        "unsupported_claims",
        "short_error",
        "generated_at",
    ]
    list_filter = [ReviewedFilter, "backend", "claude_status", "model_name", "language"]
    search_fields = ["article__title", "hook", "error", "batch_id"]
    raw_id_fields = ["article"]
    list_select_related = ["article"]
    readonly_fields = [
        "article",
        "backend",
        "model_name",
        "language",
        "claude_status",
        "attempts",
        "retry_at",
        "batch_id",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "grounded_claims",
        "unsupported_claims",
        "error",
        "generated_at",
        "updated_at",
        "reviewed_at",
        "reviewed_by",
        "related_ids",
        "audience_reasons",
        "support",
        "dropped_claims",
        "desk_editor",
    ]
    fieldsets = [
        (None, {"fields": ["article", "desk_editor", "mark_reviewed", "reviewed_at", "reviewed_by"]}),
        (
            "The card (edits to a published card are shown to readers as corrections)",
            {"fields": EDITABLE_TEXT + EDITABLE_LISTS},
        ),
        (
            "How it was written",
            {
                "fields": [
                    "backend",
                    "model_name",
                    "language",
                    "claude_status",
                    "attempts",
                    "retry_at",
                    "batch_id",
                    "error",
                    "generated_at",
                    "updated_at",
                ]
            },
        ),
        (
            "Cost and grounding",
            {
                "fields": [
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "cost_usd",
                    "grounded_claims",
                    "unsupported_claims",
                    "dropped_claims",
                    "support",
                ]
            },
        ),
        ("Links", {"fields": ["related_ids", "audience_reasons"]}),
    ]
    actions = ["mark_reviewed", "reenrich_selected"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            before = Insight.objects.get(pk=obj.pk)
            changed = record_corrections(request, before, obj)
            if changed:
                messages.info(request, f"Corrections recorded and shown on the card: {', '.join(changed)}.")
        if form.cleaned_data.get("mark_reviewed"):
            obj.reviewed_at, obj.reviewed_by = timezone.now(), request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Mark reviewed by an editor")
    def mark_reviewed(self, request, queryset):
        for insight in queryset:
            insight.reviewed_at, insight.reviewed_by = timezone.now(), request.user
            insight.save(update_fields=["reviewed_at", "reviewed_by", "updated_at"])
            self.log_change(request, insight, "Marked reviewed")
        self.message_user(request, f"Marked {queryset.count()} cards reviewed.", messages.SUCCESS)

    @admin.display(description="dropped by grounding")
    def dropped_claims(self, obj: Insight) -> str:
        if not obj.dropped:
            return "-"
        return format_html_join(
            "",
            "<p><b>{}</b>: {}<br><small>Why: {}</small></p>",
            ((d["part"], d["text"], d["reason"]) for d in obj.dropped),
        )

    @admin.display(description="edit")
    def desk_editor(self, obj: Insight) -> str:
        if not obj.pk:
            return "-"
        return format_html(
            '<a href="{}">Edit this card at the desk: one form per claim and its passage</a>',
            reverse("desk-card", args=[obj.pk]),
        )

    @admin.display(description="error")
    def short_error(self, obj: Insight) -> str:
        return obj.error[:80]

    @admin.action(description="Re-enrich the selected articles")
    def reenrich_selected(self, request, queryset):
        reenrich(self, request, list(queryset.values_list("article_id", flat=True)))


@admin.register(ApiCall)
class ApiCallAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "article",
        "model_name",
        "outcome",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "batch_id",
    ]
    list_filter = ["outcome", "model_name", "backend"]
    search_fields = ["error", "batch_id", "article__title"]
    date_hierarchy = "created_at"
    list_select_related = ["article"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        total = ApiCall.objects.aggregate(total=Sum("cost_usd"))["total"] or 0
        return super().changelist_view(
            request, {**(extra_context or {}), "title": f"API calls (total ${total:.4f})"}
        )


class RecapItemInline(admin.TabularInline):
    model = RecapItem
    fields = ["position", "theme", "story", "headline", "summary", "publishers", "sentences", "passage"]
    readonly_fields = ["sentences", "passage"]  # the lead report's stored sentences the summary cites
    raw_id_fields = ["story"]
    extra = 0


@admin.register(WeeklyRecap)
class WeeklyRecapAdmin(admin.ModelAdmin):
    inlines = [RecapItemInline]
    list_display = [
        "title",
        "iso_year",
        "iso_week",
        "status",
        "backend",
        "unsupported_claims",
        "published_at",
        "preview",
    ]
    list_filter = ["status", "iso_year", "backend"]
    search_fields = ["title", "intro", "body"]
    readonly_fields = [
        "backend",
        "model_name",
        "unsupported_claims",
        "generated_at",
        "published_at",
        "preview",
    ]
    fields = [
        "title",
        "iso_year",
        "iso_week",
        "status",
        "intro",
        "body",
        "preview",
        "backend",
        "model_name",
        "unsupported_claims",
        "generated_at",
        "published_at",
    ]
    actions = ["publish", "unpublish", "rebuild"]
    change_list_template = "admin/enrichment/weeklyrecap/change_list.html"

    def get_urls(self):
        build = path(
            "build/", self.admin_site.admin_view(self.build_view), name="enrichment_weeklyrecap_build"
        )
        return [build, *super().get_urls()]

    def build_view(self, request):
        """POST: build (or rebuild) the draft of this week, or of last week with ?week=last."""
        if request.method != "POST" or not self.has_add_permission(request):
            return redirect("admin:enrichment_weeklyrecap_changelist")
        if request.POST.get("week") == "last":
            year, week = last_week()
        else:
            year, week, _ = timezone.localdate().isocalendar()
        recap = build_recap(year, week)
        self.log_change(request, recap, "Draft built")
        self.message_user(
            request, f"{recap.title}: {recap.status}. Review it, then publish.", messages.SUCCESS
        )
        return redirect("admin:enrichment_weeklyrecap_change", recap.pk)

    @admin.display(description="page")
    def preview(self, obj: WeeklyRecap) -> str:
        return (
            format_html('<a href="{}" target="_blank">View ↗</a>', obj.get_absolute_url()) if obj.pk else "-"
        )

    def save_model(self, request, obj, form, change):
        if obj.status == WeeklyRecap.Status.PUBLISHED and obj.published_at is None:
            obj.published_at = timezone.now()
        super().save_model(request, obj, form, change)

    @admin.action(description="Publish")
    def publish(self, request, queryset):
        for recap in queryset.exclude(status=WeeklyRecap.Status.PUBLISHED):
            recap.status, recap.published_at = WeeklyRecap.Status.PUBLISHED, timezone.now()
            recap.save(update_fields=["status", "published_at", "updated_at"])
            self.log_change(request, recap, "Published")
        self.message_user(request, "Published.", messages.SUCCESS)

    @admin.action(description="Unpublish (back to draft)")
    def unpublish(self, request, queryset):
        queryset.update(status=WeeklyRecap.Status.DRAFT)

    @admin.action(description="Rebuild the draft from this week's stories")
    def rebuild(self, request, queryset):
        for recap in queryset.filter(status=WeeklyRecap.Status.DRAFT):
            build_recap(recap.iso_year, recap.iso_week)
        self.message_user(request, "Drafts rebuilt (published recaps are left as they are).")
