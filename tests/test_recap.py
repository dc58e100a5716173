from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from aggregator.models import Article, Story
from enrichment.models import WeeklyRecap
from enrichment.recap import build_recap, top_stories

pytestmark = pytest.mark.django_db


def busy_week() -> tuple[int, int]:
    """The ISO week of the demo's most covered story."""
    story = Story.objects.order_by("-publisher_count").first()
    year, week, _ = timezone.localtime(story.lead_article.sort_at).isocalendar()
    return year, week


def test_the_story_page_shows_who_reported_what_first_and_the_timeline(client, demo):
    story = Story.objects.filter(publisher_count__gt=1).order_by("-publisher_count").first()
    assert story is not None, "the demo corpus has multi-publisher stories"
    html = client.get(story.get_absolute_url()).content.decode()
    assert f"Covered by {story.publisher_count} publishers" in html
    assert "First reported by" in html and "<strong>first</strong>" in html
    for article in Article.objects.filter(story=story):
        assert article.get_absolute_url() in html
    assert "Timeline" in html
    card = client.get(Article.objects.filter(story=story).first().get_absolute_url()).content.decode()
    assert f'href="{story.get_absolute_url()}"' in card


def test_top_stories_rank_by_publishers_with_featured_first(demo):
    year, week = busy_week()
    ranked = top_stories(year, week)
    counts = [s.week_publishers for s in ranked]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1
    quiet = ranked[-1]
    Article.objects.filter(story=quiet).update(is_featured=True)
    assert top_stories(year, week)[0].pk == quiet.pk


def test_a_recap_draft_links_every_item_to_its_story_and_is_rebuilt_idempotently(client, demo):
    year, week = busy_week()
    recap = build_recap(year, week, backend="extractive")
    assert recap.status == "draft" and recap.sections and recap.intro
    story_ids = {i["story_id"] for s in recap.sections for i in s["items"]}
    assert story_ids <= set(Story.objects.values_list("pk", flat=True))
    again = build_recap(year, week, backend="extractive")
    assert again.pk == recap.pk and again.sections == recap.sections
    assert WeeklyRecap.objects.count() == 1
    # Drafts are not public; editors see them.
    assert "Draft: only editors" not in client.get(f"/week/{year}/{week}/").content.decode()


def test_published_recaps_are_public_and_kept_as_edited(client, admin_client, demo):
    year, week = busy_week()
    recap = build_recap(year, week, backend="extractive")
    assert "Draft: only editors" in admin_client.get(f"/week/{year}/{week}/").content.decode()
    admin_client.post("/admin/enrichment/weeklyrecap/", {"action": "publish", "_selected_action": [recap.pk]})
    recap.refresh_from_db()
    assert recap.status == "published" and recap.published_at
    WeeklyRecap.objects.filter(pk=recap.pk).update(intro="Edited by an editor.")
    build_recap(year, week)  # a rebuild never overwrites a published recap
    html = client.get(f"/week/{year}/{week}/").content.decode()
    assert "Edited by an editor." in html
    first_story = recap.sections[0]["items"][0]["story_id"]
    assert f'href="/story/{first_story}/"' in html
    assert recap.title in client.get("/recap/").content.decode()
    # An article of that week links its recap.
    of_week = next(a for a in demo if a.sort_at.isocalendar()[:2] == (year, week))
    article_html = client.get(of_week.get_absolute_url()).content.decode()
    assert f'href="/week/{year}/{week}/">{recap.title}' in article_html.replace("&#x27;", "'")


def test_a_week_with_no_articles_gets_an_honest_empty_recap(client, db):
    recap = build_recap(2020, 10, backend="extractive")
    assert recap.sections == [] and "No stories" in recap.intro


def test_build_recap_command(demo):
    out = io.StringIO()
    year, week = busy_week()
    call_command("build_recap", "--year", str(year), "--week", str(week), stdout=out)
    assert "stories in" in out.getvalue()


def test_the_story_timeline_merges_what_publishers_report_for_the_same_day(demo):
    from enrichment.timeline import story_timeline

    story = Story.objects.order_by("-publisher_count").first()
    entries = story_timeline(story)
    dated = [e.date for e in entries if e.article_id is None and len(e.date) == 10]
    assert len(dated) == len(set(dated))
    assert [e.date for e in entries] == sorted(e.date for e in entries)
    assert any(e.also for e in entries if e.article_id is None), "several publishers dated the same event"
    assert all(e.passage for e in entries if e.article_id is None)


def test_editors_build_a_draft_on_demand_from_the_admin(admin_client, demo):
    html = admin_client.get("/admin/enrichment/weeklyrecap/").content.decode()
    assert "Build this week&#x27;s draft" in html or "Build this week's draft" in html
    response = admin_client.post("/admin/enrichment/weeklyrecap/build/", {"week": "last"})
    recap = WeeklyRecap.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/{recap.pk}/change/")
    assert recap.status == "draft"
    admin_client.post("/admin/enrichment/weeklyrecap/build/", {"week": "last"})
    assert WeeklyRecap.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_moves_existing_recap_items_from_json_to_rows_that_link_their_story():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from enrichment.models import RecapItem

    before = [("enrichment", "0003_corrections_are_kept"), ("aggregator", "0003_content_generation")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    story = old.get_model("aggregator", "Story").objects.create(headline="Kept")
    old.get_model("enrichment", "WeeklyRecap").objects.create(
        iso_year=2026,
        iso_week=40,
        title="Week 40",
        status="published",
        sections=[
            {
                "theme": "Tech",
                "items": [{"story_id": story.pk, "headline": "Kept", "summary": "S", "publishers": 3}],
            },
            {
                "theme": "City",
                "items": [{"story_id": 987654, "headline": "Gone", "summary": "", "publishers": 1}],
            },
        ],
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    recap = WeeklyRecap.objects.get(iso_week=40)
    assert [
        (i.theme, i.story_id, i.headline, i.publishers) for i in RecapItem.objects.filter(recap=recap)
    ] == [
        ("Tech", story.pk, "Kept", 3),
        ("City", None, "Gone", 1),
    ]
    # An older item has no citation: nothing is shown as its passage.
    assert recap.sections[0] == {
        "theme": "Tech",
        "items": [
            {
                "story_id": story.pk,
                "headline": "Kept",
                "summary": "S",
                "publishers": 3,
                "article_id": None,
                "sentences": [],
                "passage": "",
                "article_url": "",
                "publisher": "",
                "language": "",
            }
        ],
    }
