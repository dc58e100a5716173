"""The desk shows Claude's state: last success, last error and its kind (a revoked key
named as such), spend today against the budget, the batch backlog, what was dropped."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.core.management import call_command
from django.utils import timezone

from enrichment.batches import run_batches
from enrichment.claude_state import claude_state
from enrichment.models import ApiCall, Insight
from enrichment.service import enrich_article
from tests import fake_anthropic as fa
from tests.test_claude import make_article

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(settings, monkeypatch):
    with fa.FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        settings.ANTHROPIC_API_KEY, settings.ENRICHMENT_BACKEND = "revoked-key", "claude"
        settings.CLAUDE_DAILY_BUDGET, settings.CLAUDE_BATCH_THRESHOLD = 2.0, 1000
        yield server


def desk_text(admin_client) -> str:
    return unescape(admin_client.get("/admin/desk/").content.decode())


def test_the_desk_names_a_revoked_key(fake, admin_client):
    enrich_article(make_article().pk)  # works
    fake.default = fa.error(401, "authentication_error", "invalid x-api-key")
    article = make_article()
    assert "extractive card kept" in enrich_article(article.pk)
    assert len(fake.message_requests) == 2  # a refused key is not retried
    insight = Insight.objects.get(article=article)
    assert insight.claude_status == Insight.Claude.FAILED and "revoked or wrong" in insight.error

    state = claude_state()
    assert state.failing and state.last_error.outcome == "auth" and state.last_success is not None
    html = desk_text(admin_client)
    assert "failing: API key refused (revoked or wrong)" in html
    assert (
        "invalid x-api-key" in html and "Restart the workers after setting a valid ANTHROPIC_API_KEY" in html
    )
    assert "Last success" in html and "1 API key refused (revoked or wrong)" in html

    # Later articles do not try the refused key again for ten minutes: they keep their
    # extractive card and come back to Claude after that.
    later = make_article()
    assert "API key refused" in enrich_article(later.pk)
    assert len(fake.message_requests) == 2
    waiting = Insight.objects.get(article=later)
    assert waiting.claude_status == Insight.Claude.RETRY and waiting.retry_at > timezone.now()

    # Once a call works again, the desk says so; the error stays listed, no longer failing.
    fake.default = fa.valid_card()
    ApiCall.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    enrich_article(make_article().pk)
    html = desk_text(admin_client)
    assert "Claude API" in html and "failing:" not in html and "working" in html


def test_the_desk_shows_spend_at_true_prices_against_the_budget(fake, admin_client, settings):
    ApiCall.objects.create(
        backend="claude",
        model_name="claude-haiku-5-5",
        outcome="ok",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cost_usd=Decimal("6.000000"),  # recorded at Haiku 4.5's prices
    )
    call_command("reprice", stdout=io.StringIO())
    html = desk_text(admin_client)
    assert "$0.6000 of $2 daily budget" in html  # $0.10 + $0.50 at Haiku 5.5's prices
    settings.CLAUDE_DAILY_BUDGET = 0.5
    assert "daily budget reached" in desk_text(admin_client)


def test_the_desk_shows_cards_waiting_for_a_batch_and_when_they_are_collected(fake, admin_client, settings):
    call_command("setup_schedules", stdout=io.StringIO())
    settings.CLAUDE_BATCH_THRESHOLD = 0
    for article in [make_article() for _ in range(3)]:
        enrich_article(article.pk)
    html = desk_text(admin_client)
    assert "3 queued, 0 in a batch" in html and "Next collection" in html
    run_batches()
    state = claude_state()
    assert state.in_batch == 3 and state.batch_submitted_at is not None
    assert state.batch_collect_at is not None
    assert "0 queued, 3 in a batch" in desk_text(admin_client)


def test_the_desk_counts_what_was_dropped_today(fake, admin_client):
    fake.queue(fa.ungrounded(), fa.valid_card(what_next="Buy at shop.example now."))
    enrich_article(make_article().pk)
    enrich_article(make_article().pk)
    state = claude_state(now=timezone.now())
    assert state.claims_dropped_today >= 1 and state.cards_refused_today == 1
    assert "refused for repeating an instruction" in desk_text(admin_client)
