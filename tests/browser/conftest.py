"""Browser tests: Debian's headless Chromium driven by Playwright's sync API.

Every test here is marked ``browser``. When Chromium or Playwright is missing they are
skipped with the reason, except in CI (``CI=true``), where that is a failure: CI must
run them. ``playwright install`` is never needed; the system Chromium is used.
"""

import importlib.util
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import AdminFactory, OrganizationFactory

# Playwright's sync API runs an event loop in the test thread, and Django refuses ORM
# calls from a thread with a running loop unless told it is safe (it is: one thread).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HERE = Path(__file__).resolve().parent
SCREENSHOTS_DIR = HERE.parent.parent / "screenshots"

ADMIN_EMAIL = "ada@acme.example"
ADMIN_NAME = ("Ada", "Lovelace")


def _unavailable_reason() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not os.path.exists(CHROMIUM):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config, items):
    reason = _unavailable_reason()
    for item in items:
        if HERE not in Path(item.path).parents:
            continue
        item.add_marker(pytest.mark.browser)
        if reason and not _in_ci():
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    reason = _unavailable_reason()
    if reason:
        if _in_ci():
            pytest.fail(f"Browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots_dir() -> Path:
    SCREENSHOTS_DIR.mkdir(exist_ok=True)
    return SCREENSHOTS_DIR


def _watch(page) -> list[str]:
    """Collect console errors, CSP violations, page errors and failed responses."""
    problems: list[str] = []

    def on_console(message):
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(f"console {message.type}: {message.text}")

    def on_response(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    return problems


@pytest.fixture
def make_page(browser):
    """Factory: a page in a fresh context; ``page.problems`` lists what went wrong."""
    contexts = []

    def make(*, width=1400, height=900, javascript=True, cookies=()):
        context = browser.new_context(
            viewport={"width": width, "height": height},
            java_script_enabled=javascript,
        )
        contexts.append(context)
        if cookies:
            context.add_cookies(list(cookies))
        page = context.new_page()
        page.problems = _watch(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(make_page):
    return make_page()


@pytest.fixture
def shell_admin(transactional_db):
    """An org admin of Acme Corp (live_server needs a transactional database)."""
    org = OrganizationFactory(name="Acme Corp")
    first_name, last_name = ADMIN_NAME
    return AdminFactory(
        organization=org,
        email=ADMIN_EMAIL,
        first_name=first_name,
        last_name=last_name,
    )


@pytest.fixture
def admin_cookie(live_server, settings, shell_admin) -> dict:
    """A session cookie for ``shell_admin``; MFA is switched off for shell tests."""
    settings.REQUIRE_ADMIN_MFA = False
    client = Client()
    client.force_login(shell_admin)
    name = django_settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": live_server.url}


@pytest.fixture
def admin_page(live_server, make_page, admin_cookie):
    """A 1400x900 page signed in as the org admin (resize it for narrow tests)."""
    return make_page(cookies=[admin_cookie])
