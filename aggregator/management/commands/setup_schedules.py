from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand
from django.utils import timezone
from django_q.models import Schedule

EVERY_MINUTES = [
    # (name, func, minutes)
    ("dispatch polls", "aggregator.tasks.dispatch_polls", 1),
    # Hands out again what a dead worker or a lost task left (leases that ran out).
    ("recover stuck articles", "aggregator.tasks.recover_stuck_task", 1),
    ("claude batches", "aggregator.tasks.run_batches_task", 2),
]
WEEKLY_RECAP = ("weekly recap draft", "aggregator.tasks.build_recap_task")


def next_monday_morning(now: dt.datetime, hour: int = 6) -> dt.datetime:
    local = timezone.localtime(now)
    monday = (local + dt.timedelta(days=(7 - local.weekday()) % 7)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    return monday if monday > local else monday + dt.timedelta(days=7)


class Command(BaseCommand):
    help = "Declare every periodic task (idempotent: run it on every deploy)."

    def handle(self, *args, **options):
        for name, func, minutes in EVERY_MINUTES:
            _, created = Schedule.objects.update_or_create(
                name=name,
                defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
            )
            self.stdout.write(f"{'created' if created else 'updated'} schedule: {name} every {minutes} min")
        name, func = WEEKLY_RECAP
        _, created = Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.WEEKLY, "repeats": -1}
        )
        if created:  # keep the slot of an existing schedule; a new one starts next Monday
            Schedule.objects.filter(name=name).update(next_run=next_monday_morning(timezone.now()))
        self.stdout.write(f"{'created' if created else 'updated'} schedule: {name} on Monday mornings")
        wanted = {n for n, _f, _m in EVERY_MINUTES} | {name}
        stale = Schedule.objects.filter(func__startswith="aggregator.").exclude(name__in=wanted)
        for schedule in stale:
            self.stdout.write(f"removed stale schedule: {schedule.name}")
        stale.delete()
