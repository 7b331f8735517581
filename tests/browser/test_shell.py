"""The admin panel shell (docs/product.md, The panel shell): sidebar, the drawer below
1200 px, no-JS fallback, and a clean console (no errors, no Content Security Policy
violations)."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them in CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

NAV_ITEMS = [
    "User Management",
    "Token Distribution",
    "Token Requests",
    "Alerts",
    "Admin API",
    "Token Statistics",
    "Activity Logs",
]


def open_panel(page, live_server, name="tokens:user_list"):
    page.goto(live_server.url + reverse(name))
    expect(page.locator(".page-header h1")).to_be_visible()
    return page


def sidebar(page):
    return page.locator("#sidebar")


def hamburger(page):
    return page.locator(".page-header .nav-open")


def backdrop(page):
    return page.locator(".nav-backdrop")


def assert_no_problems(page):
    assert page.problems == [], "\n".join(page.problems)


def test_wide_viewport_shows_sidebar_sections_and_no_hamburger(
    admin_page, live_server, screenshots_dir
):
    page = open_panel(admin_page, live_server)

    nav = sidebar(page)
    expect(nav).to_be_visible()
    expect(nav.locator(".nav-section-label")).to_have_text(["Management", "Analytics"])
    links = nav.locator(".nav-list .nav-link")
    expect(links).to_have_count(len(NAV_ITEMS))
    for index, label in enumerate(NAV_ITEMS):
        expect(links.nth(index)).to_contain_text(label)
    expect(nav.get_by_role("link", name="User Management")).to_have_attribute(
        "aria-current", "page"
    )
    expect(nav.locator("[aria-current='page']")).to_have_count(1)
    expect(nav).to_contain_text("Acme Corp")
    expect(nav.get_by_role("link", name="Back to Chat")).to_have_attribute(
        "href", settings.CHAT_URL
    )
    expect(nav.locator(".sidebar-user")).to_contain_text("Ada Lovelace")
    expect(nav.locator(".sidebar-user")).to_contain_text("ada@acme.example")
    expect(nav.get_by_role("button", name="Sign out")).to_be_visible()
    expect(hamburger(page)).to_be_hidden()
    expect(backdrop(page)).to_be_hidden()

    page.screenshot(path=screenshots_dir / "panel-1400.png", full_page=True)
    assert_no_problems(page)


def test_narrow_viewport_drawer_opens_navigates_and_closes(
    admin_page, live_server, screenshots_dir
):
    page = admin_page
    page.set_viewport_size({"width": 1000, "height": 800})
    open_panel(page, live_server)

    nav, button = sidebar(page), hamburger(page)
    expect(nav).to_be_hidden()
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-label", "Open navigation")
    expect(button).to_have_attribute("aria-expanded", "false")
    box = button.bounding_box()
    header = page.locator(".page-header").bounding_box()
    assert box["x"] < 40, box
    assert header["y"] <= box["y"] <= header["y"] + header["height"] / 2, (box, header)
    page.screenshot(path=screenshots_dir / "panel-1000.png", full_page=True)

    button.click()
    expect(nav).to_be_visible()
    expect(backdrop(page)).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    nav.evaluate("element => element.getAnimations().forEach(a => a.finish())")
    page.screenshot(path=screenshots_dir / "panel-1000-drawer.png")

    # Choosing a page navigates there; the new page starts with the drawer closed.
    nav.get_by_role("link", name="Token Statistics").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("analytics:statistics"))))
    expect(page.locator(".page-header h1")).to_have_text("Token Statistics")
    expect(nav).to_be_hidden()
    expect(backdrop(page)).to_be_hidden()
    current = nav.locator(".nav-link[aria-current='page']")
    expect(current).to_have_text("Token Statistics")

    # Keyboard: Enter on the hamburger opens it, Esc closes it and returns focus.
    # (Once the new page's deferred script has made the hamburger focusable: a key
    # pressed before that reaches a plain label and does nothing.)
    expect(button).to_have_attribute("tabindex", "0")
    button.focus()
    page.keyboard.press("Enter")
    expect(nav).to_be_visible()
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    expect(backdrop(page)).to_be_hidden()
    expect(button).to_be_focused()
    expect(button).to_have_attribute("aria-expanded", "false")

    # A click on the dimmed backdrop closes it.
    button.click()
    expect(nav).to_be_visible()
    backdrop(page).click(position={"x": 900, "y": 400})
    expect(nav).to_be_hidden()
    expect(backdrop(page)).to_be_hidden()

    assert_no_problems(page)


def test_drawer_works_without_javascript(make_page, admin_cookie, live_server):
    page = make_page(width=1000, height=800, javascript=False, cookies=[admin_cookie])
    open_panel(page, live_server)

    nav = sidebar(page)
    expect(nav).to_be_hidden()
    page.locator("label.nav-open").click()
    expect(nav).to_be_visible()
    expect(backdrop(page)).to_be_visible()
    backdrop(page).click(position={"x": 900, "y": 400})
    expect(nav).to_be_hidden()

    # Without JavaScript the checkbox itself is the keyboard control.
    page.locator("#nav-toggle").focus()
    page.keyboard.press("Space")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Activity Logs")).to_be_visible()

    assert_no_problems(page)


@pytest.mark.parametrize("width", [1400, 1000])
def test_sign_in_page_renders_cleanly(
    make_page, live_server, screenshots_dir, transactional_db, width
):
    page = make_page(width=width, height=900)
    page.goto(live_server.url + reverse("accounts:login"))

    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#sidebar")).to_have_count(0)
    page.screenshot(path=screenshots_dir / f"login-{width}.png", full_page=True)

    assert_no_problems(page)
