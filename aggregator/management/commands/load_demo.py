from __future__ import annotations

from django.core.management.base import BaseCommand

from aggregator.demo.server import load_publications
from aggregator.models import Category, Source


class Command(BaseCommand):
    help = "Add (or update) the offline demo publications as sources, served by the demo server."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:9000",
            help="Where the demo server runs (python -m aggregator.demo.server).",
        )

    def handle(self, *args, base_url: str, **options):
        base_url = base_url.rstrip("/")
        for pub in load_publications():
            category = Category.objects.filter(slug=pub.category).first()
            source, created = Source.objects.update_or_create(
                slug=f"demo-{pub.slug}",
                defaults={
                    "name": pub.name,
                    "feed_url": f"{base_url}/{pub.slug}/feed.xml",
                    "site_url": f"{base_url}/{pub.slug}/",
                    "language": pub.language,
                    "category": category,
                    "is_demo": True,
                },
            )
            verb = "added" if created else "updated"
            self.stdout.write(
                f"{verb} demo source {source.name} ({len(pub.articles)} articles) → {source.feed_url}"
            )
