from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from aggregator.ingest.feeds import NotAFeed, parse_feed
from aggregator.ingest.http import FetchError, fetch
from aggregator.ingest.urls import is_http_url
from aggregator.models import Category, Source


class Command(BaseCommand):
    help = "Add a feed as a source (it is fetched once to check it and learn its name)."

    def add_arguments(self, parser):
        parser.add_argument("url", help="The feed's URL (RSS, Atom or RDF).")
        parser.add_argument("--name", default="", help="Display name; default: the feed's title.")
        parser.add_argument("--category", default="", help="Category slug.")
        parser.add_argument("--language", default="", help="Language code; default: the feed's.")
        parser.add_argument("--no-check", action="store_true", help="Do not fetch the feed first.")

    def handle(self, *args, url: str, name: str, category: str, language: str, no_check: bool, **options):
        if not is_http_url(url):
            raise CommandError(f"{url!r} is not an http(s) URL.")
        if Source.objects.filter(feed_url=url).exists():
            raise CommandError(f"{url} is already a source.")
        cat = None
        if category:
            cat = Category.objects.filter(slug=category).first()
            if cat is None:
                known = ", ".join(Category.objects.values_list("slug", flat=True)) or "none yet"
                raise CommandError(f"No category {category!r} (known: {known}).")
        title = link = lang = ""
        if not no_check:
            self.stdout.write(f"Fetching {url} …")
            try:
                response = fetch(url)
                if response.status >= 400:
                    raise CommandError(f"The feed answered HTTP {response.status}. Check the URL.")
                parsed = parse_feed(
                    response.content, url=response.url, content_type=response.headers.get("content-type", "")
                )
            except (FetchError, NotAFeed) as exc:
                raise CommandError(f"{exc}. Check the URL, or pass --no-check to add it anyway.") from exc
            title, link, lang = parsed.title, parsed.link, parsed.language
            self.stdout.write(f"Found {title or 'an untitled feed'!r} with {len(parsed.entries)} entries.")
        name = name or title or url
        source = Source.objects.create(
            name=name[:200],
            slug=Source.unique_slug(name),
            feed_url=url,
            site_url=link,
            language=language or lang,
            category=cat,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Added source #{source.pk} {source.name!r}. Workers poll it within a minute; "
                f"`manage.py poll {source.slug}` polls it now."
            )
        )
