from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from aggregator.models import Article
from aggregator.pagecache import new_content
from enrichment.models import Insight
from enrichment.service import enrich_article

State = Article.State


class Command(BaseCommand):
    help = "Write (or rewrite) the cards of the articles a filter selects, with progress."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Article ids.")
        parser.add_argument("--all", action="store_true", help="Every extracted or enriched article.")
        parser.add_argument("--source", help="Only this source (slug).")
        parser.add_argument("--since", type=int, metavar="DAYS", help="Only articles of the last DAYS days.")
        parser.add_argument("--missing", action="store_true", help="Only articles without a card.")
        parser.add_argument("--failed", action="store_true", help="Only cards Claude failed to write.")
        parser.add_argument(
            "--backend", choices=["extractive", "claude"], help="Default: ENRICHMENT_BACKEND."
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Queue them for one Message Batch (half price) instead of calling now.",
        )

    @new_content
    def handle(self, *args, ids, all, source, since, missing, failed, backend, batch, **options):
        articles = Article.objects.filter(state__in=[State.EXTRACTED, State.ENRICHED])
        if ids:
            articles = articles.filter(pk__in=ids)
        elif not (all or source or since or missing or failed):
            raise CommandError("Choose articles: ids, --all, --source, --since, --missing or --failed.")
        if source:
            articles = articles.filter(source__slug=source)
        if since:
            articles = articles.filter(sort_at__gte=timezone.now() - timedelta(days=since))
        if missing:
            articles = articles.filter(insight__isnull=True)
        if failed:
            articles = articles.filter(
                insight__claude_status__in=[Insight.Claude.FAILED, Insight.Claude.RETRY]
            )
        chosen = list(articles.order_by("-sort_at").values_list("pk", flat=True))
        if batch:
            return self.queue_batch(chosen)
        for n, article_id in enumerate(chosen, 1):
            outcome = enrich_article(article_id, force=True, backend=backend)
            self.stdout.write(f"[{n}/{len(chosen)}] #{article_id}: {outcome}")
        self.stdout.write(self.style.SUCCESS(f"Enriched {len(chosen)} articles."))

    def queue_batch(self, chosen: list[int]) -> None:
        if settings.ENRICHMENT_BACKEND != "claude" or not settings.ANTHROPIC_API_KEY:
            raise CommandError("Batches go to Claude: set ANTHROPIC_API_KEY first.")
        from enrichment.batches import submit_batch

        have = set(Insight.objects.filter(article_id__in=chosen).values_list("article_id", flat=True))
        for article_id in chosen:
            if article_id not in have:
                enrich_article(article_id, backend="extractive")
        Insight.objects.filter(article_id__in=chosen).update(claude_status=Insight.Claude.QUEUED)
        batch_id = submit_batch(article_ids=chosen)
        self.stdout.write(
            self.style.SUCCESS(
                f"Submitted batch {batch_id} with {len(chosen)} articles; workers apply the results when it ends "
                "(`manage.py enrich_batches` does it now)."
            )
        )
