"""A small loopback web server for the demo publications: an RSS or Atom feed per
publication and one HTML page per article, with ETag/Last-Modified and 304s, so the
real fetch → parse → extract path runs end to end without the internet.

    python -m aggregator.demo.server --port 9000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cached_property
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

logger = logging.getLogger(__name__)
CONTENT_DIR = Path(__file__).parent / "content"
DEMO_NOTE = "Demo content written for this project. Fictional: not real news."
ATOM_SOURCES = {"rheinblick"}  # one publication serves Atom, the others RSS 2.0


@dataclass
class Publication:
    slug: str
    name: str
    language: str
    category: str
    description: str
    articles: list[dict]


def load_publications(content_dir: Path = CONTENT_DIR) -> list[Publication]:
    pubs = []
    for path in sorted(content_dir.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        src = data["source"]
        pubs.append(
            Publication(
                src["slug"],
                src["name"],
                src["language"],
                src.get("category", ""),
                src.get("description", ""),
                data["articles"],
            )
        )
    return pubs


class DemoSite:
    def __init__(self, base_url: str, anchor: datetime, content_dir: Path = CONTENT_DIR):
        self.base_url = base_url.rstrip("/")
        self.anchor = anchor
        self.publications = {p.slug: p for p in load_publications(content_dir)}

    def published(self, article: dict) -> datetime:
        return self.anchor - timedelta(minutes=int(article["age_minutes"]))

    def article_url(self, pub: Publication, article: dict) -> str:
        return f"{self.base_url}/{pub.slug}/{article['slug']}.html"

    def feed_url(self, pub: Publication) -> str:
        return f"{self.base_url}/{pub.slug}/feed.xml"

    def rss(self, pub: Publication) -> str:
        items = []
        for a in sorted(pub.articles, key=lambda a: a["age_minutes"]):
            items.append(
                "<item>"
                f"<title>{xml_escape(a['title'])}</title>"
                f"<link>{xml_escape(self.article_url(pub, a))}</link>"
                f'<guid isPermaLink="false">urn:newsdesk-demo:{pub.slug}:{a["slug"]}</guid>'
                f"<pubDate>{format_datetime(self.published(a))}</pubDate>"
                f"<dc:creator>{xml_escape(a.get('author', ''))}</dc:creator>"
                f"<category>{xml_escape(a.get('category', ''))}</category>"
                f"<description>{xml_escape(a['summary'])}</description>"
                "</item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>{xml_escape(pub.name)}</title><link>{self.base_url}/{pub.slug}/</link>"
            f"<description>{xml_escape(pub.description + ' ' + DEMO_NOTE)}</description>"
            f"<language>{pub.language}</language><ttl>15</ttl>" + "".join(items) + "</channel></rss>"
        )

    def atom(self, pub: Publication) -> str:
        entries = []
        for a in sorted(pub.articles, key=lambda a: a["age_minutes"]):
            when = self.published(a).isoformat()
            entries.append(
                "<entry>"
                f"<title>{xml_escape(a['title'])}</title>"
                f'<link rel="alternate" href="{xml_escape(self.article_url(pub, a))}"/>'
                f"<id>urn:newsdesk-demo:{pub.slug}:{a['slug']}</id>"
                f"<published>{when}</published><updated>{when}</updated>"
                f"<author><name>{xml_escape(a.get('author', ''))}</name></author>"
                f"<summary>{xml_escape(a['summary'])}</summary>"
                "</entry>"
            )
        newest = max((self.published(a) for a in pub.articles), default=self.anchor).isoformat()
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{pub.language}">'
            f"<title>{xml_escape(pub.name)}</title>"
            f"<subtitle>{xml_escape(pub.description + ' ' + DEMO_NOTE)}</subtitle>"
            f'<link rel="alternate" href="{self.base_url}/{pub.slug}/"/>'
            f'<link rel="self" href="{self.feed_url(pub)}"/>'
            f"<id>urn:newsdesk-demo:{pub.slug}</id><updated>{newest}</updated>" + "".join(entries) + "</feed>"
        )

    def page(self, pub: Publication, a: dict) -> str:
        when = self.published(a)
        paragraphs = "".join(f"<p>{escape(p)}</p>" for p in a["paragraphs"])
        others = "".join(
            f'<li><a href="{escape(self.article_url(pub, o))}">{escape(o["title"])}</a></li>'
            for o in pub.articles[:5]
            if o is not a
        )
        return f"""<!doctype html>
<html lang="{pub.language}"><head><meta charset="utf-8">
<title>{escape(a["title"])} | {escape(pub.name)}</title>
<meta name="author" content="{escape(a.get("author", ""))}">
<meta name="description" content="{escape(a["summary"])}">
<meta property="og:title" content="{escape(a["title"])}">
<meta property="og:site_name" content="{escape(pub.name)}">
<meta property="article:published_time" content="{when.isoformat()}">
<link rel="canonical" href="{escape(self.article_url(pub, a))}">
<link rel="alternate" type="application/rss+xml" href="{escape(self.feed_url(pub))}">
</head><body>
<header><nav><a href="/{pub.slug}/">{escape(pub.name)}</a> · <a href="/{pub.slug}/">Home</a>
 · <a href="/{pub.slug}/">Newsletter</a> · <a href="/{pub.slug}/">Subscribe</a></nav></header>
<main><article>
<h1>{escape(a["title"])}</h1>
<p class="byline">By <span class="author">{escape(a.get("author", ""))}</span> ·
<time datetime="{when.isoformat()}">{when:%d %B %Y, %H:%M} UTC</time></p>
<p class="standfirst"><strong>{escape(a["summary"])}</strong></p>
{paragraphs}
</article></main>
<aside><h2>More from {escape(pub.name)}</h2><ul>{others}</ul></aside>
<footer><p class="demo-note"><em>{escape(DEMO_NOTE)}</em></p><p>© {escape(pub.name)} · Privacy · Terms · Cookie settings</p></footer>
</body></html>"""

    def index(self) -> str:
        rows = "".join(
            f'<li><a href="{escape(self.feed_url(p))}">{escape(p.name)}</a> ({p.language}, '
            f"{len(p.articles)} articles)</li>"
            for p in self.publications.values()
        )
        return (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Demo publications"
            f"</title></head><body><h1>Demo publications</h1><p>{DEMO_NOTE}</p><ul>{rows}</ul>"
            "</body></html>"
        )

    def resolve(self, path: str) -> tuple[str, str] | None:
        """(content type, body) for a path, or None."""
        parts = [p for p in path.split("?")[0].split("/") if p]
        if not parts:
            return "text/html; charset=utf-8", self.index()
        pub = self.publications.get(parts[0])
        if pub is None:
            return None
        if len(parts) == 1:
            return "text/html; charset=utf-8", self.index()
        if parts[1] == "feed.xml":
            if pub.slug in ATOM_SOURCES:
                return "application/atom+xml; charset=utf-8", self.atom(pub)
            return "application/rss+xml; charset=utf-8", self.rss(pub)
        for a in pub.articles:
            if parts[1] == f"{a['slug']}.html":
                return "text/html; charset=utf-8", self.page(pub, a)
        return None

    @cached_property
    def last_modified(self) -> str:
        return format_datetime(self.anchor.replace(microsecond=0), usegmt=True)


def make_handler(site: DemoSite):
    class Handler(BaseHTTPRequestHandler):
        server_version = "NewsdeskDemo/1.0"

        def do_GET(self):  # noqa: N802
            found = site.resolve(self.path)
            if found is None:
                self.send_error(404, "No such demo page")
                return
            content_type, body = found
            data = body.encode("utf-8")
            etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", site.last_modified)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            logger.debug("demo server: " + format, *args)

    return Handler


def anchor_time(state_file: Path | None, *, max_age: timedelta = timedelta(days=3)) -> datetime:
    """The demo's "now": kept in a file so restarts do not move every date, and renewed
    when it is older than `max_age` so the demo stays fresh."""
    now = datetime.now(UTC).replace(microsecond=0)
    if state_file and state_file.exists():
        try:
            anchor = datetime.fromisoformat(state_file.read_text().strip())
            if timedelta(0) <= now - anchor <= max_age:
                return anchor
        except ValueError:
            pass
    if state_file:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(now.isoformat())
    return now


def make_server(
    host: str, port: int, *, anchor: datetime | None = None
) -> tuple[ThreadingHTTPServer, DemoSite]:
    server = ThreadingHTTPServer((host, port), None)  # type: ignore[arg-type]
    actual_port = server.server_address[1]
    site = DemoSite(f"http://{host}:{actual_port}", anchor or datetime.now(UTC).replace(microsecond=0))
    server.RequestHandlerClass = make_handler(site)
    server.daemon_threads = True
    return server, site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--state", type=Path, default=None, help="File that keeps the demo's clock.")
    args = parser.parse_args()
    server, site = make_server(args.host, args.port, anchor=anchor_time(args.state))
    print(f"Demo publications on {site.base_url}/ ({len(site.publications)} feeds)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
