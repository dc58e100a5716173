from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from aggregator.ingest.leases import lease_ends
from aggregator.ingest.run import poll_leased, reader_processes
from aggregator.models import Source
from aggregator.pagecache import new_content


class Command(BaseCommand):
    help = "Poll sources now, in the foreground (by slug, id or feed URL; or --all)."

    def add_arguments(self, parser):
        parser.add_argument("sources", nargs="*", help="Slugs, ids or feed URLs.")
        parser.add_argument("--all", action="store_true", help="Every active source.")
        parser.add_argument(
            "--extract",
            action="store_true",
            help="Also read and enrich each new article now, instead of leaving it to workers.",
        )

    @new_content
    def handle(self, *args, sources: list[str], all: bool, extract: bool, **options):
        if not sources and not all:
            raise CommandError("Name sources to poll, or pass --all.")
        if all:
            chosen = list(Source.objects.filter(is_active=True))
        else:
            chosen = []
            for ref in sources:
                query = Q(slug=ref) | Q(feed_url=ref) | (Q(pk=int(ref)) if ref.isdigit() else Q())
                source = Source.objects.filter(query).first()
                if source is None:
                    raise CommandError(f"No source {ref!r}. `manage.py add_source URL` adds one.")
                chosen.append(source)
        from aggregator.tasks import enqueue_extractions

        # Feeds and pages are fetched several at once; feeds are parsed and stored on this
        # thread, articles read by INGEST_PROCESSES reader processes (aggregator.ingest.run).
        if extract:
            readers = reader_processes()
            self.stdout.write(
                f"Reading new articles in {readers} reader processes."
                if readers > 1
                else "Reading new articles in this process."
            )
        done = [0]

        def polled(source: Source, result) -> None:
            done[0] += 1
            self.stdout.write(f"[{done[0]}/{len(chosen)}] {source.name}: {result}")
            if not extract:
                enqueue_extractions(result.new_article_ids)

        def read(article_id: int, outcome: str) -> None:
            self.stdout.write(f"    article {article_id}: {outcome}")

        # Each source is held with the workers' poll lease while it is polled, so a
        # source a worker is polling right now is skipped, not fetched twice.
        totals, skipped = poll_leased(chosen, read=extract, on_poll=polled, on_read=read)
        for source, until in lease_ends(skipped):
            self.stdout.write(
                self.style.WARNING(
                    f"skipped {source.name}: another process (a worker, or another `poll`) is polling it "
                    f"now; its lease runs until {until:%H:%M:%S}. Run this again after that."
                )
            )
        style = self.style.WARNING if totals.failed or skipped else self.style.SUCCESS
        self.stdout.write(
            style(
                f"Polled {totals.polled} sources: {totals.new} new articles, {totals.failed} failed"
                + (f", {len(skipped)} skipped (polled by another process)." if skipped else ".")
            )
        )
