from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from enrichment.prices import reprice


class Command(BaseCommand):
    help = (
        "Recompute the recorded cost of every Claude call and card from its recorded tokens at the "
        "prices in settings (CLAUDE_PRICES, CLAUDE_PRICE_*). Run it after a price change."
    )

    def handle(self, *args, **options):
        row = settings.CLAUDE_PRICES[settings.CLAUDE_MODEL]
        self.stdout.write(
            f"Prices for {settings.CLAUDE_MODEL} ($ per million tokens): input {row['input']:g}, "
            f"output {row['output']:g}, cache write {row['cache_write']:g}, cache read {row['cache_read']:g}"
        )
        counts = reprice()
        self.stdout.write(f"Repriced {counts['calls']} calls and {counts['cards']} cards.")
        if counts["unknown_model"]:
            self.stdout.write(
                self.style.WARNING(
                    f"{counts['unknown_model']} rows name a model with no prices: add it to CLAUDE_PRICES "
                    "and run this again."
                )
            )
