from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from aggregator.ingest.discover import NoFeedFound, discover_feed
from aggregator.ingest.leases import POLL, mark_queued
from aggregator.ingest.opml import OpmlError, export_opml, import_opml
from aggregator.models import Article, AudienceTag, Category, PollLog, Source, Story


class SiteForm(forms.Form):
    url = forms.URLField(
        label="Site or feed address",
        assume_scheme="https",
        help_text="A site's home page (its feed is found for you) or the feed's own URL.",
    )
    category = forms.ModelChoiceField(Category.objects.all(), required=False)


class OpmlForm(forms.Form):
    file = forms.FileField(
        label="OPML file", help_text="Up to 1 MB. Nothing is imported unless every feed is valid."
    )


class PollLogInline(admin.TabularInline):
    model = PollLog
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["polled_at", "outcome", "status", "new_articles", "error"]
    readonly_fields = fields
    ordering = ["-polled_at"]
    verbose_name_plural = "health history (polls that changed something)"

    def get_queryset(self, request):
        return (
            super().get_queryset(request).filter(polled_at__gte=timezone.now() - timezone.timedelta(days=30))
        )


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
    actions = ["fetch_now", "poll_now", "pause", "resume", "export_selected"]
    inlines = [PollLogInline]

    def get_urls(self):
        own = [
            path(
                "add-from-site/",
                self.admin_site.admin_view(self.add_from_site),
                name="aggregator_source_add_from_site",
            ),
            path(
                "import-opml/",
                self.admin_site.admin_view(self.import_opml_view),
                name="aggregator_source_import_opml",
            ),
            path(
                "export-opml/",
                self.admin_site.admin_view(self.export_opml_view),
                name="aggregator_source_export_opml",
            ),
        ]
        return own + super().get_urls()

    def add_from_site(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = SiteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                feed_url, title = discover_feed(form.cleaned_data["url"])
            except NoFeedFound as exc:
                form.add_error("url", str(exc))
            else:
                if Source.objects.filter(feed_url=feed_url).exists():
                    form.add_error("url", f"{feed_url} is already a source.")
                else:
                    source = Source.objects.create(
                        name=title[:200],
                        slug=Source.unique_slug(title),
                        feed_url=feed_url,
                        category=form.cleaned_data["category"],
                    )
                    self.log_addition(request, source, f"Added from {form.cleaned_data['url']}")
                    self.message_user(
                        request, f"Found the feed {feed_url} and added “{title}”.", messages.SUCCESS
                    )
                    return redirect("admin:aggregator_source_change", source.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Add a source from a site",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/aggregator/source/form_page.html", context)

    def import_opml_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = OpmlForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                if upload.size > 1_000_000:
                    raise OpmlError(f"the file is {upload.size:,} bytes; the limit is 1,000,000")
                result = import_opml(upload.read())
            except OpmlError as exc:
                form.add_error("file", str(exc))
            else:
                for source in result.added:
                    self.log_addition(request, source, "Imported from OPML")
                from aggregator.tasks import enqueue_address_checks

                enqueue_address_checks([s.pk for s in result.added])
                self.message_user(
                    request,
                    f"Imported {len(result.added)} sources; skipped {len(result.skipped)} already present. "
                    "The workers now check where each feed's host points and pause any that point "
                    "at a private address.",
                    messages.SUCCESS,
                )
                return redirect("admin:aggregator_source_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Import sources from OPML",
            "opts": self.model._meta,
            "multipart": True,
        }
        return TemplateResponse(request, "admin/aggregator/source/form_page.html", context)

    def export_opml_view(self, request):
        response = HttpResponse(export_opml(), content_type="text/x-opml; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="sources.opml"'
        return response

    @admin.action(description="Export the selected sources as OPML")
    def export_selected(self, request, queryset):
        response = HttpResponse(export_opml(queryset.select_related("category")), content_type="text/x-opml")
        response["Content-Disposition"] = 'attachment; filename="sources.opml"'
        return response

    @admin.action(description="Fetch now (the workers poll them at once; the health column follows)")
    def fetch_now(self, request, queryset):
        """Claim each source and queue its poll: the request never waits on a feed
        (a slow one used to hold it past the proxy's timeout)."""
        from django_q.tasks import async_task

        now = timezone.now()
        queued = 0
        for source in queryset[:200]:
            if source.claim_poll(now=now, lease_minutes=source.poll_interval or 30):
                # Marked queued: if the task is lost, the next tick hands the poll out again.
                mark_queued(POLL, [source.pk], now=now)
                async_task("aggregator.tasks.fetch_now_task", source.pk, group="poll")
                self.log_change(request, source, "Fetch requested")
                queued += 1
        self.message_user(
            request,
            f"Fetching {queued} source{'s' if queued != 1 else ''} on the workers: the health column "
            "shows “fetching…” until each poll is done, then its result (reload the page).",
            messages.SUCCESS,
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("category").annotate(n_articles=Count("articles"))

    @admin.display(description="articles", ordering="n_articles")
    def article_count(self, obj: Source) -> int:
        return obj.n_articles

    @admin.display(description="health", ordering="consecutive_failures")
    def health(self, obj: Source) -> str:
        if obj.last_polled_at is None:
            return "never polled"
        pending = obj.last_success_at is None or obj.last_polled_at > obj.last_success_at
        if (
            pending
            and not obj.consecutive_failures
            and timezone.now() - obj.last_polled_at < timedelta(minutes=5)
        ):
            return "fetching…"  # claimed a moment ago, its poll not finished yet
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


class InstructionsFilter(admin.SimpleListFilter):
    title = "instructions to AI models"
    parameter_name = "injection"

    def lookups(self, request, model_admin):
        return [("yes", "Found (prompt injection)"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(model_instructions=[])
        if self.value() == "no":
            return queryset.filter(model_instructions=[])
        return queryset


class StuckFilter(admin.SimpleListFilter):
    title = "a step that kept failing"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "Stopped: retry needed")]

    def queryset(self, request, queryset):
        from aggregator.ingest.leases import parked

        return queryset.filter(parked()) if self.value() == "yes" else queryset


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
    list_filter = [
        "state",
        "is_featured",
        "is_hidden",
        "source",
        "category",
        "language",
        InstructionsFilter,
        StuckFilter,
    ]
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
        "failed_step",
        "step_failures",
        "step_error",
        "instructions_to_models",
    ]
    actions = ["feature", "unfeature", "hide", "unhide", "reenrich_selected", "retry_failed_step"]

    @admin.display(description="Instructions to AI models (prompt injection)")
    def instructions_to_models(self, obj: Article) -> str:
        flags = obj.model_instructions or []
        if not flags:
            return "None found."
        return format_html(
            "<p>{} sentence(s) of this article address an AI model. They are never summarized, cited "
            "or shown, and a Claude card that repeats them is refused.</p><ul>{}</ul>",
            len(flags),
            format_html_join(
                "", "<li>“{}” <em>({})</em></li>", ((f["sentence"], f["reason"]) for f in flags)
            ),
        )

    @admin.action(description="Retry the step that kept failing")
    def retry_failed_step(self, request, queryset):
        from aggregator.ingest.leases import retry_parked
        from aggregator.tasks import enqueue_steps

        steps = retry_parked(queryset.values_list("pk", flat=True))
        enqueue_steps(steps)
        count = sum(len(ids) for ids in steps.values())
        self.message_user(
            request,
            f"{count} article{'s' if count != 1 else ''} handed to {', '.join(k for k, v in steps.items() if v) or 'no step'}"
            " again; the desk shows them again if the step fails anew.",
            messages.SUCCESS if count else messages.WARNING,
        )

    @admin.action(description="Re-enrich (rewrite the card)")
    def reenrich_selected(self, request, queryset):
        from enrichment.admin import reenrich

        reenrich(self, request, list(queryset.values_list("pk", flat=True)))

    def _update_logged(self, request, queryset, message: str, **changes) -> None:
        for article in queryset:
            self.log_change(request, article, message)
        queryset.update(**changes)

    @admin.action(description="Feature on the front page")
    def feature(self, request, queryset):
        self._update_logged(request, queryset, "Featured", is_featured=True)

    @admin.action(description="Stop featuring")
    def unfeature(self, request, queryset):
        self._update_logged(request, queryset, "No longer featured", is_featured=False)

    @admin.action(description="Hide from readers")
    def hide(self, request, queryset):
        self._update_logged(request, queryset, "Hidden from readers", is_hidden=True)

    @admin.action(description="Show to readers")
    def unhide(self, request, queryset):
        self._update_logged(request, queryset, "Shown to readers", is_hidden=False)


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    actions = ["merge"]
    list_display = ["headline", "first_seen_at", "article_count"]
    search_fields = ["headline"]
    raw_id_fields = ["lead_article"]
    date_hierarchy = "first_seen_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_articles=Count("articles"))

    @admin.display(description="articles", ordering="n_articles")
    def article_count(self, obj: Story) -> int:
        return obj.n_articles

    @admin.action(description="Merge the selected stories into the oldest")
    def merge(self, request, queryset):
        from enrichment.stories import merge_stories

        stories = list(queryset.order_by("first_seen_at", "pk"))
        if len(stories) < 2:
            self.message_user(request, "Select two or more stories to merge.", messages.WARNING)
            return
        survivor, others = stories[0], stories[1:]
        merged = merge_stories(survivor, others)
        self.log_change(
            request, survivor, f"Merged stories {', '.join(str(s.pk) for s in others)} into this one"
        )
        self.message_user(
            request,
            f"Merged {merged} stories into “{survivor}”; their old addresses now redirect to it.",
            messages.SUCCESS,
        )
