from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from aggregator.ingest.extract import ExtractionError, extract_html
from aggregator.ingest.http import FetchError
from aggregator.ingest.pages import fetch_and_extract
from aggregator.ingest.urls import is_http_url


class Command(BaseCommand):
    help = (
        "Print the extraction of each page (a file path or an http(s) URL) as one JSON "
        "object per line: title, author, date, language, image, text."
    )

    def add_arguments(self, parser):
        parser.add_argument("pages", nargs="+", metavar="PATH_OR_URL")

    def handle(self, *args, pages: list[str], **options):
        failures = 0
        for ref in pages:
            try:
                if is_http_url(ref):
                    result = fetch_and_extract(ref)
                else:
                    path = Path(ref)
                    if not path.is_file():
                        raise ExtractionError(f"no such file: {ref}")
                    result = extract_html(path.read_bytes(), url="")
                record = {"source": ref, **result.as_dict()}
                record.pop("sitename", None)
            except (FetchError, ExtractionError, OSError) as exc:
                failures += 1
                record = {"source": ref, "error": str(exc)}
            self.stdout.write(json.dumps(record, ensure_ascii=False))
        if failures:
            self.stderr.write(f"{failures} of {len(pages)} pages could not be extracted.")
