"""Where Claude stands, in figures an editor can act on: is it working (last success,
last error and its kind, a revoked key named as such), what it costs today against the
budget at the table's prices, what waits for a batch and when that is collected, and how
many claims and cards were dropped today. The desk shows it (aggregator.desk)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Sum
from django.utils import timezone

from aggregator.models import Article
from enrichment.models import ApiCall, Insight

BATCH_TASK = "aggregator.tasks.run_batches_task"
# What an editor should do about each kind of error.
ADVICE = {
    "auth": "Restart the workers after setting a valid ANTHROPIC_API_KEY; until then cards stay extractive.",
    "permission": "Check the key's workspace and permissions in the Anthropic console.",
    "not_found": "Check CLAUDE_MODEL: the API does not know this model.",
    "bad_request": "A request was refused as invalid: see the API calls list for the message.",
    "rate_limit": "Calls are retried later; lower the load or raise the rate limit.",
    "overloaded": "Anthropic is overloaded; calls are retried later.",
    "server_error": "Anthropic answered with a server error; calls are retried later.",
    "timeout": "Calls time out; they are retried later (CLAUDE_TIMEOUT).",
    "connection": "The API cannot be reached from the workers: check the network or ANTHROPIC_BASE_URL.",
    "injection": "An article tried to instruct the model; its extractive card is shown.",
}


@dataclass
class ClaudeState:
    configured: bool
    model: str
    last_success: datetime | None
    last_error: ApiCall | None
    last_error_kind: str  # the editor's words for it, e.g. "API key refused (revoked or wrong)"
    failing: bool  # the last call failed: nothing has worked since
    advice: str
    errors_today: dict[str, int]  # kind -> calls
    calls_today: int
    spend_today: float
    budget: float
    queued_for_batch: int
    in_batch: int
    batch_submitted_at: datetime | None  # the oldest batch still out
    batch_collect_at: datetime | None  # when the batch step runs next
    claims_dropped_today: int
    cards_refused_today: int  # Claude's card refused: it echoed an injection
    articles_with_instructions_today: int

    @property
    def budget_reached(self) -> bool:
        return self.spend_today >= self.budget

    @property
    def budget_share(self) -> float:
        return self.spend_today / self.budget if self.budget else 0.0


def kind_label(outcome: str) -> str:
    from enrichment.backends.claude import ERROR_KINDS

    return ERROR_KINDS.get(outcome, outcome)


def claude_state(*, now: datetime | None = None) -> ClaudeState:
    from django_q.models import Schedule

    now = timezone.localtime(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    last_ok = ApiCall.objects.filter(outcome="ok").order_by("-created_at").first()
    last_error = ApiCall.objects.exclude(outcome="ok").order_by("-created_at").first()
    today = ApiCall.objects.filter(created_at__gte=day)
    errors = dict(
        today.exclude(outcome="ok").values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n")
    )
    failing = bool(last_error and (last_ok is None or last_error.created_at > last_ok.created_at))
    batched = Insight.objects.filter(claude_status=Insight.Claude.BATCHED)
    schedule = Schedule.objects.filter(func=BATCH_TASK).order_by("next_run").first()
    submitted = batched.aggregate(at=Min("updated_at"))["at"]
    return ClaudeState(
        configured=settings.ENRICHMENT_BACKEND == "claude" and bool(settings.ANTHROPIC_API_KEY),
        model=settings.CLAUDE_MODEL,
        last_success=last_ok.created_at if last_ok else None,
        last_error=last_error,
        last_error_kind=kind_label(last_error.outcome) if last_error else "",
        failing=failing,
        advice=ADVICE.get(last_error.outcome, "") if failing and last_error else "",
        errors_today={kind_label(k): n for k, n in sorted(errors.items())},
        calls_today=today.count(),
        spend_today=float(today.aggregate(s=Sum("cost_usd"))["s"] or 0),
        budget=float(settings.CLAUDE_DAILY_BUDGET),
        queued_for_batch=Insight.objects.filter(claude_status=Insight.Claude.QUEUED).count(),
        in_batch=batched.count(),
        batch_submitted_at=submitted,
        batch_collect_at=schedule.next_run if schedule else None,
        claims_dropped_today=Insight.objects.filter(generated_at__gte=day).aggregate(
            n=Sum("unsupported_claims")
        )["n"]
        or 0,
        cards_refused_today=errors.get("injection", 0),
        articles_with_instructions_today=Article.objects.filter(extracted_at__gte=day)
        .exclude(model_instructions=[])
        .count(),
    )


def until(when: datetime | None, now: datetime) -> str:
    """'in 2 minutes', 'due now' or 'not scheduled'."""
    if when is None:
        return "not scheduled (run manage.py setup_schedules)"
    if when <= now + timedelta(seconds=30):
        return "due now"
    minutes = round((when - now).total_seconds() / 60)
    return f"in {minutes} minute{'s' if minutes != 1 else ''}" if minutes < 120 else f"at {when:%H:%M}"
