from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from aggregator.models import Story
from aggregator.pagecache import new_content
from aggregator.tasks import write_story_card_task
from enrichment.story_claude import claude_configured


class Command(BaseCommand):
    help = "Have Claude write the card of stories with several publishers (those not up to date)."

    def add_arguments(self, parser):
        parser.add_argument("story_ids", nargs="*", type=int, help="Only these stories.")

    @new_content
    def handle(self, *args, story_ids: list[int], **options):
        if not claude_configured():
            raise CommandError(
                "Story cards by Claude need ANTHROPIC_API_KEY, ENRICHMENT_BACKEND=claude and "
                "CLAUDE_STORY_CARDS=1; readers meanwhile see the offline story card."
            )
        stories = Story.objects.filter(publisher_count__gt=1).order_by("-last_seen_at")
        if story_ids:
            stories = stories.filter(pk__in=story_ids)
        ids = list(stories.values_list("pk", flat=True))
        for n, story_id in enumerate(ids, 1):
            self.stdout.write(f"[{n}/{len(ids)}] story #{story_id}: {write_story_card_task(story_id)}")
        self.stdout.write(self.style.SUCCESS(f"{len(ids)} stories looked at."))
