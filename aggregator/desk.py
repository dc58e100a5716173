"""The editors' desk: what is broken or waiting, at a glance."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, Sum
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Failure

from aggregator.models import Article, Source
from enrichment.models import ApiCall, Insight


@dataclass
class Desk:
    failing_sources: list[Source]
    to_review: list[Insight]
    to_review_count: int
    spend_today: float
    spend_month: float
    queue_depth: int | None
    failed_tasks: int
    recent_failures: list[Failure]
    last_success: object
    waiting_articles: int


def desk() -> Desk:
    now = timezone.localtime()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    unreviewed = Insight.objects.filter(reviewed_at__isnull=True, article__is_hidden=False)
    try:
        depth = get_broker().queue_size()
    except Exception:  # a broker that is down must not take the admin with it
        depth = None
    return Desk(
        failing_sources=list(Source.objects.failing().order_by("-consecutive_failures")[:20]),
        to_review=list(unreviewed.select_related("article__source").order_by("-generated_at")[:10]),
        to_review_count=unreviewed.count(),
        spend_today=float(ApiCall.objects.filter(created_at__gte=day).aggregate(s=Sum("cost_usd"))["s"] or 0),
        spend_month=float(
            ApiCall.objects.filter(created_at__gte=month).aggregate(s=Sum("cost_usd"))["s"] or 0
        ),
        queue_depth=depth,
        failed_tasks=Failure.objects.count(),
        recent_failures=list(Failure.objects.order_by("-stopped")[:5]),
        last_success=Source.objects.aggregate(last=Max("last_success_at"))["last"],
        waiting_articles=Article.objects.exclude(state=Article.State.ENRICHED).count(),
    )
