"""What Claude's tokens cost, from the price table in settings (CLAUDE_PRICES), and the
recomputation of recorded spend from recorded tokens after the prices change."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)
MICRO = Decimal("0.000001")


def prices_for(model: str) -> dict[str, float] | None:
    """US dollars per million tokens for `model`, or None when the table has no row."""
    return settings.CLAUDE_PRICES.get(model)


def cost_usd(
    *,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
    batch: bool = False,
) -> Decimal:
    """Dollars for these tokens on `model` at the table's prices (batches at the discount).
    A model without prices is an error: the configured one is checked at start-up."""
    row = prices_for(model)
    if row is None:
        raise KeyError(f"no prices for model {model!r} in CLAUDE_PRICES")
    micro_dollars = (
        Decimal(input_tokens) * Decimal(str(row["input"]))
        + Decimal(output_tokens) * Decimal(str(row["output"]))
        + Decimal(cache_write_tokens) * Decimal(str(row["cache_write"]))
        + Decimal(cache_read_tokens) * Decimal(str(row["cache_read"]))
    )
    dollars = micro_dollars / 1_000_000
    if batch:
        dollars *= Decimal(str(settings.CLAUDE_BATCH_DISCOUNT))
    return dollars.quantize(MICRO)


def reprice() -> dict[str, int]:
    """Recompute the cost of every recorded call, and of every card, from its recorded
    tokens at today's prices. Rows of a model the table does not know are left as they
    are and counted. Idempotent."""
    from enrichment.models import ApiCall, Insight

    counts = {"calls": 0, "cards": 0, "unknown_model": 0}
    with transaction.atomic():
        for call in ApiCall.objects.select_for_update().iterator():
            if prices_for(call.model_name) is None:
                counts["unknown_model"] += 1
                continue
            cost = cost_usd(model=call.model_name, batch=bool(call.batch_id), **_tokens(call))
            if cost != call.cost_usd:
                ApiCall.objects.filter(pk=call.pk).update(cost_usd=cost)
                counts["calls"] += 1
        # A card costs what the call that wrote it (or failed to) cost: the latest call of
        # its article with the same tokens. A copied card (twin) cost nothing.
        cards = Insight.objects.select_for_update().exclude(claude_status=Insight.Claude.SHARED)
        for card in cards.iterator():
            tokens = _tokens(card)
            if not any(tokens.values()):
                continue
            call = (
                ApiCall.objects.filter(article_id=card.article_id, **tokens).order_by("-created_at").first()
            )
            if call is not None and prices_for(call.model_name) is not None:
                cost = call.cost_usd
            elif prices_for(card.model_name) is not None:
                cost = cost_usd(model=card.model_name, **tokens)
            else:
                counts["unknown_model"] += 1
                continue
            if cost != card.cost_usd:
                Insight.objects.filter(pk=card.pk).update(cost_usd=cost)
                counts["cards"] += 1
    return counts


def _tokens(row) -> dict[str, int]:
    return {
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cache_read_tokens": row.cache_read_tokens,
    }
