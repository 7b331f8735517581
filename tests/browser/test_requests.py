"""Management → Token Requests (docs/product.md, Token Requests) in a real browser: a
member asks for tokens on /me/, the admin sees the request (and the sidebar badge),
approves a partial amount with a note and finds it under Approved; the member sees the
decision. No console errors, no Content Security Policy violations."""

import re

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory, fund, give
from tokens.models import Allocation, TokenRequest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them in CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

LIST = reverse("tokens:request_list")
ME = reverse("tokens:me")
REASON = "Indexing the 2026 contract archive for the legal team's new search."


def assert_no_problems(page):
    assert page.problems == [], "\n".join(page.problems)


def cookie_for(user, live_server) -> dict:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": live_server.url}


@pytest.fixture
def team(shell_admin):
    """Acme funded with 4,000,000 inference / 2,000,000 embedding tokens; a member
    with 1,000,000 inference tokens and two colleagues with decided requests."""
    org = shell_admin.organization
    fund(org, inference=4_000_000, embedding=2_000_000)
    member = UserFactory(
        organization=org,
        email="ava@acme.example",
        first_name="Ava",
        last_name="Stone",
    )
    give(member, 1_000_000)
    bob = UserFactory(organization=org, email="bob@acme.example")
    give(bob, 600_000)
    TokenRequest.objects.create(
        organization=org,
        user=bob,
        token_type="embedding",
        amount=250_000,
        reason="Embedding the support knowledge base before the launch.",
        limit_at_request=0,
    )
    return member


def test_member_requests_admin_approves_part(
    make_page, live_server, admin_cookie, screenshots_dir, team
):
    member = team
    # The member asks on /me/.
    page = make_page(cookies=[cookie_for(member, live_server)])
    page.goto(live_server.url + ME)
    form = page.locator("#request-tokens")
    expect(form.get_by_role("heading")).to_have_text("Request more tokens")
    form.get_by_label("Token type").select_option("inference")
    form.get_by_label("Amount").fill("300000")
    form.get_by_label("Reason").fill(REASON)
    form.get_by_role("button", name="Send request").click()
    expect(page).to_have_url(re.compile(re.escape(ME)))
    expect(page.locator(".messages .alert-success")).to_contain_text(
        "Request sent: 300,000 inference tokens."
    )
    history = page.locator("#requests tbody tr").first
    expect(history).to_contain_text("300,000")
    expect(history).to_contain_text("Pending")
    assert_no_problems(page)

    # The admin sees it in the queue, with the badge.
    admin = make_page(cookies=[admin_cookie])
    admin.goto(live_server.url + LIST)
    expect(admin.locator(".page-header h1")).to_have_text("Token Requests")
    expect(admin.locator(".sidebar .nav-badge")).to_contain_text("2")
    expect(admin.locator(".tab[aria-current='page']")).to_contain_text("Pending 2")
    row = admin.locator("table.table-requests tbody tr", has_text="ava@acme.example")
    expect(row).to_contain_text("300,000")
    expect(row).to_contain_text("1,000,000")  # current tokens when asked
    # The reason, in full, in the row under the request.
    reason = admin.locator(
        "table.table-requests tr:has-text('ava@acme.example') + tr.row-detail"
    )
    expect(reason).to_contain_text("Indexing the 2026 contract archive")
    expect(admin.locator(".stat", has_text="Unallocated inference")).to_contain_text(
        "2,400,000"
    )
    # Every cell of a row stays on its line except the reason; buttons side by side.
    approve = row.get_by_role("link", name="Approve…")
    deny = row.get_by_role("link", name="Deny…")
    assert abs(approve.bounding_box()["y"] - deny.bounding_box()["y"]) < 2, (
        "Approve and Deny sit on one line"
    )
    # At 1400 px the whole queue fits: no sideways scrolling.
    scroll = admin.locator(".table-card .table-scroll")
    assert scroll.evaluate("el => el.scrollWidth <= el.clientWidth"), "table fits"
    admin.evaluate("document.activeElement.blur()")
    admin.screenshot(path=screenshots_dir / "requests-1400.png", full_page=True)
    narrow = make_page(width=1000, cookies=[admin_cookie])
    narrow.goto(live_server.url + LIST)
    expect(narrow.locator(".page-header .nav-open")).to_be_visible()
    narrow_scroll = narrow.locator(".table-card .table-scroll")
    assert narrow_scroll.evaluate("el => el.scrollWidth <= el.clientWidth")
    narrow.screenshot(path=screenshots_dir / "requests-1000.png", full_page=True)
    assert_no_problems(narrow)

    # Approve a smaller amount, with a note.
    approve.click()
    expect(admin.locator(".page-header h1")).to_have_text("Approve token request")
    amount = admin.get_by_label("Amount to approve")
    expect(amount).to_have_value("300,000")  # the number convention
    amount.fill("120000")
    admin.get_by_label("Note to the user").fill("120k now; ask again next month.")
    admin.screenshot(path=screenshots_dir / "requests-approve-1400.png")
    admin.get_by_role("button", name="Approve", exact=True).click()
    expect(admin).to_have_url(re.compile(re.escape(LIST)))
    expect(admin.locator(".messages .alert-success")).to_contain_text(
        "Approved 120,000 inference tokens for ava@acme.example (requested 300,000)."
    )
    expect(admin.locator(".sidebar .nav-badge")).to_contain_text("1")
    limit = Allocation.objects.get(user=member, token_type="inference").limit
    assert limit == 1_120_000

    # It is listed under Approved, with the decision.
    admin.locator(".tab", has_text="Approved").click()
    expect(admin.locator(".tab[aria-current='page']")).to_contain_text("Approved 1")
    approved = admin.locator("table.table-requests tbody tr.has-detail")
    expect(approved).to_have_count(1)
    expect(approved).to_contain_text("ava@acme.example")
    expect(approved).to_contain_text("Approved 120,000")
    expect(approved).to_contain_text("ada@acme.example")
    expect(approved).to_contain_text("120k now; ask again next month.")
    assert_no_problems(admin)

    # The member sees the decision and the note.
    page.reload()
    history = page.locator("#requests tbody tr").first
    expect(history).to_contain_text("Approved")
    expect(history).to_contain_text("120,000")
    expect(history).to_contain_text("120k now; ask again next month.")
    page.screenshot(path=screenshots_dir / "requests-me-1400.png", full_page=True)
    assert_no_problems(page)


def test_auto_approval_card_without_javascript(
    make_page, live_server, admin_cookie, team
):
    page = make_page(javascript=False, cookies=[admin_cookie])
    page.goto(live_server.url + LIST)
    card = page.locator("#auto-approval")
    card.get_by_label("Approve small requests automatically").check()
    card.get_by_label("Maximum amount").fill("50000")
    card.get_by_label("Maximum org consumption (%)").fill("40")
    card.get_by_role("button", name="Save rule").click()
    expect(page.locator(".messages .alert-success")).to_contain_text(
        "Auto-approval is on: ≤ 50,000 tokens while consumption < 40%; per user at "
        "most 1,000,000 tokens of a type a month (UTC) and 3 approvals in 24 hours."
    )
    expect(page.locator(".stat", has_text="Auto-approval")).to_contain_text("On")
    # Bad input comes back on the card.
    page.locator("#auto-approval").get_by_label("Maximum amount").fill("0")
    page.locator("#auto-approval").get_by_role("button", name="Save rule").click()
    expect(page.locator("#auto-approval .field-errors")).to_contain_text(
        "The maximum amount must be at least 1 token."
    )
    assert_no_problems_except_400(page)


def assert_no_problems_except_400(page):
    """The refused form answers 400 on purpose; anything else is a problem."""
    problems = [p for p in page.problems if not p.startswith("HTTP 400")]
    problems = [p for p in problems if "400 (Bad Request)" not in p]
    assert problems == [], "\n".join(problems)
