from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html

from aggregator.models import Article, AudienceTag, Category, Source, Story


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["__str__", "slug", "position"]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


@admin.register(AudienceTag)
class AudienceTagAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "keywords", "position"]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "keywords"]


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [("failing", "Failing"), ("ok", "Healthy"), ("never", "Never polled")]

    def queryset(self, request, queryset):
        if self.value() == "failing":
            return queryset.filter(consecutive_failures__gt=0)
        if self.value() == "ok":
            return queryset.filter(consecutive_failures=0, last_polled_at__isnull=False)
        if self.value() == "never":
            return queryset.filter(last_polled_at__isnull=True)
        return queryset


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "health",
        "category",
        "language",
        "is_active",
        "article_count",
        "last_polled_at",
        "next_poll_at",
        "poll_interval",
    ]
    list_filter = [HealthFilter, "is_active", "category", "language", "is_demo"]
    search_fields = ["name", "feed_url", "site_url", "last_error"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "health",
        "last_polled_at",
        "last_success_at",
        "last_status",
        "consecutive_failures",
        "last_error",
        "next_poll_at",
        "poll_interval",
        "etag",
        "last_modified",
        "created_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "feed_url", "site_url", "language", "category", "is_active"]}),
        ("Polling", {"fields": ["poll_interval_override", "poll_interval", "next_poll_at"]}),
        (
            "Health",
            {
                "fields": [
                    "health",
                    "last_polled_at",
                    "last_success_at",
                    "last_status",
                    "consecutive_failures",
                    "last_error",
                    "etag",
                    "last_modified",
                    "created_at",
                ]
            },
        ),
    ]
    actions = ["poll_now", "pause", "resume"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("category").annotate(n_articles=Count("articles"))

    @admin.display(description="articles", ordering="n_articles")
    def article_count(self, obj: Source) -> int:
        return obj.n_articles

    @admin.display(description="health", ordering="consecutive_failures")
    def health(self, obj: Source) -> str:
        if obj.last_polled_at is None:
            return "never polled"
        if obj.consecutive_failures:
            return format_html(
                '<strong style="color:#b3261e">failing ×{}</strong>: {}',
                obj.consecutive_failures,
                obj.last_error[:200],
            )
        if obj.last_error:
            return format_html(
                '<span style="color:#8a5a00">ok, with a warning</span>: {}', obj.last_error[:200]
            )
        return "ok"

    @admin.action(description="Poll now (queue a poll for the workers)")
    def poll_now(self, request, queryset):
        queryset.update(next_poll_at=timezone.now())
        self.message_user(
            request, f"{queryset.count()} sources will be polled within a minute.", messages.SUCCESS
        )

    @admin.action(description="Pause polling")
    def pause(self, request, queryset):
        self.message_user(request, f"Paused {queryset.update(is_active=False)} sources.")

    @admin.action(description="Resume polling")
    def resume(self, request, queryset):
        self.message_user(
            request, f"Resumed {queryset.update(is_active=True, next_poll_at=timezone.now())} sources."
        )


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "source",
        "category",
        "state",
        "published_at",
        "collected_at",
        "is_featured",
        "is_hidden",
    ]
    list_filter = ["state", "is_featured", "is_hidden", "source", "category", "language"]
    list_editable = ["is_featured", "is_hidden"]
    search_fields = ["title", "url", "author"]
    date_hierarchy = "sort_at"
    list_select_related = ["source", "category"]
    raw_id_fields = ["story"]
    filter_horizontal = ["audiences"]
    readonly_fields = [
        "guid",
        "canonical_url",
        "collected_at",
        "sort_at",
        "state",
        "state_changed_at",
        "extract_attempts",
        "extracted_at",
        "extraction_error",
    ]
    actions = ["feature", "unfeature", "hide", "unhide", "reenrich_selected"]

    @admin.action(description="Re-enrich (rewrite the card)")
    def reenrich_selected(self, request, queryset):
        from enrichment.admin import reenrich

        reenrich(self, request, list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Feature on the front page")
    def feature(self, request, queryset):
        queryset.update(is_featured=True)

    @admin.action(description="Stop featuring")
    def unfeature(self, request, queryset):
        queryset.update(is_featured=False)

    @admin.action(description="Hide from readers")
    def hide(self, request, queryset):
        queryset.update(is_hidden=True)

    @admin.action(description="Show to readers")
    def unhide(self, request, queryset):
        queryset.update(is_hidden=False)


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    list_display = ["headline", "first_seen_at", "article_count"]
    search_fields = ["headline"]
    raw_id_fields = ["lead_article"]
    date_hierarchy = "first_seen_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_articles=Count("articles"))

    @admin.display(description="articles", ordering="n_articles")
    def article_count(self, obj: Story) -> int:
        return obj.n_articles
