from __future__ import annotations

from django.core.management.base import BaseCommand

from aggregator.models import Article
from aggregator.pagecache import new_content
from enrichment.stories import assign_story, recluster


class Command(BaseCommand):
    help = "Put articles without a story into stories; with --all, cluster everything again from scratch."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Recluster every article (idempotent).")

    @new_content
    def handle(self, *args, all: bool, **options):
        if all:

            def progress(n, total):
                if n % 100 == 0 or n == total:
                    self.stdout.write(f"[{n}/{total}] clustered")

            stories = recluster(progress=progress)
            self.stdout.write(self.style.SUCCESS(f"{stories} stories."))
            return
        ids = list(
            Article.objects.filter(story__isnull=True).order_by("sort_at").values_list("pk", flat=True)
        )
        for n, article_id in enumerate(ids, 1):
            story = assign_story(article_id)
            self.stdout.write(f"[{n}/{len(ids)}] #{article_id} → story #{story.pk if story else '-'}")
        self.stdout.write(self.style.SUCCESS(f"Clustered {len(ids)} articles."))
