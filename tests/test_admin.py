from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from aggregator.models import Article, Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing_source():
    source = Source.objects.create(
        name="Broken Feed",
        slug="broken",
        feed_url="http://127.0.0.1:9/feed.xml",
        last_polled_at=timezone.now(),
        consecutive_failures=3,
        last_error="the URL returned an HTML page, not a feed",
        next_poll_at=timezone.now(),
    )
    Article.objects.create(source=source, guid="1", url="http://127.0.0.1:9/1", title="An article")
    return source


def test_every_model_is_registered_and_its_pages_render(admin_client, failing_source):
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        response = admin_client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, info
        response = admin_client.get(reverse("admin:{}_{}_add".format(*info)))
        assert response.status_code in (200, 403), info


def test_the_source_list_shows_each_source_health(admin_client, failing_source):
    html = admin_client.get(reverse("admin:aggregator_source_changelist")).content.decode()
    assert "failing ×3" in html and "HTML page, not a feed" in html
    html = admin_client.get(
        reverse("admin:aggregator_source_changelist") + "?health=failing"
    ).content.decode()
    assert "Broken Feed" in html
    html = admin_client.get(
        reverse("admin:aggregator_source_change", args=[failing_source.pk])
    ).content.decode()
    assert "Consecutive failures" in html and "HTML page, not a feed" in html


def test_editors_can_pause_and_queue_a_poll(admin_client, failing_source):
    url = reverse("admin:aggregator_source_changelist")
    admin_client.post(url, {"action": "pause", "_selected_action": [failing_source.pk]})
    failing_source.refresh_from_db()
    assert not failing_source.is_active
    admin_client.post(url, {"action": "resume", "_selected_action": [failing_source.pk]})
    failing_source.refresh_from_db()
    assert failing_source.is_active and failing_source.next_poll_at <= timezone.now()


def test_editors_can_feature_and_hide_articles(admin_client, failing_source):
    article = Article.objects.get()
    url = reverse("admin:aggregator_article_changelist")
    admin_client.post(url, {"action": "feature", "_selected_action": [article.pk]})
    admin_client.post(url, {"action": "hide", "_selected_action": [article.pk]})
    article.refresh_from_db()
    assert article.is_featured and article.is_hidden
