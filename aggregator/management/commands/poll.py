from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from aggregator.ingest.pages import extract_article
from aggregator.ingest.poll import poll_source
from aggregator.models import Source
from enrichment.service import enrich_article
from enrichment.stories import assign_story


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

        total_new = failed = 0
        for n, source in enumerate(chosen, 1):
            source.claim_poll(now=timezone.now(), lease_minutes=source.poll_interval or 30)
            result = poll_source(source)
            total_new += len(result.new_article_ids)
            failed += result.status == "failed"
            self.stdout.write(f"[{n}/{len(chosen)}] {source.name}: {result}")
            if extract:
                for i, article_id in enumerate(result.new_article_ids, 1):
                    outcome = extract_article(article_id)
                    if not outcome.startswith("skipped"):
                        assign_story(article_id)
                        outcome += "; " + enrich_article(article_id)
                    self.stdout.write(f"    [{i}/{len(result.new_article_ids)}] {outcome}")
            else:
                enqueue_extractions(result.new_article_ids)
        style = self.style.WARNING if failed else self.style.SUCCESS
        self.stdout.write(style(f"Polled {len(chosen)} sources: {total_new} new articles, {failed} failed."))
