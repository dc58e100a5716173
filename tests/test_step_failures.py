"""A step that keeps raising is not handed out forever: after STEP_MAX_FAILURES failures
in a row the article stays readable, the desk shows the step and the error, the sweep
leaves it alone, and an editor's retry hands it out again. The failure is real: the
database refuses the card of one article (a trigger), through the real task path
(poll, extract, cluster, card, and the minute's sweep)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from aggregator import tasks
from aggregator.models import Article, Source
from tests.feeds import LOREM, page, rss
from tests.servers import Reply

POISON = "Poison pill"


def refuse_cards_of(title_part: str) -> None:
    """The database refuses to store a card for an article whose headline has `title_part`."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_card() RETURNS trigger AS $$ BEGIN "
                "IF EXISTS (SELECT 1 FROM aggregator_article a WHERE a.id = NEW.article_id "
                f"AND a.title LIKE '%{title_part}%') THEN RAISE EXCEPTION 'card refused for this article'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_card BEFORE INSERT OR UPDATE ON enrichment_insight "
                "FOR EACH ROW EXECUTE FUNCTION refuse_card()"
            )
        else:
            for event in ("INSERT", "UPDATE"):
                cursor.execute(
                    f"CREATE TRIGGER refuse_card_{event.lower()} BEFORE {event} ON enrichment_insight "
                    "WHEN NEW.article_id IN (SELECT id FROM aggregator_article "
                    f"WHERE title LIKE '%{title_part}%') "
                    "BEGIN SELECT RAISE(ABORT, 'card refused for this article'); END"
                )


def allow_cards() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER refuse_card ON enrichment_insight")
            cursor.execute("DROP FUNCTION refuse_card()")
        else:
            cursor.execute("DROP TRIGGER refuse_card_insert")
            cursor.execute("DROP TRIGGER refuse_card_update")


def a_minute_later() -> str:
    """The next tick of the sweep, a lease after the article last moved."""
    Article.objects.update(state_changed_at=timezone.now() - timedelta(minutes=2))
    return tasks.recover_stuck_task()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_card_step_that_keeps_raising_stops_after_the_cap_until_an_editor_retries(
    server, settings, client, admin_client
):
    settings.LEASE_SECONDS, settings.STEP_MAX_FAILURES = 60, 3
    settings.ENRICHMENT_BACKEND = "extractive"
    entries = []
    for slug, title in (("fine", "Harbour reopens after storm"), ("poison", f"{POISON} for the card writer")):
        url = server.route(f"/{slug}.html", Reply(200, page(title, LOREM), {"Content-Type": "text/html"}))
        entries.append({"guid": slug, "title": title, "link": url})
    source = Source.objects.create(
        name="Wire", slug="wire", feed_url=server.route("/feed.xml", Reply(200, rss(entries)))
    )
    refuse_cards_of(POISON)

    # Tasks run inline (Q sync), so the card task's error reaches the caller here; a
    # worker records it as a failed task and goes on.
    with pytest.raises(DatabaseError, match="card refused"):
        tasks.poll_source_task(source.pk)  # poll, extract, cluster, card
    poisoned = Article.objects.get(title__startswith=POISON)
    fine = Article.objects.get(guid="fine")
    assert fine.state == Article.State.ENRICHED and fine.insight is not None
    assert (poisoned.state, poisoned.failed_step, poisoned.step_failures) == ("enriching", "enrich", 1)
    assert "card refused for this article" in poisoned.step_error

    for _ in range(2):  # the sweep hands it out again, and it fails again
        with pytest.raises(DatabaseError, match="card refused"):
            a_minute_later()
    poisoned.refresh_from_db()
    assert poisoned.step_failures == 3
    # Stopped: the sweep hands it out no more, however many ticks pass.
    for _ in range(3):
        assert "0 extractions, 0 enrichments, 0 clusterings" in a_minute_later()
    poisoned.refresh_from_db()
    assert poisoned.step_failures == 3 and poisoned.state == Article.State.ENRICHING

    # Readers can still read it; editors see the step and the reason.
    html = client.get(poisoned.get_absolute_url()).content.decode()
    assert POISON in html
    desk = admin_client.get("/admin/desk/").content.decode()
    assert "1 stopped" in desk and "enrich failed 3× in a row" in desk and "card refused" in desk
    listed = admin_client.get("/admin/aggregator/article/?stuck=yes").context["cl"].result_count
    assert listed == 1

    # After a fix, an editor retries it: it reaches its final state.
    allow_cards()
    admin_client.post(
        "/admin/aggregator/article/",
        {"action": "retry_failed_step", "_selected_action": [poisoned.pk, fine.pk]},
    )
    poisoned.refresh_from_db()
    assert poisoned.state == Article.State.ENRICHED and poisoned.insight is not None
    assert (poisoned.failed_step, poisoned.step_failures, poisoned.step_error) == ("", 0, "")
    assert "None" in admin_client.get("/admin/desk/").content.decode()
    assert "0 extractions, 0 enrichments, 0 clusterings" in a_minute_later()


@pytest.mark.django_db
def test_failures_are_counted_per_step(settings):
    from aggregator.ingest.leases import parked, record_failure

    settings.STEP_MAX_FAILURES = 2
    source = Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/feed")
    article = Article.objects.create(
        source=source, guid="g", url="http://127.0.0.1:9/a", title="A", state=Article.State.EXTRACTED
    )
    assert record_failure(article.pk, RuntimeError("boom")) is False  # cluster: 1 of 2
    Article.objects.filter(pk=article.pk).update(state=Article.State.DISCOVERED)
    assert record_failure(article.pk, RuntimeError("bang")) is False  # another step: 1 again
    assert record_failure(article.pk, RuntimeError("bang")) is True
    article.refresh_from_db()
    assert (article.failed_step, article.step_failures, article.step_error) == (
        "extract",
        2,
        "RuntimeError: bang",
    )
    assert Article.objects.filter(parked()).count() == 1
