from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db.models import ProtectedError

from aggregator.ingest.discover import NoFeedFound, discover_feed
from aggregator.ingest.opml import OpmlError, export_opml, import_opml, parse_opml
from aggregator.models import Article, Source
from enrichment.models import Correction, Insight
from tests.feeds import rss
from tests.servers import LoopbackServer, Reply

pytestmark = pytest.mark.django_db
FEED = rss([{"guid": "1", "title": "One", "link": "http://127.0.0.1:9/1"}], title="The Test Times")


def home(feed_href: str = "") -> bytes:
    link = (
        f'<link rel="alternate" type="application/rss+xml" title="RSS" href="{feed_href}">'
        if feed_href
        else ""
    )
    return (
        f"<!doctype html><html><head><title>Home</title>{link}</head><body><p>Hi</p></body></html>".encode()
    )


@pytest.fixture
def editor(client):
    user = User.objects.create_user("ed", password="pw-for-tests", is_staff=True)
    user.groups.add(Group.objects.get(name="Editors"))
    client.force_login(user)
    return client


def test_discovery_follows_the_pages_alternate_link(server):
    server.route("/news/rss.xml", Reply(200, FEED))
    url = server.route("/", Reply(200, home("/news/rss.xml"), {"Content-Type": "text/html"}))
    assert discover_feed(url) == (server.url("/news/rss.xml"), "The Test Times")


def test_discovery_tries_the_usual_paths(server):
    server.route("/feed.xml", Reply(200, FEED))
    url = server.route("/", Reply(200, home(), {"Content-Type": "text/html"}))
    assert discover_feed(url)[0] == server.url("/feed.xml")


def test_discovery_accepts_the_feed_itself_and_says_when_there_is_none(server):
    assert discover_feed(server.route("/f.xml", Reply(200, FEED)))[0] == server.url("/f.xml")
    url = server.route("/", Reply(200, home(), {"Content-Type": "text/html"}))
    with pytest.raises(NoFeedFound, match="no feed found"):
        discover_feed(url)


OPML = b"""<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
<outline text="AI"><outline text="Deep"><outline type="rss" text="Alpha" xmlUrl="http://127.0.0.1:9/a.xml"/></outline>
<outline type="rss" text="Beta" xmlUrl="http://127.0.0.1:9/b.xml" htmlUrl="http://127.0.0.1:9/"/></outline>
<outline type="rss" text="Beta again" xmlUrl="http://127.0.0.1:9/b.xml"/>
</body></opml>"""


def test_opml_import_flattens_folders_skips_duplicates_and_exports_again():
    result = import_opml(OPML)
    assert [s.name for s in result.added] == ["Alpha", "Beta"] and len(result.skipped) == 1
    assert Source.objects.get(name="Beta").category.slug == "ai"
    again = import_opml(OPML)
    assert again.added == [] and len(again.skipped) == 3
    exported = export_opml().encode()
    assert {f.url for f in parse_opml(exported)} == {"http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/b.xml"}


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<opml><body><outline", "not well-formed"),
        (b"<html><body></body></html>", "not OPML"),
        (b"<opml><body></body></opml>", "no feeds"),
        (b"<opml><body>" + b'<outline xmlUrl="http://127.0.0.1:9/x"/>' * 60_000 + b"</body></opml>", "limit"),
        (
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><opml><body><outline text="&e;" '
            b'xmlUrl="http://127.0.0.1:9/x"/></body></opml>',
            "external entity",
        ),
        (
            b'<opml><body><outline xmlUrl="http://127.0.0.1:9/x"/><outline xmlUrl="ftp://x"/></body></opml>',
            "not an http",
        ),
    ],
)
def test_a_bad_opml_file_imports_nothing_and_says_why(data, message):
    with pytest.raises(OpmlError, match=message):
        import_opml(data)
    assert not Source.objects.exists()


def test_it_imports_opml_without_resolving_a_host_in_the_request(monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("the import resolved a host name")

    monkeypatch.setattr("socket.getaddrinfo", no_dns)
    data = OPML.replace(
        b"</body>", b'<outline text="Intranet" xmlUrl="http://intranet.invalid/feed"/></body>'
    )
    assert len(import_opml(data).added) == 3


def test_it_pauses_imported_sources_that_point_at_private_addresses_on_the_worker(
    editor, settings, django_capture_on_commit_callbacks
):
    settings.FETCH_ALLOWED_NETWORKS = []
    data = OPML.replace(
        b"</body>",
        b'<outline text="Intranet" xmlUrl="http://localhost:9/feed"/>'
        b'<outline text="Metadata" xmlUrl="http://[64:ff9b::a9fe:a9fe]/latest"/></body>',
    )
    upload = SimpleUploadedFile("x.opml", data)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = editor.post("/admin/aggregator/source/import-opml/", {"file": upload})
    assert response.status_code == 302
    # The request added every source, and left the checks to the worker.
    assert Source.objects.filter(is_active=True).count() == 4
    tasks = [c for c in callbacks if not getattr(c, "content_bump", False)]  # not the page cache's
    assert len(tasks) == 1
    tasks[0]()  # the worker's turn (tasks run inline in tests)
    paused = {s.name: s.last_error for s in Source.objects.filter(is_active=False)}
    assert set(paused) == {"Alpha", "Beta", "Intranet", "Metadata"}  # 127.0.0.1 is private too
    assert "localhost points at a private or reserved address (127.0.0.1)" in paused["Intranet"]
    assert "FETCH_ALLOWED_NETWORKS" in paused["Metadata"]
    assert Source.objects.failing().count() == 4


def test_the_worker_leaves_allowed_and_unresolvable_hosts_active():
    result = import_opml(
        OPML.replace(b"</body>", b'<outline text="Gone" xmlUrl="http://no-such-host.invalid/feed"/></body>')
    )
    from aggregator.tasks import check_sources_task

    assert "paused 0" in check_sources_task([s.pk for s in result.added])
    assert Source.objects.filter(is_active=True).count() == 3


def test_the_opml_command(tmp_path):
    path = tmp_path / "in.opml"
    path.write_bytes(OPML)
    out = io.StringIO()
    call_command("opml", "import", str(path), stdout=out)
    assert "Imported 2 sources" in out.getvalue()
    (tmp_path / "bad.opml").write_bytes(b"<opml>")
    with pytest.raises(CommandError, match="Fix the file"):
        call_command("opml", "import", str(tmp_path / "bad.opml"))


def test_editors_add_a_source_from_a_site_and_fetch_it(editor, server):
    server.route("/feed.xml", Reply(200, FEED))
    url = server.route("/", Reply(200, home("/feed.xml"), {"Content-Type": "text/html"}))
    response = editor.post("/admin/aggregator/source/add-from-site/", {"url": url})
    source = Source.objects.get()
    assert response.status_code == 302 and source.name == "The Test Times"
    response = editor.post(
        "/admin/aggregator/source/", {"action": "fetch_now", "_selected_action": [source.pk]}, follow=True
    )
    assert "Fetching 1 source on the workers" in response.content.decode()
    assert Article.objects.filter(source=source).count() == 1  # tests run tasks inline
    with LoopbackServer() as bare:
        nofeed = bare.route("/", Reply(200, home(), {"Content-Type": "text/html"}))
        html = editor.post("/admin/aggregator/source/add-from-site/", {"url": nofeed}).content.decode()
    assert "no feed found" in html


def test_editors_upload_opml_and_see_a_clear_error(editor):
    bad = SimpleUploadedFile("x.opml", b"<opml><body><outline")
    html = editor.post("/admin/aggregator/source/import-opml/", {"file": bad}).content.decode()
    assert "not well-formed" in html and not Source.objects.exists()
    good = SimpleUploadedFile("x.opml", OPML)
    assert editor.post("/admin/aggregator/source/import-opml/", {"file": good}).status_code == 302
    assert Source.objects.count() == 2


def test_review_and_correction_show_on_the_public_card(editor, client, demo):
    insight = Insight.objects.select_related("article").first()
    url = f"/admin/enrichment/insight/{insight.pk}/change/"
    form = editor.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
    data.update(
        {
            "hook": "A corrected hook",
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
    correction = Correction.objects.get()
    assert correction.field == "hook" and correction.after == "A corrected hook"
    html = client.get(insight.article.get_absolute_url()).content.decode()
    assert "Reviewed by an editor on" in html and "A corrected hook" in html
    assert "hook changed" in html


def corrected_article(demo):
    insight = Insight.objects.select_related("article__source").first()
    Correction.objects.create(insight=insight, field="hook", before="A wrong hook", after="The right hook")
    return insight.article


def test_deleting_a_source_keeps_its_public_corrections(admin_client, demo):
    article = corrected_article(demo)
    source = article.source
    url = f"/admin/aggregator/source/{source.pk}/delete/"
    html = admin_client.get(url).content.decode()
    assert "protected" in html and "hook corrected on" in html
    admin_client.post(url, {"post": "yes"})
    bulk = {"action": "delete_selected", "_selected_action": [source.pk], "post": "yes"}
    admin_client.post("/admin/aggregator/source/", bulk)
    assert Source.objects.filter(pk=source.pk).exists()
    assert Correction.objects.filter(insight__article=article).count() == 1
    with pytest.raises(ProtectedError):
        source.delete()
    with pytest.raises(ProtectedError):
        article.delete()


def test_a_source_without_corrections_can_still_be_deleted(admin_client, demo):
    source = Source.objects.exclude(articles__insight__corrections__isnull=False).first()
    admin_client.post(f"/admin/aggregator/source/{source.pk}/delete/", {"post": "yes"})
    assert not Source.objects.filter(pk=source.pk).exists()


def test_a_hidden_article_keeps_its_corrections_readable_on_its_url(client, demo):
    article = corrected_article(demo)
    Article.objects.filter(pk=article.pk).update(is_hidden=True)
    response = client.get(article.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 410
    assert "withdrawn" in html and "hook changed" in html
    assert "A wrong hook" in html and "The right hook" in html
    assert article.url in html
    other = Article.objects.exclude(pk=article.pk).first()
    Article.objects.filter(pk=other.pk).update(is_hidden=True)
    assert client.get(other.get_absolute_url()).status_code == 404  # nothing public to keep


def test_the_editors_desk_shows_what_is_broken_or_waiting(editor, demo):
    Source.objects.filter(slug="demo-rheinblick").update(
        consecutive_failures=2, last_error="HTTP 500 Internal"
    )
    assert "/admin/desk/" in editor.get("/admin/").content.decode()
    html = editor.get("/admin/desk/").content.decode()
    assert "Editors&#x27; desk" in html or "Editors' desk" in html
    assert "HTTP 500 Internal" in html and "Cards waiting for review" in html and "today" in html
    assert "<table" not in html


def test_editors_cannot_touch_users_or_the_task_queue(editor):
    assert editor.get("/admin/auth/user/").status_code == 403
    assert editor.get("/admin/auth/group/").status_code == 403
    assert editor.get("/admin/django_q/schedule/").status_code == 403
    assert editor.get("/admin/aggregator/source/").status_code == 200
    assert editor.get("/admin/enrichment/weeklyrecap/").status_code == 200


def test_admin_actions_are_in_the_admin_log(editor, demo):
    from django.contrib.admin.models import LogEntry

    insight = Insight.objects.first()
    editor.post("/admin/enrichment/insight/", {"action": "mark_reviewed", "_selected_action": [insight.pk]})
    assert LogEntry.objects.filter(object_id=str(insight.pk), change_message__contains="reviewed").exists()


def test_admin_is_staff_only(client, db):
    User.objects.create_user("reader", password="pw-for-tests")
    client.login(username="reader", password="pw-for-tests")
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/desk/").status_code == 302


def test_fetch_now_queues_the_poll_and_shows_its_progress(editor, server, monkeypatch):
    """The request only claims and enqueues: the feed is read by a worker, and the
    health column says "fetching…" until it has been."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    from aggregator.tasks import fetch_now_task

    monkeypatch.setattr(Conf, "SYNC", False)  # a real queue, as in production
    url = server.route("/feed.xml", Reply(200, FEED))
    source = Source.objects.create(name="Queued", slug="queued", feed_url=url)
    broker = get_broker()
    broker.purge_queue()
    html = editor.post(
        "/admin/aggregator/source/", {"action": "fetch_now", "_selected_action": [source.pk]}, follow=True
    ).content.decode()
    assert "Fetching 1 source on the workers" in html and "fetching…" in html
    assert server.requests == [] and not Article.objects.exists()  # nothing fetched in the request
    assert broker.queue_size() == 1
    broker.purge_queue()

    fetch_now_task(source.pk)  # what the worker runs
    html = editor.get("/admin/aggregator/source/").content.decode()
    assert "fetching…" not in html and Article.objects.filter(source=source).count() == 1
