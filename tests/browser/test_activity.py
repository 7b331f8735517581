"""Analytics → Activity Logs (docs/product.md, Activity Logs) in a real browser: the
User activity and Audit trail tabs, filtering the audit trail by action, expanding a row
to read before → after, keyset pages ("Older →", "← Newer", "Newest"), the CSV export as
a download; no console errors and no Content Security Policy violations."""

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Organization
from accounts.services import service_key_create
from asksage_admin.lib import request_context
from tests.factories import AIModelFactory, UserFactory, fund
from tokens.services import allocation_set_limit, users_set_banned
from tokens.services.distribution import override_set, policy_update
from tokens.services.metering import usage_record

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them in CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

PAGE = reverse("analytics:activity")
AUDIT_HEADER = [
    "time",
    "actor_email",
    "action",
    "target_type",
    "target_id",
    "target",
    "before",
    "after",
    "message",
    "ip",
    "request_id",
]
PEOPLE = [
    ("ava@acme.example", "Ava", "Stone"),
    ("bob@acme.example", "Bob", "Marsh"),
    ("cy.long-address-for-layout-tests@engineering.acme.example", "Cy", "Young"),
]


EXCERPTS = {
    "prompt_excerpt": "Summarise the attached quarterly report for the board. "
    "Focus on revenue by region, the hiring plan and the three largest risks.\n\n"
    + "Q3 revenue grew in every region; EMEA led with new enterprise accounts. "
    * 12,
    "response_excerpt": "Revenue: up 14% quarter on quarter, led by EMEA (+22%).\n"
    "Hiring: 40 roles approved, 25 filled.\nRisks: supplier concentration, "
    "currency exposure, and the delayed data-centre migration.",
}


def as_request(request_id: str, ip: str = "203.0.113.7"):
    """Run services as if inside a web request (IP and request id recorded)."""
    return request_context.activate(
        request_context.RequestContext(request_id=request_id, ip=ip)
    )


@pytest.fixture
def activity(shell_admin):
    """Acme Corp: three members, some usage, and more than one page (50 rows) of
    audit events from admin actions."""
    org = shell_admin.organization
    fund(org, inference=10_000_000, embedding=4_000_000)
    members = [
        UserFactory(organization=org, email=e, first_name=f, last_name=last)
        for e, f, last in PEOPLE
    ]
    ava, bob, cy = members
    # 54 limit changes, each in its own "request" (the last with a long id).
    for i in range(54):
        user = members[i % 3]
        token = as_request(
            f"req-{i:03d}" if i < 53 else "f" * 64, ip=f"198.51.100.{i % 250}"
        )
        try:
            allocation_set_limit(
                actor=shell_admin,
                user=user,
                token_type="inference" if i % 2 else "embedding",
                limit=300_000 + 1_000 * i,
            )
        finally:
            request_context.reset(token)
    token = as_request("req-ban")
    try:
        users_set_banned(actor=shell_admin, organization=org, users=[bob], banned=True)
        policy_update(
            actor=shell_admin,
            organization=org,
            changes={
                "floor_inference": 300_000,
                "ceiling": 2_000_000,
                "reclamation_enabled": True,
            },
        )
        override_set(
            actor=shell_admin,
            organization=org,
            user=cy,
            floor=400_000,
            ceiling=None,
            exempt_auto_increase=True,
            exempt_reclamation=False,
            note="Team lead: keeps a higher floor during the migration project.",
        )
    finally:
        request_context.reset(token)

    # The organization keeps excerpts; two events carry a long prompt and answer.
    Organization.objects.filter(pk=org.pk).update(store_prompt_excerpts=True)
    AIModelFactory(key="gpt-4o", name="GPT-4o")
    AIModelFactory(key="embed-large", name="Embed Large", token_type="embedding")
    key, _secret = service_key_create(actor=None, name="gateway")
    now = timezone.now()
    events = [
        {
            "event_id": f"ev-{i}",
            "user": (ava if i % 2 else cy).email,
            "model": "embed-large" if i % 4 == 0 else "gpt-4o",
            "token_type": "embedding" if i % 4 == 0 else "inference",
            "prompt_tokens": 800 + 37 * i,
            "completion_tokens": 0 if i % 4 == 0 else 120 + 11 * i,
            "occurred_at": (now - dt.timedelta(minutes=30 * i + 1)).isoformat(),
            "application": "chat" if i % 3 else "document-search-assistant",
            **(EXCERPTS if i in (1, 2) else {}),
        }
        for i in range(30)
    ]
    assert usage_record(key=key, events=events).count("recorded") == 30
    return org


def detail(row):
    """The full-width row under ``row`` that holds its details."""
    return row.locator("xpath=following-sibling::tr[1]")


def assert_no_problems(page):
    assert page.problems == [], "\n".join(page.problems)


def assert_fits(page):
    """Nothing is wider than the viewport, and the table fits its card: long cells
    (emails, targets, request ids, excerpts) wrap instead of widening it."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    table_overflow = page.evaluate(
        "() => { const s = document.querySelector('.activity-card .table-scroll');"
        " return s.scrollWidth - s.clientWidth; }"
    )
    assert table_overflow <= 0, f"the table scrolls sideways by {table_overflow}px"


def test_activity_tabs_filter_expand_page_and_export(
    admin_page, live_server, screenshots_dir, activity
):
    page = admin_page
    page.goto(live_server.url + PAGE)
    expect(page.locator(".page-header h1")).to_have_text("Activity Logs")
    tab = page.get_by_role("link", name="User activity")
    expect(tab).to_have_attribute("aria-current", "page")
    rows = page.locator("table.table-activity > tbody > tr.has-detail")
    expect(rows).to_have_count(30)
    expect(page.get_by_role("heading", name="Prompt excerpts")).to_be_visible()
    # A usage row expands to its details; excerpts show when they were stored.
    rows.first.get_by_text("Show", exact=True).click()
    expect(detail(rows.first).locator("dl.details")).to_be_visible()
    expect(detail(rows.first).get_by_text("Not stored")).to_be_visible()
    rows.first.get_by_text("Show", exact=True).click()
    expect(detail(rows.first).locator("dl.details")).to_be_hidden()
    with_excerpt = rows.nth(1)
    with_excerpt.get_by_text("Show", exact=True).click()
    expect(detail(with_excerpt).locator(".excerpt").first).to_contain_text(
        "Summarise the attached quarterly report"
    )
    expect(detail(with_excerpt).locator(".excerpt").nth(1)).to_contain_text(
        "Revenue: up 14%"
    )
    assert_fits(page)
    page.screenshot(path=screenshots_dir / "activity-1400.png", full_page=True)

    # The Audit trail tab: newest first, 50 rows a page, then older ones.
    page.get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("link", name="Audit trail")).to_have_attribute(
        "aria-current", "page"
    )
    expect(rows).to_have_count(50)
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)
    first_page_times = rows.locator("> td:first-child").all_inner_texts()
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"[?&]after="))
    total = AuditEvent.objects.filter(organization=activity).count()
    assert total > 50
    expect(rows).to_have_count(total - 50)
    expect(page.get_by_role("link", name="← Newer")).to_be_visible()
    expect(page.get_by_role("link", name="Newest")).to_be_visible()
    page.get_by_role("link", name="Newest").click()
    expect(rows).to_have_count(50)
    assert rows.locator("> td:first-child").all_inner_texts() == first_page_times

    # Expand a policy change: its before → after fields are readable.
    policy_row = rows.filter(has_text="Distribution policy changed")
    policy_row.get_by_text(re.compile(r"^\d+ changes?$")).click()
    diff = detail(policy_row).locator("ul.diff")
    expect(diff).to_be_visible()
    floor = diff.locator("li", has_text="floor inference")
    expect(floor.locator(".diff-old")).to_have_text("500,000")
    expect(floor.locator(".diff-new")).to_have_text("300,000")
    reclamation = diff.locator("li", has_text="reclamation enabled")
    expect(reclamation.locator(".diff-old")).to_have_text("no")
    expect(reclamation.locator(".diff-new")).to_have_text("yes")
    assert_fits(page)
    page.screenshot(path=screenshots_dir / "activity-audit-1400.png", full_page=True)

    # Filter by an action with the Action select.
    page.get_by_label("Action").select_option(label="Banned")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"action=user\.banned"))
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text("Banned")
    expect(row).to_contain_text("bob@acme.example")
    expect(row).to_contain_text("203.0.113.7")
    expect(detail(row)).to_be_hidden()
    row.get_by_text("1 change", exact=True).click()
    expect(detail(row).locator(".diff-old")).to_have_text("no")
    expect(detail(row).locator(".diff-new")).to_have_text("yes")
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)

    # Export CSV: the filtered rows, as a download with the header row.
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    download = info.value
    assert re.fullmatch(
        rf"audit-trail-{activity.pk}-\d{{4}}-\d{{2}}-\d{{2}}\.csv",
        download.suggested_filename,
    ), download.suggested_filename
    with open(download.path(), encoding="utf-8") as handle:
        exported = list(csv.reader(io.StringIO(handle.read())))
    assert exported[0] == AUDIT_HEADER
    assert [r[2] for r in exported[1:]] == ["user.banned"]
    assert exported[1][1] == "ada@acme.example"
    assert exported[1][9:] == ["203.0.113.7", "req-ban"]

    # At 1000 px (the sidebar is a drawer) both tables still fit, rows open.
    page.set_viewport_size({"width": 1000, "height": 900})
    page.goto(live_server.url + PAGE + "?tab=audit")
    expect(rows).to_have_count(50)
    override_row = rows.filter(has_text="User override set")
    override_row.locator(".row-toggle-label").click()
    expect(detail(override_row).locator("li", has_text="note")).to_contain_text(
        "Team lead: keeps a higher floor"
    )
    assert_fits(page)
    page.goto(live_server.url + PAGE)
    expect(rows).to_have_count(30)
    rows.nth(1).get_by_text("Show", exact=True).click()
    expect(detail(rows.nth(1)).locator(".excerpt").first).to_be_visible()
    assert_fits(page)
    page.screenshot(path=screenshots_dir / "activity-1000.png", full_page=True)

    assert_no_problems(page)
