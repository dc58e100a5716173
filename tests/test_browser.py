"""What a reader sees, in headless Chromium (Debian's package, driven by Playwright):
phone and desktop widths, a card followed to its article, and axe-core's audit."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytestmark.append(
        pytest.mark.skip(reason="no Chromium found (apt-get install chromium); browser tests skipped")
    )
playwright_api = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
expect = playwright_api.expect

WIDTHS = {"phone": (360, 740), "desktop": (1280, 900)}


@pytest.fixture
def site(live_server, demo_site):
    out = io.StringIO()
    call_command("load_demo", base_url=demo_site.base_url, stdout=out)
    call_command("poll", all=True, extract=True, stdout=out)
    return live_server.url


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make around it are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def serious_violations(page) -> list[str]:
    results = axe_module.Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("device", WIDTHS)
def test_a_reader_browses_the_front_page_and_opens_an_article(site, browser, device):
    width, height = WIDTHS[device]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(site + "/")
    assert page.locator("h1").count() == 1
    assert page.locator("article.card").count() >= 20
    assert no_horizontal_scroll(page)
    assert serious_violations(page) == []

    first = page.locator("article.card h2 a").first
    title = first.inner_text()
    first.click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == title
    expect(page.get_by_role("heading", name="30-Second TL;DR")).to_be_visible()
    expect(page.get_by_text("Original source:").first).to_be_visible()
    assert no_horizontal_scroll(page)

    # A takeaway shows its passage once: quoted as it is, or behind "The passage it rests on".
    takeaway = page.locator(".takeaways li").first
    if takeaway.locator("details").count():
        takeaway.locator("summary").click()
        expect(takeaway.locator(".passage")).to_be_visible()
    else:
        expect(takeaway.locator(".passage-quote")).to_be_visible()
    assert serious_violations(page) == []
    # Relative times are rewritten by the page's script from each <time datetime>.
    assert page.locator("time[data-relative]").first.inner_text().endswith("ago")


def test_pages_work_without_javascript(site, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(site + "/")
    page.locator("article.card h2 a").first.click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="30-Second TL;DR")).to_be_visible()
    page.goto(site + "/search/?q=Aurora")
    assert page.locator("article.card").count() >= 1


def test_an_editor_curates_from_the_admin(live_server, browser, server):
    """Log in as an editor, add a source by its home page, fetch it, review and correct a
    card, publish a recap; readers then see the review mark, the correction and the recap."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from enrichment.models import WeeklyRecap
    from tests.feeds import LOREM, page, rss
    from tests.servers import Reply

    for i in range(3):
        server.route(
            f"/news/{i}.html", Reply(200, page(f"Harbour story {i}", LOREM), {"Content-Type": "text/html"})
        )
    server.route(
        "/news/feed.xml",
        Reply(
            200,
            rss(
                [
                    {"guid": f"h{i}", "title": f"Harbour story {i}", "link": server.url(f"/news/{i}.html")}
                    for i in range(3)
                ],
                title="Harbour Gazette",
            ),
        ),
    )
    home = b'<html><head><link rel="alternate" type="application/rss+xml" href="/news/feed.xml"></head><body>Hi</body></html>'
    server.route("/", Reply(200, home, {"Content-Type": "text/html"}))
    editor = User.objects.create_user("editor", password="a-long-test-password", is_staff=True)
    editor.groups.add(Group.objects.get(name="Editors"))
    year, week, _ = timezone.localdate().isocalendar()
    recap = WeeklyRecap.objects.create(iso_year=year, iso_week=week, title="Our week", intro="What mattered.")
    page_ = browser.new_page()
    base = live_server.url
    page_.goto(base + "/admin/login/")
    page_.fill("#id_username", "editor")
    page_.fill("#id_password", "a-long-test-password")
    page_.click("input[type=submit]")
    expect(page_.get_by_text("Editors' desk").first).to_be_visible()

    page_.goto(base + "/admin/aggregator/source/add-from-site/")
    page_.fill("#id_url", server.url("/"))
    page_.click("input[type=submit]")
    expect(page_.locator("body")).to_contain_text("Harbour Gazette")

    page_.goto(base + "/admin/aggregator/source/")
    page_.check("input.action-select")
    page_.select_option("select[name=action]", "fetch_now")
    page_.click("button[name=index]")
    expect(page_.get_by_text("Fetching 1 source on the workers").first).to_be_visible()

    page_.goto(base + "/admin/enrichment/insight/?reviewed=no")
    page_.locator("#result_list tbody tr th a").first.click()
    page_.check("#id_mark_reviewed")
    page_.fill("#id_hook", "An editor's better hook")
    page_.click("input[name=_save]")
    expect(page_.locator("body")).to_contain_text("Corrections recorded")

    page_.goto(base + "/admin/enrichment/weeklyrecap/")
    page_.check("input.action-select")
    page_.select_option("select[name=action]", "publish")
    page_.click("button[name=index]")

    from enrichment.models import Insight

    insight = Insight.objects.exclude(reviewed_at=None).select_related("article").get()
    reader = browser.new_page()
    reader.goto(live_server.url + insight.article.get_absolute_url())
    expect(reader.get_by_text("Reviewed by an editor on").first).to_be_visible()
    expect(reader.get_by_text("An editor's better hook").first).to_be_visible()
    reader.get_by_text("Corrected 1 time").click()
    expect(reader.get_by_text("hook changed").first).to_be_visible()
    reader.goto(live_server.url + recap.get_absolute_url())
    expect(reader.get_by_text("What mattered.").first).to_be_visible()


def headings_fit(page) -> list[str]:
    """Headings that overflow their box or wrap one letter per line."""
    return page.evaluate(
        """() => [...document.querySelectorAll('h1, h2, h3, th')].filter(h => {
            const r = h.getBoundingClientRect();
            const letter = parseFloat(getComputedStyle(h).fontSize);
            return h.scrollWidth > h.clientWidth + 1 || (r.width < 4 * letter && h.textContent.trim().length > 4);
        }).map(h => h.textContent.trim())"""
    )


@pytest.mark.parametrize("device", WIDTHS)
def test_the_editors_desk_is_readable_on_a_phone_and_a_desktop(site, browser, device, tmp_path):
    from django.contrib.auth.models import Group, User

    from aggregator.models import Source

    Source.objects.filter(slug="demo-rheinblick").update(
        consecutive_failures=4, last_error="HTTP 500 Internal Server Error " + "x" * 200
    )
    from enrichment.models import ApiCall

    ApiCall.objects.create(  # what a revoked key leaves behind (tests/test_claude_state.py)
        backend="claude",
        model_name="claude-haiku-5-5",
        outcome="auth",
        error="the API answered 401: invalid x-api-key (the API key is revoked or wrong: set a valid "
        "ANTHROPIC_API_KEY)",
    )
    editor = User.objects.create_user("deskeditor", password="a-long-test-password", is_staff=True)
    editor.groups.add(Group.objects.get(name="Editors"))
    width, height = WIDTHS[device]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(site + "/admin/login/?next=/admin/desk/")
    page.fill("#id_username", "deskeditor")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    expect(page.get_by_role("heading", name="Editors' desk")).to_be_visible()
    for title in ["Failing sources", "Cards waiting for review", "Enrichment spend", "Claude API", "Backlog"]:
        expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_text("HTTP 500 Internal Server Error").first).to_be_visible()
    expect(page.get_by_text("failing: API key refused (revoked or wrong)")).to_be_visible()
    assert no_horizontal_scroll(page)
    assert headings_fit(page) == []
    assert serious_violations(page) == []
    shots = os.environ.get("SHOTS_DIR")
    if shots:
        page.screenshot(path=f"{shots}/desk-{width}.png", full_page=True)


@pytest.mark.parametrize("device", WIDTHS)
def test_the_demo_front_pages_show_each_story_once_and_its_disagreement(site, browser, device):
    """First three front pages: one card per story (the Stratus Cloud outage once, "5
    publishers"); its story page shows the March vs April dates side by side."""
    from aggregator.models import Article

    width, height = WIDTHS[device]
    page = browser.new_page(viewport={"width": width, "height": height})
    story_of = dict(Article.objects.values_list("pk", "story_id"))
    shown = []
    for number in (1, 2, 3):
        page.goto(f"{site}/?page={number}")
        assert no_horizontal_scroll(page)
        hrefs = page.locator("article.card h2 a").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        shown += [story_of[int(href.strip("/").split("/")[1])] for href in hrefs]
        if number == 1:
            assert serious_violations(page) == []
    assert len(shown) == len(set(shown)) > 20
    stratus = []
    for number in (1, 2, 3):
        page.goto(f"{site}/?page={number}")
        stratus += page.locator("article.card", has_text="Stratus Cloud").all()
        if stratus:
            break
    assert len(stratus) == 1
    card = stratus[0]
    expect(card.get_by_text("5 publishers · 3 languages")).to_be_visible()
    card.get_by_role("link", name="5 publishers · 3 languages").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Where reports differ")).to_be_visible()
    versions = page.locator(".disagreement .version")
    expect(versions.filter(has_text="The Harbor Post").filter(has_text="Apr 2026")).to_be_visible()
    expect(versions.filter(has_text="Northwind Tech Review").filter(has_text="Mar 2026")).to_be_visible()
    assert no_horizontal_scroll(page)
    assert serious_violations(page) == []


def header_rows(page) -> int:
    """How many lines the site header's parts (name, sections, search) take."""
    return page.evaluate(
        """() => new Set([...document.querySelector('.site-header').children]
            .filter(el => el.offsetParent !== null && !el.classList.contains('skip'))
            .map(el => Math.round(el.getBoundingClientRect().top / 8))).size"""
    )


def test_the_header_fits_on_one_line_at_1280_px(site, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    shots = os.environ.get("SHOTS_DIR")
    for path in ["/", "/search/?q=council"]:
        page.goto(site + path)
        if shots:
            page.screenshot(path=f"{shots}/header-1280{path.replace('/', '_')}.png")
        assert header_rows(page) == 1, path
        assert no_horizontal_scroll(page)
    if shots:
        page.goto(site + "/")
        page.set_viewport_size({"width": 360, "height": 740})
        page.screenshot(path=f"{shots}/front-360.png")


def test_an_article_prints_as_its_card_and_the_publishers_address(site, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site + "/")
    page.locator("article.card h2 a").first.click()
    page.wait_for_load_state()
    page.emulate_media(media="print")
    for hidden in [".site-nav", ".search", ".site-footer", ".skip"]:
        assert page.locator(hidden).first.evaluate("el => getComputedStyle(el).display") == "none", hidden
    expect(page.get_by_role("heading", name="30-Second TL;DR")).to_be_visible()
    link = page.locator(".attribution a").first
    href = link.get_attribute("href")
    printed = link.evaluate("el => getComputedStyle(el, '::after').content")
    assert href.startswith("http") and href in printed
    shots = os.environ.get("SHOTS_DIR")
    if shots:
        page.screenshot(path=f"{shots}/article-print.png", full_page=True)
        page.pdf(path=f"{shots}/article.pdf")


STOCK_LINES = [
    "Check whether this changes the tools",
    "Weigh what this means for your strategy",
    "Review your exposure to the companies",
    "Read the publisher's full article before acting",
]


@pytest.mark.parametrize("device", WIDTHS)
def test_an_article_page_is_a_card_and_an_excerpt_not_a_republication(site, browser, device):
    from aggregator.excerpts import publisher_excerpt
    from aggregator.models import Article
    from enrichment import text as tx

    width, height = WIDTHS[device]
    page = browser.new_page(viewport={"width": width, "height": height})
    shots = os.environ.get("SHOTS_DIR")
    for language in ("en", "de", "zh"):
        article = Article.objects.filter(language=language, insight__isnull=False).order_by("pk").first()
        page.goto(site + article.get_absolute_url())
        shown = page.locator("main").inner_text()
        excerpt = publisher_excerpt(article)
        for paragraph in article.body_text.split("\n"):
            if len([s for s in tx.sentences(paragraph) if len(s) > 9]) >= 2 and paragraph not in excerpt:
                assert paragraph.strip() not in shown, (article.title, paragraph)
        assert not any(line in shown for line in STOCK_LINES)
        hook = page.locator(".hook-large")
        changed = page.locator(".tldr dd").first
        if hook.count() and changed.count():
            hook_text = hook.inner_text().replace("💡", "").replace("Automatic summary", "").strip()
            assert not changed.inner_text().startswith(hook_text[:30])
        expect(
            page.get_by_role("link", name=f"Read the full article at {article.source.name}")
        ).to_be_visible()
        assert no_horizontal_scroll(page)
        assert headings_fit(page) == []
        if shots:
            page.screenshot(path=f"{shots}/article-{language}-{width}.png", full_page=True)
    assert serious_violations(page) == []


@pytest.mark.parametrize("device", WIDTHS)
def test_the_card_editor_fits_a_phone_and_a_desktop(site, browser, device):
    from django.contrib.auth.models import Group, User

    from enrichment.models import Insight

    editor = User.objects.create_user("cardeditor", password="a-long-test-password", is_staff=True)
    editor.groups.add(Group.objects.get(name="Editors"))
    insight = Insight.objects.filter(article__language="de").order_by("pk").first()
    width, height = WIDTHS[device]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(site + f"/admin/login/?next=/admin/desk/card/{insight.pk}/")
    page.fill("#id_username", "cardeditor")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    expect(page.get_by_role("button", name="Save the card")).to_be_visible()
    assert page.locator("textarea[name$='-passage']").count() >= len(insight.takeaways)
    assert no_horizontal_scroll(page)
    assert headings_fit(page) == []
    shots = os.environ.get("SHOTS_DIR")
    if shots:
        page.screenshot(path=f"{shots}/card-editor-{width}.png", full_page=True)
    page.fill("textarea[name='takeaways-0-text']", "Exactly 987654 of them.")
    page.click("button[type=submit]")
    expect(page.get_by_text("the number 987654 is not in its passage").first).to_be_visible()
    assert no_horizontal_scroll(page)
