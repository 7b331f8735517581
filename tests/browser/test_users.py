"""Management → User Management (docs/product.md, User Management) in a real browser:
the table and its select-all checkbox, the bulk-action toolbar, a bulk ban and a limit
edit, with a clean console (no errors, no Content Security Policy violations)."""

import re

import pytest
from django.urls import reverse

from accounts.models import User
from tests.factories import UserFactory, fund, give
from tokens.models import Allocation

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them in CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

LIST = reverse("tokens:user_list")
PEOPLE = [
    ("ava@acme.example", "Ava", "Stone", 1_000_000),
    ("bob@acme.example", "Bob", "Marsh", 600_000),
    ("cy@acme.example", "Cy", "Young", 500_000),
    ("dee@acme.example", "Dee", "Rivera", 400_000),
]


@pytest.fixture
def team(shell_admin):
    """Acme Corp funded with 4,000,000 inference tokens; four members with limits."""
    org = shell_admin.organization
    fund(org, inference=4_000_000, embedding=2_000_000)
    people = {}
    for email, first_name, last_name, limit in PEOPLE:
        user = UserFactory(
            organization=org, email=email, first_name=first_name, last_name=last_name
        )
        give(user, limit)
        people[first_name.lower()] = user
    return people


def assert_no_problems(page):
    assert page.problems == [], "\n".join(page.problems)


def open_list(page, live_server, query=""):
    page.goto(live_server.url + LIST + query)
    expect(page.locator(".page-header h1")).to_have_text("User Management")
    return page


def row_boxes(page):
    return page.locator("input[name='pk'][form='bulk-form']")


def row_box(page, email):
    return page.locator("tbody tr", has_text=email).locator("input[name='pk']")


def test_table_select_all_and_limit_controls(
    admin_page, live_server, screenshots_dir, team
):
    page = open_list(admin_page, live_server)

    for label in [
        "Total users",
        "Purchased inference",
        "Purchased embedding",
        "Allocated",
        "Used",
        "Unallocated",
    ]:
        expect(page.locator(".stat-label", has_text=label).first).to_be_visible()
    rows = page.locator("table.table-users tbody tr")
    expect(rows).to_have_count(len(PEOPLE) + 1)
    for email, first_name, last_name, _limit in PEOPLE:
        row = rows.filter(has_text=email)
        expect(row).to_be_visible()
        expect(row).to_contain_text(f"{first_name} {last_name}")
    # Names stay on one line.
    name_link = page.get_by_role("link", name="Ava Stone")
    assert name_link.bounding_box()["height"] < 24

    # The header checkbox selects and clears every row; a partial selection is mixed.
    master = page.locator("input[data-select-all='pk']")
    expect(master).to_be_visible()
    master.check()
    for index in range(rows.count()):
        expect(row_boxes(page).nth(index)).to_be_checked()
    row_box(page, "bob@acme.example").uncheck()
    expect(master).not_to_be_checked()
    assert master.evaluate("element => element.indeterminate")
    row_box(page, "bob@acme.example").check()
    expect(master).to_be_checked()
    master.uncheck()
    for index in range(rows.count()):
        expect(row_boxes(page).nth(index)).not_to_be_checked()

    # The token type / limit controls only show for "Set a limit".
    limit_controls = page.locator("#bulk-form [data-bulk-limit]")
    expect(limit_controls).to_be_hidden()
    page.select_option("#id_bulk_action", "set_limit")
    expect(limit_controls).to_be_visible()
    expect(page.locator("#id_bulk_token_type")).to_be_visible()
    expect(page.locator("#id_bulk_limit")).to_be_visible()
    expect(page.get_by_text("allow below the minimum")).to_be_visible()
    page.select_option("#id_bulk_action", "ban")
    expect(limit_controls).to_be_hidden()

    # The toolbar is one compact row at this width.
    def middle(box):
        return box["y"] + box["height"] / 2

    action = page.locator("#id_bulk_action").bounding_box()
    review = page.get_by_role("button", name="Review…").bounding_box()
    assert abs(middle(action) - middle(review)) < 4, (action, review)
    assert action["width"] < 300, action

    page.select_option("#id_bulk_action", "")
    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=screenshots_dir / "users-1400.png", full_page=True)
    page.set_viewport_size({"width": 1000, "height": 900})
    expect(page.locator(".page-header .nav-open")).to_be_visible()
    page.screenshot(path=screenshots_dir / "users-1000.png", full_page=True)

    assert_no_problems(page)


def test_without_javascript_the_limit_controls_stay_visible(
    make_page, admin_cookie, live_server, team
):
    page = make_page(javascript=False, cookies=[admin_cookie])
    open_list(page, live_server)

    expect(page.locator("#id_bulk_token_type")).to_be_visible()
    expect(page.locator("#id_bulk_limit")).to_be_visible()
    expect(page.get_by_role("button", name="Review…")).to_be_visible()
    # The select-all checkbox needs JavaScript, so it is not offered without it.
    expect(page.locator("input[data-select-all='pk']")).to_be_hidden()

    assert_no_problems(page)


def test_bulk_ban_of_two_selected_users(admin_page, live_server, team):
    page = open_list(admin_page, live_server)

    row_box(page, "bob@acme.example").check()
    row_box(page, "cy@acme.example").check()
    page.select_option("#id_bulk_action", "ban")
    page.get_by_role("button", name="Review…").click()

    expect(page.locator(".page-header h1")).to_have_text("Ban 2 users?")
    listed = page.locator("main table tbody tr")
    expect(listed).to_have_count(2)
    expect(listed.nth(0)).to_contain_text("bob@acme.example")
    expect(listed.nth(1)).to_contain_text("cy@acme.example")
    assert not User.objects.filter(is_banned=True).exists()

    page.get_by_role("button", name="Ban 2 users").click()
    expect(page).to_have_url(re.compile(re.escape(LIST)))
    expect(page.locator(".messages .alert-success")).to_have_text("Banned 2 users.")
    banned = User.objects.filter(is_banned=True).values_list("email", flat=True)
    assert sorted(banned) == ["bob@acme.example", "cy@acme.example"]
    expect(
        page.locator("tbody tr", has_text="bob@acme.example").locator(".badge-danger")
    ).to_have_text("Banned")

    assert_no_problems(page)


def test_edit_limit_from_the_detail_page(
    admin_page, live_server, screenshots_dir, team
):
    ava = team["ava"]
    page = admin_page
    page.goto(live_server.url + reverse("tokens:user_detail", args=[ava.pk]))
    expect(page.locator(".page-header h1")).to_have_text("Ava Stone")
    for text in ["Allocation history", "Recent activity", "Deactivate…", "Ban…"]:
        expect(page.get_by_text(text, exact=True).first).to_be_visible()

    # Profile and this month's balance sit side by side at 1400 px.
    profile = page.locator("section", has_text="Profile").first.bounding_box()
    month = page.locator("section", has_text="This month").first.bounding_box()
    assert abs(profile["y"] - month["y"]) < 2, (profile, month)
    assert month["x"] > profile["x"] + profile["width"] - 1, (profile, month)
    page.screenshot(path=screenshots_dir / "user-detail-1400.png", full_page=True)

    inference = page.locator(".balance", has_text="Inference")
    inference.get_by_role("link", name="Edit limit").click()
    expect(page.locator(".page-header h1")).to_contain_text("Max inference tokens")
    page.get_by_label("New limit").fill("1500000")
    page.get_by_role("button", name="Save limit").click()

    # 4,000,000 purchased; 1,500,000 + 600,000 + 500,000 + 400,000 allocated.
    message = page.locator(".messages .alert-success")
    expect(message).to_contain_text("max inference tokens set to 1,500,000")
    expect(message).to_contain_text("Unallocated inference tokens now: 1,000,000.")
    limit = Allocation.objects.get(user=ava, token_type="inference").limit
    assert limit == 1_500_000

    assert_no_problems(page)
