"""The whole-page cache for anonymous readers: served from the cache on a repeat
visit, moved on by every committed change readers could see (so a correction shows at
once), conditional GETs answered 304, HTML and feeds compressed with brotli or gzip, editors
never cached.

These tests commit for real (transactional database): the generation moves only after
a commit, which is the point."""

from __future__ import annotations

import gzip

import brotli
import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client

from aggregator.models import Article, ContentGeneration, Source, Story
from aggregator.pagecache import current_generation, negotiate_encoding, written_table
from enrichment.models import Insight

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def page_cache(settings):
    settings.PAGE_CACHE_SECONDS = 60
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def demo(transactional_db, demo_dump):
    """The demo corpus, committed (one transaction, so references resolve at commit)."""
    from django.core import serializers
    from django.db import transaction

    with transaction.atomic():
        for obj in serializers.deserialize("json", demo_dump):
            obj.save()
    return Article.objects.all()


@pytest.fixture
def reader():
    return Client()


@pytest.fixture
def editor():
    user = User.objects.create_user("ed", password="pw-for-tests", is_staff=True)
    user.groups.add(Group.objects.get(name="Editors"))
    client = Client()
    client.force_login(user)
    return client


def correct_hook(editor: Client, insight: Insight, hook: str) -> None:
    url = f"/admin/enrichment/insight/{insight.pk}/change/"
    form = editor.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
    data.update(
        {
            "hook": hook,
            "mark_reviewed": "on",
            "takeaways": form["takeaways"].value(),
            "implications": form["implications"].value(),
            "timeline": form["timeline"].value(),
            "corrections-TOTAL_FORMS": "0",
            "corrections-INITIAL_FORMS": "0",
        }
    )
    response = editor.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]


def add_article(title: str) -> Article:
    """What a worker does: a new article with its card, written as new content."""
    from django.db import transaction
    from django.utils import timezone

    from aggregator.pagecache import new_content

    model = Article.objects.visible().exclude(insight=None).order_by("-sort_at").first()
    insight = model.insight
    with new_content(), transaction.atomic():
        model.pk = None
        model.guid = model.url = model.canonical_url = f"https://example.org/new/{abs(hash(title))}"
        model.title, model.sort_at, model.is_featured = title, timezone.now(), False
        model.story = Story.objects.create(headline=title, article_count=1, publisher_count=1)
        model.save()
        insight.pk, insight.article, insight.title = None, model, title
        insight.save()
    return model


def test_it_serves_a_repeat_visit_from_the_cache_with_one_query(reader, demo, django_assert_num_queries):
    first = reader.get("/")
    assert first.status_code == 200
    with django_assert_num_queries(1):  # the generation, nothing else
        again = reader.get("/")
    assert again.content == first.content
    assert "public" in again["Cache-Control"] and "max-age=60" in again["Cache-Control"]


def test_it_shows_a_correction_on_the_cached_front_page_and_article_page_at_once(reader, editor, demo):
    insight = Insight.objects.select_related("article").order_by("-article__sort_at").first()
    article_url = insight.article.get_absolute_url()
    assert "A corrected hook" not in reader.get("/").content.decode()
    assert "A corrected hook" not in reader.get(article_url).content.decode()
    assert reader.get(article_url).content == reader.get(article_url).content  # cached

    correct_hook(editor, insight, "A corrected hook")

    assert "A corrected hook" in reader.get("/").content.decode()
    article_html = reader.get(article_url).content.decode()
    assert "A corrected hook" in article_html and "Reviewed by an editor on" in article_html


def test_it_moves_on_when_a_queryset_update_hides_an_article(reader, demo):
    article = Article.objects.order_by("-is_featured", "-sort_at").first()
    assert article.title in reader.get("/").content.decode()
    before = current_generation()[0]
    Article.objects.filter(pk=article.pk).update(is_hidden=True)  # no save(), no signal
    assert current_generation()[0] > before
    assert article.title not in reader.get("/").content.decode()
    assert reader.get(article.get_absolute_url()).status_code in (404, 410)


def test_it_moves_once_per_transaction_and_only_after_the_commit(demo):
    from django.db import transaction

    before = current_generation()[0]
    with transaction.atomic():
        Article.objects.update(is_featured=False)
        Article.objects.filter(pk=Article.objects.first().pk).update(is_featured=True)
        assert current_generation()[0] == before  # nothing a reader could cache early
    assert current_generation()[0] == before + 1


def test_polls_writing_a_sources_schedule_do_not_move_it(demo):
    from django.utils import timezone

    before = current_generation()[0]
    source = Source.objects.first()
    Source.objects.filter(pk=source.pk).update(next_poll_at=timezone.now(), consecutive_failures=0)
    assert current_generation()[0] == before
    Source.objects.filter(pk=source.pk).update(name="Renamed Publication")
    assert current_generation()[0] == before + 1


def test_it_answers_a_conditional_get_with_304(reader, demo):
    first = reader.get("/")
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag and modified
    assert reader.get("/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert reader.get("/", HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    feed = reader.get("/feeds/rss/")
    assert reader.get("/feeds/rss/", HTTP_IF_NONE_MATCH=feed["ETag"]).status_code == 304
    Article.objects.filter(pk=Article.objects.first().pk).update(is_hidden=True)
    assert reader.get("/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_it_gzips_pages_and_feeds_and_caches_each_encoding(reader, demo):
    for path in ("/", "/feeds/rss/", "/feeds/atom/"):
        plain = reader.get(path)
        zipped = reader.get(path, HTTP_ACCEPT_ENCODING="gzip, deflate")
        assert zipped["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in zipped["Vary"]
        assert gzip.decompress(zipped.content) == plain.content
        assert len(zipped.content) < len(plain.content) / 2
        assert "Content-Encoding" not in plain
        assert reader.get(path, HTTP_ACCEPT_ENCODING="gzip").content == zipped.content


def test_it_brotli_compresses_pages_and_feeds_when_preferred_and_caches_each_encoding(reader, demo):
    for path in ("/", "/feeds/rss/", "/feeds/json/", "/search/?q=council"):
        plain = reader.get(path)
        squeezed = reader.get(path, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
        assert squeezed["Content-Encoding"] == "br", path
        assert "Accept-Encoding" in squeezed["Vary"]
        assert brotli.decompress(squeezed.content) == plain.content
        zipped = reader.get(path, HTTP_ACCEPT_ENCODING="gzip")
        assert len(squeezed.content) < len(zipped.content) < len(plain.content) / 2
        # Each encoding its own cache entry: asked again, each comes back as it was.
        assert reader.get(path, HTTP_ACCEPT_ENCODING="br").content == squeezed.content
        assert reader.get(path, HTTP_ACCEPT_ENCODING="gzip").content == zipped.content
        assert "Content-Encoding" not in reader.get(path, HTTP_ACCEPT_ENCODING="identity")


@pytest.mark.parametrize(
    "header, chosen",
    [
        ("br", "br"),
        ("gzip, deflate, br, zstd", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0, br;q=0.1", "br"),
        ("*", "br"),
        ("*;q=0.2, br;q=0", "gzip"),
        ("identity", "identity"),
        ("gzip;q=0", "identity"),
        ("", "identity"),
        ("br;q=nonsense, gzip", "gzip"),
    ],
)
def test_it_negotiates_the_encoding(header, chosen):
    assert negotiate_encoding(header) == chosen


def test_editors_and_the_admin_get_gzip_with_its_padding_not_brotli(editor, demo):
    for path in ("/", "/admin/"):
        response = editor.get(path, HTTP_ACCEPT_ENCODING="br, gzip")
        assert response["Content-Encoding"] == "gzip", path
        assert "Accept-Encoding" in response["Vary"]
    assert "Content-Encoding" not in editor.get("/", HTTP_ACCEPT_ENCODING="br")


def test_editors_are_never_served_from_the_cache(reader, editor, demo):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    reader.get("/")
    with CaptureQueriesContext(connection) as queries:
        response = editor.get("/")
    assert len(queries) > 3  # rendered for them, not looked up
    assert "private" in response["Cache-Control"]
    assert "public" not in response["Cache-Control"]


def test_it_never_caches_the_admin(editor, reader, demo):
    response = reader.get("/admin/login/")
    assert "public" not in response.get("Cache-Control", "")


def test_a_lost_generation_row_is_made_again_with_a_new_number(reader, demo):
    reader.get("/")
    before = current_generation()[0]
    ContentGeneration.objects.all().delete()
    Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/f")
    after = current_generation()[0]
    assert after != before and current_generation()[0] == after
    Article.objects.filter(pk=Article.objects.first().pk).update(is_hidden=True)
    assert current_generation()[0] == after + 1


@pytest.mark.parametrize(
    "sql, table",
    [
        ('UPDATE "aggregator_article" SET "is_hidden" = %s', "aggregator_article"),
        ('INSERT INTO "enrichment_insight" ("x") VALUES (%s)', "enrichment_insight"),
        ('  delete from "aggregator_story" where 1', "aggregator_story"),
        ('SELECT "aggregator_article"."id" FROM "aggregator_article"', None),
    ],
)
def test_it_reads_which_table_a_statement_writes(sql, table):
    assert written_table(sql) == table


def test_pipeline_writes_move_the_new_content_number_and_editors_the_editorial_one(demo):
    from django.db import transaction

    before = current_generation()
    add_article("A brand new article")
    after = current_generation()
    assert (after.editorial, after.content) == (before.editorial, before.content + 1)
    Article.objects.filter(pk=Article.objects.first().pk).update(is_hidden=True)  # not marked: editorial
    assert current_generation().editorial == after.editorial + 1
    # A transaction with both kinds of write moves the editorial number, once.
    from aggregator.pagecache import new_content

    before = current_generation()
    with transaction.atomic():
        with new_content():
            Article.objects.filter(pk=Article.objects.last().pk).update(title="Retitled by a worker")
        Article.objects.filter(pk=Article.objects.last().pk).update(is_featured=True)
    after = current_generation()
    assert (after.editorial, after.content) == (before.editorial + 1, before.content)


def test_a_new_article_may_wait_within_the_bound_but_a_correction_during_churn_shows_at_once(
    reader, editor, demo, settings
):
    settings.PAGE_FRESH_SECONDS = 600  # new content may wait as long as this test runs
    insight = Insight.objects.select_related("article").order_by("-article__sort_at").first()
    article_url = insight.article.get_absolute_url()
    assert reader.get("/")["X-Cache"] == "MISS" and reader.get(article_url)["X-Cache"] == "MISS"
    for n in range(3):  # the workers keep writing: the new content number moves
        add_article(f"Churning new article {n}")
        front = reader.get("/")
        assert front["X-Cache"] == "HIT"  # still the page from before, within the bound
        assert "Churning new article" not in front.content.decode()

    correct_hook(editor, insight, "A corrected hook")

    front = reader.get("/")
    assert front["X-Cache"] == "MISS"
    assert "A corrected hook" in front.content.decode()
    assert "Churning new article 2" in front.content.decode()  # a render shows all there is
    article_html = reader.get(article_url).content.decode()
    assert "A corrected hook" in article_html and "Reviewed by an editor on" in article_html


def test_a_new_article_shows_once_the_bound_has_passed(reader, demo, settings):
    import time

    settings.PAGE_FRESH_SECONDS = 1
    reader.get("/")
    added = add_article("A late arrival from the wire")
    time.sleep(1.1)
    front = reader.get("/")
    assert front["X-Cache"] == "MISS"
    assert "A late arrival from the wire" in front.content.decode()
    assert reader.get(added.get_absolute_url()).status_code == 200


def test_with_no_bound_a_new_article_shows_at_once(reader, demo, settings):
    settings.PAGE_FRESH_SECONDS = 0
    reader.get("/")
    assert reader.get("/")["X-Cache"] == "HIT"
    add_article("Shown at the next request")
    assert "Shown at the next request" in reader.get("/").content.decode()


def front_pages_at_once(count: int) -> list:
    """`count` readers, each with its own client and database connection, ask for the
    front page at the same instant (a barrier); their responses, in the order they came."""
    import threading

    from django.db import connections

    start = threading.Barrier(count)
    responses = []

    def read() -> None:
        try:
            client = Client()
            start.wait()
            responses.append(client.get("/"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return responses


def test_concurrent_misses_render_the_page_once(demo, settings):
    """Eight readers ask for the front page at the same moment, right after a change
    (a cold key): one renders it, the others wait for that render or find it stored."""
    settings.PAGE_FRESH_SECONDS = 0
    settings.PAGE_RENDER_WAIT = 60  # however loaded the machine, the waiters outwait the render
    Article.objects.filter(pk=Article.objects.first().pk).update(is_featured=True)
    current_generation()  # (both rows exist: readers only read)
    results = [(response["X-Cache"], response.content) for response in front_pages_at_once(8)]
    outcomes = sorted(outcome for outcome, _ in results)
    assert len(results) == 8
    assert outcomes.count("MISS") == 1, outcomes  # rendered once
    assert set(outcomes) <= {"MISS", "WAIT", "HIT"}
    assert len({body for _, body in results}) == 1


def test_concurrent_readers_get_the_previous_copy_while_new_content_renders(demo, settings):
    """After new content only, the one request that renders holds the lock; the others
    are served the previous copy at once (STALE), not made to wait."""
    import time

    settings.PAGE_FRESH_SECONDS = 1
    settings.PAGE_RENDER_WAIT = 60
    Client().get("/")

    add_article("Arrived while readers were reading")
    time.sleep(1.1)  # past the bound: the copy is due for a render
    results = [
        (response["X-Cache"], b"Arrived while readers were reading" in response.content)
        for response in front_pages_at_once(6)
    ]
    assert len(results) == 6
    outcomes = [outcome for outcome, _ in results]
    assert outcomes.count("MISS") == 1, outcomes
    assert all(new for outcome, new in results if outcome in ("MISS", "HIT"))
    assert not any(new for outcome, new in results if outcome == "STALE")


def test_the_pipeline_moves_only_the_new_content_number(demo_site):
    """load_demo (an editor adding sources) is editorial; polling, reading and writing the
    cards (poll --all --extract, with its reader processes) is new content only."""
    import io

    from django.core.management import call_command

    call_command("load_demo", base_url=demo_site.base_url, stdout=io.StringIO())
    before = current_generation()
    call_command("poll", all=True, extract=True, stdout=io.StringIO())
    after = current_generation()
    assert Insight.objects.exists()
    assert after.editorial == before.editorial
    assert after.content > before.content
