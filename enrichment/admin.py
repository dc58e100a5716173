from django.contrib import admin

from enrichment.models import Insight, WeeklyRecap


@admin.register(Insight)
class InsightAdmin(admin.ModelAdmin):
    list_display = ["article", "backend", "model_name", "updated_at"]
    list_filter = ["backend", "model_name"]
    search_fields = ["article__title", "hook"]
    raw_id_fields = ["article"]
    list_select_related = ["article"]


@admin.register(WeeklyRecap)
class WeeklyRecapAdmin(admin.ModelAdmin):
    list_display = ["title", "iso_year", "iso_week", "status", "published_at"]
    list_filter = ["status", "iso_year"]
    search_fields = ["title", "intro", "body"]
