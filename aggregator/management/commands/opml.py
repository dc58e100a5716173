from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.ingest.opml import OpmlError, export_opml, import_opml
from aggregator.tasks import enqueue_address_checks


class Command(BaseCommand):
    help = "Import sources from an OPML file (all or nothing), or export them: opml import FILE | opml export [FILE]"

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["import", "export"])
        parser.add_argument("file", nargs="?", help="For export, default: standard output.")

    def handle(self, *args, action: str, file: str | None, **options):
        if action == "export":
            text = export_opml()
            if file:
                Path(file).write_text(text, encoding="utf-8")
                self.stderr.write(f"Wrote {file}.")
            else:
                self.stdout.write(text, ending="")
            return
        if not file:
            raise CommandError("Give the OPML file to import.")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            result = import_opml(path.read_bytes())
        except OpmlError as exc:
            raise CommandError(f"{exc}. Fix the file and run the import again.") from exc
        enqueue_address_checks([s.pk for s in result.added])
        for n, source in enumerate(result.added, 1):
            self.stdout.write(f"[{n}/{len(result.added)}] added {source.name} ({source.feed_url})")
        for line in result.skipped:
            self.stdout.write(f"skipped {line}")
        self.stdout.write(
            self.style.SUCCESS(f"Imported {len(result.added)} sources, skipped {len(result.skipped)}.")
        )
        if result.added:
            self.stdout.write(
                "The workers (manage.py qcluster) check where each feed's host points and pause "
                "any that point at a private address."
            )
