from __future__ import annotations

from django.core.management.base import BaseCommand

from aggregator.pagecache import new_content
from aggregator.tasks import recover_stuck_task


class Command(BaseCommand):
    help = (
        "Put articles a dead worker left half-done back in the queue (the task workers run every 5 minutes)."
    )

    @new_content
    def handle(self, *args, **options):
        self.stdout.write(recover_stuck_task())
