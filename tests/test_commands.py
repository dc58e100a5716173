from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from aggregator.models import Article, Source
from tests.conftest import REPO
from tests.feeds import LOREM, page, rss
from tests.servers import Reply

pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out, **kwargs)
    return out.getvalue()


def test_add_source_checks_the_feed_and_learns_its_name(server):
    url = server.route(
        "/feed.xml",
        Reply(
            200,
            rss(
                [{"guid": "1", "title": "One", "link": server.url("/1")}],
                title="The Daily Test",
                language="fr",
            ),
        ),
    )
    out = run("add_source", url, "--category", "ai")
    source = Source.objects.get()
    assert source.name == "The Daily Test" and source.language == "fr" and source.category.slug == "ai"
    assert "Added source" in out


def test_add_source_refuses_a_page_that_is_not_a_feed(server):
    url = server.route("/", Reply(200, page("Home", LOREM), {"Content-Type": "text/html"}))
    with pytest.raises(CommandError, match="not a feed"):
        run("add_source", url)
    assert not Source.objects.exists()


def test_add_source_refuses_a_duplicate_and_a_bad_url(server):
    Source.objects.create(name="x", slug="x", feed_url="http://127.0.0.1:9/feed.xml")
    with pytest.raises(CommandError, match="already"):
        run("add_source", "http://127.0.0.1:9/feed.xml")
    with pytest.raises(CommandError, match="not an http"):
        run("add_source", "file:///etc/passwd")


def test_poll_shows_progress_and_extracts_on_request(server):
    server.route("/1.html", Reply(200, page("One", LOREM), {"Content-Type": "text/html"}))
    url = server.route(
        "/feed.xml", Reply(200, rss([{"guid": "1", "title": "One", "link": server.url("/1.html")}]))
    )
    Source.objects.create(name="S", slug="s", feed_url=url)
    out = run("poll", "s", "--extract")
    assert "[1/1] S: 1 new of 1 entries" in out and "extracted" in out
    assert Article.objects.get().state == Article.State.ENRICHED
    assert "1 new of 1" not in run("poll", "--all")  # nothing new the second time


def test_poll_says_what_to_do_for_an_unknown_source():
    with pytest.raises(CommandError, match="add_source"):
        run("poll", "nope")
    with pytest.raises(CommandError, match="--all"):
        run("poll")


def test_extract_page_prints_one_json_object_per_page(server, tmp_path):
    path = tmp_path / "story.html"
    path.write_bytes(page("Budget passes", LOREM))
    url = server.route(
        "/s.html", Reply(200, page("Over the web", LOREM, lang="de"), {"Content-Type": "text/html"})
    )
    out = run("extract_page", str(path), url, str(tmp_path / "missing.html"))
    lines = [json.loads(line) for line in out.strip().splitlines() if line.startswith("{")]
    assert len(lines) == 3
    assert {"title", "author", "date", "language", "image", "text"} <= set(lines[0])
    assert lines[0]["title"] == "Budget passes" and "public transport" in lines[0]["text"]
    assert lines[1]["language"] == "de"
    assert "no such file" in lines[2]["error"]


def test_the_site_refuses_to_start_without_a_secret_key_when_debug_is_off():
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env["DJANGO_SETTINGS_MODULE"] = "aggregator.settings"
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "SECRET_KEY is not set" in proc.stderr
