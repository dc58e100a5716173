from __future__ import annotations

from django.core.management.base import BaseCommand
from django_q.models import Schedule

SCHEDULES = [
    # (name, func, minutes)
    ("dispatch polls", "aggregator.tasks.dispatch_polls", 1),
    ("recover stuck articles", "aggregator.tasks.recover_stuck_task", 5),
    ("claude batches", "aggregator.tasks.run_batches_task", 2),
]


class Command(BaseCommand):
    help = "Declare every periodic task (idempotent: run it on every deploy)."

    def handle(self, *args, **options):
        wanted = {name for name, _func, _minutes in SCHEDULES}
        for name, func, minutes in SCHEDULES:
            _, created = Schedule.objects.update_or_create(
                name=name,
                defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
            )
            self.stdout.write(f"{'created' if created else 'updated'} schedule: {name} every {minutes} min")
        stale = Schedule.objects.filter(func__startswith="aggregator.").exclude(name__in=wanted)
        for schedule in stale:
            self.stdout.write(f"removed stale schedule: {schedule.name}")
        stale.delete()
