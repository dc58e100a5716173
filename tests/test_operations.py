"""What operators and their monitors meet: HEAD on every page, a favicon, security
headers, a clean `check --deploy` with the production example environment, SITE_URL
following PORT, the local .env `make run` keeps, admin sign-in throttling, and a valid
recap Atom feed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone
from dotenv import dotenv_values
from lxml import etree

from aggregator.localenv import ensure
from aggregator.models import Article, Source
from enrichment.models import WeeklyRecap
from tests.conftest import REPO

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_each(demo):
    article = Article.objects.filter(story__isnull=False).select_related("source", "category").first()
    WeeklyRecap.objects.create(
        iso_year=2026,
        iso_week=48,
        title="Week 48",
        intro="The week.",
        status="published",
        published_at=timezone.now(),
    )
    return article


def reader_urls(article: Article) -> list[str]:
    return [
        "/",
        article.get_absolute_url(),
        article.story.get_absolute_url(),
        article.category.get_absolute_url(),
        article.source.get_absolute_url(),
        "/for/developers/",
        "/search/?q=budget",
        "/week/2026/48/",
        "/recap/",
        "/feeds/rss/",
        "/feeds/atom/",
        "/feeds/json/",
        "/feeds/recap/atom/",
        "/sitemap.xml",
        "/robots.txt",
        "/favicon.ico",
    ]


def test_every_page_answers_head(client, one_of_each):
    for url in reader_urls(one_of_each):
        get = client.get(url)
        head = client.head(url)
        assert head.status_code == get.status_code == 200, url
        assert head.content == b"", url
        assert head["Content-Type"] == get["Content-Type"], url


def test_the_admin_answers_head(client):
    assert client.head("/admin/login/").status_code == 200


def test_there_is_a_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert 'rel="icon"' in client.get("/").content.decode()


def test_pages_carry_a_content_security_policy(client, one_of_each):
    for url in ("/", one_of_each.get_absolute_url(), "/", "/admin/login/"):  # "/" twice: cached
        policy = client.get(url)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "object-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy


def production_env(tmp_path) -> dict[str, str]:
    example = {k: v or "" for k, v in dotenv_values(REPO / ".env.example").items()}
    env = {k: v for k, v in os.environ.items() if k not in example and k != "DJANGO_SETTINGS_MODULE"}
    env.update(example)
    env.update(SECRET_KEY=secrets.token_urlsafe(50), DATA_DIR=str(tmp_path))
    return env


def test_check_deploy_is_clean_with_the_production_example_environment(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def site_url(env: dict[str, str]) -> str:
    code = "from django.conf import settings; print(settings.SITE_URL)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_site_url_follows_port_unless_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"SITE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="1", DATA_DIR=str(tmp_path), PORT="8123")
    assert site_url(env) == "http://127.0.0.1:8123"
    env["SITE_URL"] = "https://news.example.com/"
    assert site_url(env) == "https://news.example.com"


def test_make_run_keeps_a_local_env_for_manage_py(tmp_path):
    path = tmp_path / ".env"
    assert set(ensure(path, port=8400)) == {"DEBUG", "SECRET_KEY", "FETCH_ALLOWED_NETWORKS", "PORT"}
    first = dotenv_values(path)
    assert first["DEBUG"] == "1" and len(first["SECRET_KEY"]) >= 50 and first["PORT"] == "8400"
    assert ensure(path, port=8500) == ["PORT"]  # the secret is made once
    again = dotenv_values(path)
    assert again["SECRET_KEY"] == first["SECRET_KEY"] and again["PORT"] == "8500"


# --- sign-in throttling -------------------------------------------------------------


@pytest.fixture
def editor():
    cache.clear()
    get_user_model().objects.create_superuser("editor", "e@example.com", "right-password-1")
    yield
    cache.clear()


def sign_in(client, password: str, username: str = "editor", address: str = "192.0.2.1"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_admin_sign_in_is_refused_after_five_wrong_passwords(client, editor, settings):
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert sign_in(client, "wrong").status_code == 200  # the form again, with its error
    refused = sign_in(client, "right-password-1")
    assert refused.status_code == 429 and "Too many failed sign-in attempts" in refused.content.decode()
    assert int(refused["Retry-After"]) == settings.LOGIN_LOCKOUT_MINUTES * 60
    assert "_auth_user_id" not in client.session


def test_fewer_failures_still_let_the_editor_in(client, editor, settings):
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        sign_in(client, "wrong")
    assert sign_in(client, "right-password-1").status_code == 302
    client.logout()
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):  # the success forgave the earlier ones
        sign_in(client, "wrong")
    assert sign_in(client, "right-password-1").status_code == 302


def test_one_address_trying_many_names_is_throttled_too(client, editor, settings):
    for n in range(settings.LOGIN_FAILURE_LIMIT * 4):
        sign_in(client, "wrong", username=f"user{n}")
    assert sign_in(client, "right-password-1").status_code == 429
    assert sign_in(client, "right-password-1", address="192.0.2.2").status_code == 302


# --- the recap's Atom feed ----------------------------------------------------------

ATOM = "{http://www.w3.org/2005/Atom}"


def test_recap_atom_entries_have_an_author_and_an_update_time(client):
    Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/f")
    for week in (47, 48):
        WeeklyRecap.objects.create(
            iso_year=2026,
            iso_week=week,
            title=f"Week {week}",
            intro="x",
            status="published",
            published_at=timezone.now(),
        )
    feed = etree.fromstring(client.get("/feeds/recap/atom/").content)
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        assert entry.findtext(f"{ATOM}author/{ATOM}name")
        assert entry.findtext(f"{ATOM}updated")
        assert entry.findtext(f"{ATOM}id") and entry.findtext(f"{ATOM}title")
