"""What a reader sees, in headless Chromium (Debian's package, driven by Playwright):
phone and desktop widths, a card followed to its article, and axe-core's audit."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytestmark.append(
        pytest.mark.skip(reason="no Chromium found (apt-get install chromium); browser tests skipped")
    )
playwright_api = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

WIDTHS = {"phone": (360, 740), "desktop": (1280, 900)}


@pytest.fixture
def site(live_server, demo_site):
    out = io.StringIO()
    call_command("load_demo", base_url=demo_site.base_url, stdout=out)
    call_command("poll", all=True, extract=True, stdout=out)
    # Playwright's sync API runs an event loop in this thread; the ORM work is done.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield live_server.url
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def browser():
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
    assert page.get_by_role("heading", name="30-Second TL;DR").is_visible()
    assert page.get_by_text("Original source:").is_visible()
    assert no_horizontal_scroll(page)

    takeaway = page.locator(".takeaways details").first
    takeaway.locator("summary").click()
    assert takeaway.locator(".passage").is_visible()
    assert serious_violations(page) == []
    # Relative times are rewritten by the page's script from each <time datetime>.
    assert page.locator("time[data-relative]").first.inner_text().endswith("ago")


def test_pages_work_without_javascript(site, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(site + "/")
    page.locator("article.card h2 a").first.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="30-Second TL;DR").is_visible()
    page.goto(site + "/search/?q=Aurora")
    assert page.locator("article.card").count() >= 1
