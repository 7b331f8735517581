"""Every page in a real browser (issue 9; docs/security.md, Security guarantees): every
HTML page the org admin can open (the URL list comes from the resolver, through
tests/test_headers.py: every panel page with its detail, limit, confirmation, preview
and approve/deny subpages, /me/, the account pages), the sign-in and registration pages,
and the error pages (404, 500, 503) load in headless Chromium without one Content
Security Policy violation, console error, page error or failed request."""

from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

from tests.factories import UserFactory, fund, give
from tests.test_headers import _enterprise_request, site_urls
from tokens.models import TokenRequest

pytestmark = pytest.mark.browser

MUST_SEE = {
    "tokens:me",
    "tokens:user_list",
    "tokens:user_detail",
    "tokens:user_limit_edit",
    "tokens:user_deactivate_confirm",
    "tokens:user_ban_confirm",
    "tokens:distribution",
    "tokens:distribution_preview",
    "tokens:request_list",
    "tokens:request_approve",
    "tokens:request_deny",
    "analytics:statistics",
    "analytics:activity",
}


@pytest.fixture
def world(shell_admin):
    org = shell_admin.organization
    fund(org, inference=4_000_000, embedding=2_000_000)
    member = UserFactory(
        organization=org, email="ava@acme.example", first_name="Ava", last_name="Ng"
    )
    give(member, 300_000)
    give(shell_admin, 300_000)
    token_request = TokenRequest.objects.create(
        organization=org,
        user=member,
        token_type="inference",
        amount=100_000,
        reason="Indexing the contract archive for the legal team.",
        limit_at_request=300_000,
    )
    return {
        "member": member,
        "admin": shell_admin,
        "token_request": token_request,
        "enterprise_request": _enterprise_request(member),
    }


def html_pages(world) -> list[tuple[str, str]]:
    """(name, path) of every URL that answers the admin an HTML page (200)."""
    client = Client()
    client.force_login(world["admin"])
    pages = []
    for name, url in site_urls(world):
        response = client.get(url)
        if response.status_code == 200 and response["Content-Type"].startswith(
            "text/html"
        ):
            pages.append((name, url))
    return pages


def visit(page, url: str, *, status: int = 200) -> list[str]:
    """Open ``url``; the problems it caused (the document's own error status, and
    the console line Chromium logs for it, are expected for an error page)."""
    start = len(page.problems)
    response = page.goto(url, wait_until="networkidle")
    assert response.status == status, (url, response.status)
    problems = page.problems[start:]
    if status >= 400:
        own = f"HTTP {status}: {url}"
        assert own in problems, problems
        problems = [p for p in problems if p != own]
        logged = [p for p in problems if "Failed to load resource" in p]
        if len(logged) == 1:  # the document's; a failed subresource adds an HTTP line
            problems.remove(logged[0])
    return problems


def test_every_admin_page_is_clean(admin_page, live_server, world, settings):
    settings.REQUIRE_ADMIN_MFA = False
    pages = html_pages(world)
    assert {name for name, _url in pages} >= MUST_SEE
    report = {}
    for name, url in pages:
        problems = visit(admin_page, live_server.url + url)
        if problems:
            report[f"{name} {url}"] = problems
    assert report == {}, "\n".join(f"{k}: {v}" for k, v in report.items())


def test_public_and_error_pages_are_clean(
    make_page, admin_page, live_server, world, settings
):
    page = make_page()
    report = {}
    for url, status in [
        ("/accounts/login/", 200),
        ("/accounts/register/", 200),
        ("/accounts/password-reset/", 200),
        ("/no-such-page/", 404),
    ]:
        problems = visit(page, live_server.url + url, status=status)
        if problems:
            report[url] = problems
    # A signed-in 404, the 500 page and the 503 page (database unreachable).
    settings.REQUIRE_ADMIN_MFA = False
    users = live_server.url + "/panel/users/"
    report["signed-in 404"] = visit(
        admin_page, live_server.url + "/panel/users/999999/", status=404
    )
    with mock.patch("tokens.selectors.users_in", side_effect=RuntimeError("bug")):
        report["500"] = visit(admin_page, users, status=500)
    # Queries fail; the connection object itself stays (the live server's request
    # signals check it, as they would a real connection to a database now down).
    with mock.patch.object(
        BaseDatabaseWrapper, "_cursor", side_effect=OperationalError("down")
    ):
        report["503"] = visit(admin_page, users, status=503)
    report = {k: v for k, v in report.items() if v}
    assert report == {}, "\n".join(f"{k}: {v}" for k, v in report.items())
