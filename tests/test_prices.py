"""Claude's prices: a table per model in settings, checked at start-up, and recorded
spend recomputed from recorded tokens when the prices change."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from enrichment.backends.claude import Usage
from enrichment.models import ApiCall, Insight
from enrichment.prices import cost_usd
from enrichment.service import enrich_article
from tests import fake_anthropic as fa
from tests.test_claude import make_article

ROOT = Path(__file__).resolve().parent.parent
MILLION = 1_000_000


def test_it_prices_the_default_model_at_haiku_5_5_list_prices(settings):
    assert settings.CLAUDE_MODEL == "claude-haiku-5-5"
    # Anthropic's published prices for Haiku 5.5, US dollars per million tokens.
    assert cost_usd(model="claude-haiku-5-5", input_tokens=MILLION) == Decimal("0.10")
    assert cost_usd(model="claude-haiku-5-5", output_tokens=MILLION) == Decimal("0.50")
    assert cost_usd(model="claude-haiku-5-5", cache_write_tokens=MILLION) == Decimal("0.125")
    assert cost_usd(model="claude-haiku-5-5", cache_read_tokens=MILLION) == Decimal("0.01")
    # 12,345 in + 2,000 out + 5,000 written + 40,000 read = 0.0012345 + 0.001 + 0.000625 + 0.0004
    assert Usage(12_345, 2_000, 40_000, 5_000).cost() == Decimal("0.003260")
    assert Usage(12_345, 2_000, 40_000, 5_000).cost(batch=True) == Decimal("0.001630")


@pytest.mark.django_db
def test_it_records_a_calls_spend_at_the_published_price(settings, monkeypatch):
    with fa.FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        settings.ANTHROPIC_API_KEY, settings.CLAUDE_DAILY_BUDGET = "test-key", 100.0
        enrich_article(make_article().pk, backend="claude")
    call = ApiCall.objects.get()
    assert call.outcome == "ok" and call.input_tokens and call.output_tokens and call.cache_write_tokens
    expected = (
        Decimal(call.input_tokens) * Decimal("0.10")
        + Decimal(call.output_tokens) * Decimal("0.50")
        + Decimal(call.cache_write_tokens) * Decimal("0.125")
        + Decimal(call.cache_read_tokens) * Decimal("0.01")
    ) / MILLION
    assert call.cost_usd == expected.quantize(Decimal("0.000001"))
    assert Insight.objects.get().cost_usd == call.cost_usd


@pytest.mark.django_db
def test_it_recomputes_recorded_spend_when_the_prices_change(settings):
    article = make_article()
    call = ApiCall.objects.create(
        article=article,
        backend="claude",
        model_name="claude-haiku-5-5",
        outcome="ok",
        input_tokens=2_000_000,
        output_tokens=1_000_000,
        cost_usd=Decimal("7.000000"),  # recorded at Haiku 4.5's prices: $1 / $5
    )
    batched = ApiCall.objects.create(
        article=None,
        backend="claude",
        model_name="claude-haiku-5-5",
        batch_id="msgbatch_1",
        outcome="ok",
        output_tokens=1_000_000,
        cost_usd=Decimal("2.500000"),
    )
    other = ApiCall.objects.create(
        backend="claude", model_name="claude-retired-1", outcome="ok", input_tokens=5, cost_usd=Decimal("1")
    )
    Insight.objects.create(
        article=article,
        backend="claude",
        model_name="claude-haiku-5-5",
        generated_at=article.collected_at,
        input_tokens=2_000_000,
        output_tokens=1_000_000,
        cost_usd=Decimal("7.000000"),
    )
    out = io.StringIO()
    call_command("reprice", stdout=out)
    assert "Repriced 2 calls and 1 cards" in out.getvalue() and "claude-retired-1" not in out.getvalue()
    assert "1 rows name a model with no prices" in out.getvalue()
    call.refresh_from_db(), batched.refresh_from_db(), other.refresh_from_db()
    assert call.cost_usd == Decimal("0.700000")  # 2 × $0.10 + 1 × $0.50
    assert batched.cost_usd == Decimal("0.250000")  # half of $0.50
    assert other.cost_usd == Decimal("1")  # unknown model: left alone
    assert Insight.objects.get().cost_usd == Decimal("0.700000")

    settings.CLAUDE_PRICES = {
        "claude-haiku-5-5": {"input": 1, "output": 5, "cache_write": 1.25, "cache_read": 0.1}
    }
    call_command("reprice", stdout=io.StringIO())
    call.refresh_from_db()
    assert call.cost_usd == Decimal("7.000000")


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, "SECRET_KEY": "x", "DJANGO_SETTINGS_MODULE": "aggregator.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_with_a_model_that_has_no_prices():
    result = start({"CLAUDE_MODEL": "claude-sonnet-5-5"})
    assert result.returncode != 0
    assert "CLAUDE_MODEL='claude-sonnet-5-5' has no prices" in result.stderr
    assert "CLAUDE_PRICES" in result.stderr and "claude-haiku-5-5" in result.stderr


def test_it_starts_with_a_new_model_given_its_prices():
    prices = '{"claude-sonnet-5-5": {"input": 1, "output": 5, "cache_write": 1.25, "cache_read": 0.1}}'
    assert start({"CLAUDE_MODEL": "claude-sonnet-5-5", "CLAUDE_PRICES": prices}).returncode == 0
    partial = start({"CLAUDE_MODEL": "claude-sonnet-5-5", "CLAUDE_PRICE_INPUT": "1"})
    assert partial.returncode != 0 and "CLAUDE_PRICE_OUTPUT" in partial.stderr
