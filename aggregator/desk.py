"""The editors' desk: what is broken or waiting, at a glance.

`desk()` is the one place the desk's content comes from: a list of panels, each a
title, a headline figure and a few lines. To put something new on the desk, write a
function returning a `Panel` and add it to `PANELS`; the template shows every panel the
same way (templates/desk/desk.html), so no template change is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django_q.brokers import get_broker
from django_q.models import Failure

from aggregator.models import Article, Source
from enrichment.claude_state import claude_state, until
from enrichment.models import ApiCall, Insight

logger = logging.getLogger(__name__)

OK, WARN, BAD = "ok", "warn", "bad"


@dataclass
class Line:
    """One row of a panel: a label, its value, an optional detail and link."""

    label: str
    value: str = ""
    detail: str = ""
    url: str = ""
    tone: str = ""


@dataclass
class Panel:
    key: str
    title: str
    summary: str
    tone: str = OK
    lines: list[Line] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, url)


def _ago(when: datetime | None, now: datetime) -> str:
    return f"{timesince(when, now)} ago" if when else "never"


def failing_sources(now: datetime) -> Panel:
    failing = list(Source.objects.failing().order_by("-consecutive_failures", "name")[:20])
    total = Source.objects.failing().count()
    last_success = Source.objects.aggregate(last=Max("last_success_at"))["last"]
    lines = [
        Line(
            label=s.name,
            value=f"failed {s.consecutive_failures}× in a row",
            detail=s.last_error[:300],
            url=reverse("admin:aggregator_source_change", args=[s.pk]),
            tone=BAD if s.consecutive_failures >= 3 else WARN,
        )
        for s in failing
    ]
    lines.append(Line(label="Last successful poll", value=_ago(last_success, now)))
    return Panel(
        key="sources",
        title="Failing sources",
        summary=f"{total} failing" if total else "All sources healthy",
        tone=BAD if total else OK,
        lines=lines,
        links=[
            ("Sources", reverse("admin:aggregator_source_changelist")),
            ("Add a source", reverse("admin:aggregator_source_add_from_site")),
        ],
    )


def cards_to_review(now: datetime) -> Panel:
    waiting = Insight.objects.filter(reviewed_at__isnull=True, article__is_hidden=False)
    count = waiting.count()
    dropped = Insight.objects.filter(unsupported_claims__gt=0, reviewed_at__isnull=True).count()
    lines = [
        Line(
            label=i.article.title[:140],
            value=f"{i.article.source.name} · {i.backend}",
            detail=(
                f"{i.unsupported_claims} claim{'s' if i.unsupported_claims != 1 else ''} dropped by grounding"
                if i.unsupported_claims
                else ""
            ),
            url=reverse("desk-card", args=[i.pk]),
            tone=WARN if i.unsupported_claims else "",
        )
        for i in waiting.select_related("article__source").order_by("-unsupported_claims", "-generated_at")[
            :10
        ]
    ]
    return Panel(
        key="review",
        title="Cards waiting for review",
        summary=f"{count} to review" + (f", {dropped} with dropped claims" if dropped else ""),
        tone=WARN if count else OK,
        lines=lines,
        links=[("All cards", reverse("admin:enrichment_insight_changelist") + "?reviewed=no")],
    )


def spend(now: datetime) -> Panel:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    today = float(ApiCall.objects.filter(created_at__gte=day).aggregate(s=Sum("cost_usd"))["s"] or 0)
    this_month = float(ApiCall.objects.filter(created_at__gte=month).aggregate(s=Sum("cost_usd"))["s"] or 0)
    budget = float(settings.CLAUDE_DAILY_BUDGET)
    share = today / budget if budget else 0
    return Panel(
        key="spend",
        title="Enrichment spend",
        summary=f"${today:.4f} today",
        tone=BAD if share >= 1 else WARN if share >= 0.8 else OK,
        lines=[
            Line(label="Today", value=f"${today:.4f} of ${budget:g} daily budget"),
            Line(label="This month", value=f"${this_month:.4f}"),
        ],
        links=[("API calls", reverse("admin:enrichment_apicall_changelist"))],
    )


def api_state(now: datetime) -> Panel:
    """Claude's state from enrichment.claude_state: working or not (and why, in words),
    spend against the budget, the batch backlog, what was dropped today."""
    state = claude_state(now=now)
    lines = [
        Line(
            label="Backend",
            value=f"Claude ({state.model})" if state.configured else "extractive only (offline)",
            detail=""
            if state.configured
            else "Set ANTHROPIC_API_KEY and ENRICHMENT_BACKEND=claude for Claude cards.",
        ),
        Line(label="Last success", value=_ago(state.last_success, now)),
    ]
    if state.last_error is not None:
        lines.append(
            Line(
                label="Last error",
                value=f"{state.last_error_kind}, {_ago(state.last_error.created_at, now)}",
                detail=state.last_error.error[:300]
                + (
                    f" {state.advice}"
                    if state.advice and state.advice[:20] not in state.last_error.error
                    else ""
                ),
                url=reverse("admin:enrichment_apicall_changelist"),
                tone=BAD if state.failing else "",
            )
        )
    lines += [
        Line(
            label="Spend today",
            value=f"${state.spend_today:.4f} of ${state.budget:g} daily budget",
            detail="Budget reached: new articles keep their extractive card until midnight."
            if state.budget_reached
            else "",
            tone=BAD if state.budget_reached else WARN if state.budget_share >= 0.8 else "",
        ),
        Line(
            label="Calls today",
            value=f"{state.calls_today}"
            + (
                f" ({', '.join(f'{n} {kind}' for kind, n in state.errors_today.items())})"
                if state.errors_today
                else ""
            ),
            tone=WARN if state.errors_today else "",
        ),
        Line(
            label="Waiting for a batch",
            value=f"{state.queued_for_batch} queued, {state.in_batch} in a batch",
            detail=(
                (f"Out since {_ago(state.batch_submitted_at, now)}. " if state.batch_submitted_at else "")
                + f"Next collection {until(state.batch_collect_at, now)}."
            )
            if state.queued_for_batch or state.in_batch
            else "",
        ),
        Line(
            label="Dropped today",
            value=f"{state.claims_dropped_today} claim{'s' if state.claims_dropped_today != 1 else ''} "
            f"by grounding, {state.cards_refused_today} card{'s' if state.cards_refused_today != 1 else ''} "
            "refused for repeating an instruction",
            detail=f"{state.articles_with_instructions_today} article(s) extracted today address AI models."
            if state.articles_with_instructions_today
            else "",
            tone=WARN if state.cards_refused_today else "",
        ),
    ]
    if state.failing:
        summary, tone = f"failing: {state.last_error_kind}", BAD
    elif not state.configured:
        summary, tone = "not configured", OK
    elif state.budget_reached:
        summary, tone = "daily budget reached", BAD
    else:
        summary, tone = "working", WARN if state.errors_today else OK
    return Panel(
        key="api",
        title="Claude API",
        summary=summary,
        tone=tone,
        lines=lines,
        links=[("API calls", reverse("admin:enrichment_apicall_changelist"))],
    )


def backlog(now: datetime) -> Panel:
    states = dict(
        Article.objects.exclude(state=Article.State.ENRICHED)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    try:
        depth = get_broker().queue_size()
    except Exception:  # a broker that is down must not take the desk with it
        logger.warning("the desk could not read the broker's queue size", exc_info=True)
        depth = None
    failed_tasks = Failure.objects.count()
    queued = Insight.objects.filter(claude_status=Insight.Claude.QUEUED).count()
    lines = [
        Line(label=label, value=str(states.get(value, 0)))
        for value, label in Article.State.choices
        if value != Article.State.ENRICHED
    ]
    lines.append(Line(label="Queued for a Claude batch", value=str(queued)))
    due = Source.objects.due(now)
    overdue = due.filter(next_poll_at__isnull=False).aggregate(oldest=Min("next_poll_at"))["oldest"]
    due_count = due.count()
    lines.append(
        Line(
            label="Sources due for a poll",
            value=f"{due_count}"
            + (f", the oldest due {_ago(overdue, now)}" if due_count and overdue else ""),
            tone=WARN if overdue and now - overdue > timedelta(minutes=10) else "",
        )
    )
    lines.append(
        Line(
            label="Task queue",
            value="broker unreachable" if depth is None else f"{depth} waiting",
            tone=BAD if depth is None else "",
        )
    )
    for f in Failure.objects.order_by("-stopped")[:5]:
        lines.append(Line(label=f"Failed: {f.func}", detail=str(f.result)[:200], tone=BAD))
    waiting = sum(states.values())
    return Panel(
        key="backlog",
        title="Backlog",
        summary=f"{waiting} articles in the pipeline"
        + (f", {failed_tasks} failed tasks" if failed_tasks else ""),
        tone=BAD if depth is None or failed_tasks else WARN if waiting else OK,
        lines=lines,
        links=[("Failed tasks", reverse("admin:django_q_failure_changelist"))],
    )


def stuck_articles(now: datetime) -> Panel:
    """Articles whose step raised STEP_MAX_FAILURES times in a row: readable as they are,
    no longer handed out, until an editor retries them."""
    from aggregator.ingest.leases import parked

    stuck = Article.objects.filter(parked())
    count = stuck.count()
    lines = [
        Line(
            label=a.title[:140] or "(untitled)",
            value=f"{a.failed_step} failed {a.step_failures}× in a row",
            detail=a.step_error[:300],
            url=reverse("admin:aggregator_article_change", args=[a.pk]),
            tone=BAD,
        )
        for a in stuck.only("pk", "title", "failed_step", "step_failures", "step_error").order_by(
            "-state_changed_at"
        )[:10]
    ]
    return Panel(
        key="stuck",
        title="Articles stopped at a failing step",
        summary=f"{count} stopped: retry them after a fix" if count else "None",
        tone=BAD if count else OK,
        lines=lines,
        links=[("Retry them", reverse("admin:aggregator_article_changelist") + "?stuck=yes")],
    )


PANELS: list[Callable[[datetime], Panel]] = [
    failing_sources,
    cards_to_review,
    spend,
    api_state,
    backlog,
    stuck_articles,
]


def desk(*, now: datetime | None = None) -> list[Panel]:
    now = timezone.localtime(now)
    return [panel(now) for panel in PANELS]
