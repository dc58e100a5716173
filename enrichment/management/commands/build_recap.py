from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from enrichment.recap import build_recap, last_week


class Command(BaseCommand):
    help = "Build (or rebuild) the draft recap of an ISO week; default: last week. Published recaps are kept."

    def add_arguments(self, parser):
        parser.add_argument("--year", type=int)
        parser.add_argument("--week", type=int)
        parser.add_argument("--backend", choices=["extractive", "claude"])
        parser.add_argument("--publish", action="store_true", help="Publish it at once (the demo does).")

    def handle(self, *args, year, week, backend, publish, **options):
        if (year is None) != (week is None):
            raise CommandError("Give both --year and --week, or neither (last week).")
        if year is None:
            year, week = last_week()
        try:
            recap = build_recap(year, week, backend=backend)
        except ValueError as exc:
            raise CommandError(f"No such week: {exc}") from exc
        if publish and recap.status != recap.Status.PUBLISHED:
            recap.status, recap.published_at = recap.Status.PUBLISHED, timezone.now()
            recap.save(update_fields=["status", "published_at", "updated_at"])
        items = sum(len(s["items"]) for s in recap.sections)
        self.stdout.write(
            self.style.SUCCESS(
                f"{recap.title}: {recap.status}, {items} stories in {len(recap.sections)} sections "
                f"(by {recap.backend})." + ("" if publish else " Edit and publish it in the admin.")
            )
        )
