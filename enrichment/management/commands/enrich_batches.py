from __future__ import annotations

from django.core.management.base import BaseCommand

from aggregator.pagecache import new_content
from enrichment.batches import run_batches


class Command(BaseCommand):
    help = "Collect ended Claude batches and submit the queued articles (what workers do every 2 minutes)."

    @new_content
    def handle(self, *args, **options):
        self.stdout.write(run_batches())
