"""Every page at every width, and axe-core on every page (issue 18; docs/development.md,
Widths and accessibility).

The pages are those of the authorization matrix (``tests/test_authorization_matrix.py``
ROUTES): every URL that answers some persona a page (GET 200, not JSON, not an export)
is opened as the first such persona of ``VIEWERS``, with that module's ``world`` plus
data that stretches layouts (long emails and reasons, usage over the limit, prompt
excerpts). A URL added to the matrix is opened here without anything to declare.

At 1400, 1000 and 420 px each page must

- not scroll sideways: ``document.documentElement.scrollWidth <= innerWidth``;
- show its primary actions (``[data-primary-action]`` and every visible submit button
  outside the navigation drawer) wholly inside the viewport and inside every
  scrolling box around them, so none is clipped or needs sideways scrolling;
- have no serious or critical axe-core violation.

Each page is also captured (full page) into ``tests/browser/screenshots/``
(git-ignored) as ``<width>-<page>.png``, for a person to look at.
"""

import datetime as dt
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.models import Organization
from accounts.services import service_key_create
from tests.conftest import sign_in
from tests.factories import AIModelFactory, UserFactory, give
from tests.test_authorization_matrix import ROUTES, url_for
from tests.test_authorization_matrix import world as matrix_world
from tokens.services.metering import usage_record
from tokens.services.requests import token_request_submit

pytestmark = pytest.mark.browser

WIDTHS = (1400, 1000, 420)
HEIGHT = 900
SHOTS = Path(__file__).resolve().parent / "screenshots"
# Who opens a page: the first persona that gets it (an admin sees the panel, a member
# /me/, the anonymous visitor the sign-in pages).
VIEWERS = ("admin", "member", "anon")
# Pages seen by more than one persona, or only with a query.
EXTRA_PAGES = [
    ("tokens:me", "member", {}),
    ("tokens:enterprise_request", "outsider", {}),
    ("tokens:request_list", "admin", {"status": "all"}),
    ("analytics:activity", "admin", {"tab": "audit"}),
]
LONG_EMAIL = (
    "maximilian.alexander.featherstonehaugh-wolfeschlegel@research.acme.example"
)
LONG_REASON = (
    "We are indexing the whole contract archive (about 48,000 documents, 2009 to "
    "2026) for the legal team's due-diligence review before the merger closes; the "
    "embedding pass alone needs roughly twice this month's limit, and the summaries "
    "for the partners need the rest. "
) * 2
LONG_REASON = LONG_REASON[:480]  # the service allows 500
EXCERPT = (
    "Summarise the attached quarterly report for the board. Focus on revenue by "
    "region, the hiring plan and the three largest risks. "
) * 20

# Where each element of interest lies, clipped by every scrolling box around it.
OUTSIDE_JS = """
() => {
  const out = [];
  const width = window.innerWidth;
  const candidates = document.querySelectorAll(
    "[data-primary-action], button[type=submit], input[type=submit]"
  );
  for (const el of candidates) {
    if (el.closest(".sidebar, details:not([open])")) continue;
    if (!el.checkVisibility({visibilityProperty: true})) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    let left = 0, right = width;
    for (let box = el.parentElement; box; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === "visible") continue;
      const r = box.getBoundingClientRect();
      left = Math.max(left, r.left);
      right = Math.min(right, r.right);
    }
    if (rect.left < left - 1 || rect.right > right + 1) {
      const label = (el.innerText || el.value || el.getAttribute("aria-label") || "")
        .trim().slice(0, 40);
      const at = `${Math.round(rect.left)}..${Math.round(rect.right)}`;
      const view = `${Math.round(left)}..${Math.round(right)}`;
      out.push(`${el.tagName.toLowerCase()} "${label}" at ${at} (visible ${view})`);
    }
  }
  return out;
}
"""

# After scrolling, the sticky page header must sit below the demo banner, not under it.
UNDER_BANNER_JS = """
() => {
  const banner = document.querySelector(".demo-banner");
  const header = document.querySelector(".page-header");
  if (!banner || !header) return null;
  window.scrollTo(0, 600);
  const b = banner.getBoundingClientRect(), h = header.getBoundingClientRect();
  window.scrollTo(0, 0);
  return b.bottom > 0 && h.top < b.bottom - 1 && h.bottom > 0
    ? `the page header (top ${Math.round(h.top)}) is under the banner `
      + `(bottom ${Math.round(b.bottom)})`
    : null;
}
"""


world = pytest.fixture(matrix_world.__wrapped__, name="world")


@pytest.fixture
def stretched(world):
    """The matrix's world plus what stretches a layout."""
    org = world.org
    Organization.objects.filter(pk=org.pk).update(store_prompt_excerpts=True)
    long_user = UserFactory(
        organization=org, email=LONG_EMAIL, first_name="Maximilian", last_name="Wolfe"
    )
    give(long_user, 400_000)
    give(world.member, 200_000)
    give(world.member, 200_000, token_type="embedding")
    token_request_submit(
        user=long_user, token_type="embedding", amount=750_000, reason=LONG_REASON
    )
    AIModelFactory(key="gpt-4o", name="GPT-4o")
    key, _secret = service_key_create(actor=None, name="gateway")
    now = timezone.now()
    events = [
        {
            "event_id": f"ev-{i}",
            "user": (world.member if i % 2 else long_user).email,
            "model": "gpt-4o",
            "token_type": "inference",
            "prompt_tokens": 700_000 if i == 1 else 900 + 31 * i,
            "completion_tokens": 19_000 if i == 1 else 150,
            "occurred_at": (now - dt.timedelta(minutes=i + 1)).isoformat(),
            "application": "document-search-assistant",
            **(
                {"prompt_excerpt": EXCERPT, "response_excerpt": EXCERPT}
                if i < 3
                else {}
            ),
        }
        for i in range(1, 9)
    ]
    usage_record(key=key, events=events)
    return world


def pages(the_world) -> list[tuple[str, str, str]]:
    """(label, persona, path with query) of every page to open."""
    found = []
    for name, route in ROUTES.items():
        if route.json:
            continue
        persona = next(
            (
                p
                for p in VIEWERS
                if route.get[p].status == 200
                and not route.get[p].effect
                and not route.get[p].own_org
            ),
            None,
        )
        if persona is not None:
            found.append((name, persona, {}))
    found += EXTRA_PAGES
    result = []
    for name, persona, extra in found:
        url, query = url_for(name, ROUTES[name], the_world, persona)
        query = {**query, **extra}
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        label = "-".join([name.replace(":", "-"), *extra.values(), persona])
        result.append((label, persona, url))
    return result


def axe_class():
    """axe-playwright-python's Axe; like Chromium, its absence skips the test with the
    reason, except in CI (``CI=true``), where it fails."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        reason = "axe-playwright-python is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"Browser tests must run in CI: {reason}")
        pytest.skip(reason)
    return Axe


def session_cookie(user, live_server, *, mfa: bool) -> dict:
    client = sign_in(user, mfa=mfa)
    name = django_settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": live_server.url}


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_and_passes_axe(
    width, make_page, live_server, stretched, settings
):
    Axe = axe_class()
    settings.DEMO_MODE = True  # the banner is part of the layout people see
    people = {
        "admin": (stretched.admin, True),
        "member": (stretched.member, False),
        # Registered, outside any organization: the enterprise request form.
        "outsider": (
            UserFactory(organization=None, email="new@initech.example"),
            False,
        ),
    }
    tabs = {}
    axe = Axe()
    SHOTS.mkdir(exist_ok=True)
    report: dict[str, list[str]] = {}
    visited = 0
    for label, persona, url in pages(stretched):
        if persona not in tabs:
            cookies = ()
            if persona in people:
                user, mfa = people[persona]
                cookies = [session_cookie(user, live_server, mfa=mfa)]
            tabs[persona] = make_page(width=width, height=HEIGHT, cookies=cookies)
        page = tabs[persona]
        response = page.goto(live_server.url + url, wait_until="networkidle")
        problems = []
        if response.status != 200 or "text/html" not in response.headers.get(
            "content-type", ""
        ):
            continue  # not a page (healthz) or not this persona's (checked elsewhere)
        visited += 1
        # Open the first two detail rows and the last row menu: open, they must fit.
        for toggle in page.locator(".row-toggle-label").all()[:2]:
            toggle.click()
        menus = page.locator("details.row-menu > summary")
        if menus.count():
            menus.last.click()
            box = page.locator("details.row-menu[open] .row-menu-list").bounding_box()
            if box is None or box["x"] < 0 or box["x"] + box["width"] > width:
                problems.append(f"the row menu is outside the window: {box}")
        scroll_width, inner = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        if scroll_width > inner:
            problems.append(f"scrolls sideways: {scroll_width} px in {inner} px")
        problems += [
            f"primary action outside the view: {o}" for o in page.evaluate(OUTSIDE_JS)
        ]
        if under := page.evaluate(UNDER_BANNER_JS):
            problems.append(under)
        results = axe.run(page)
        for violation in results.response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [n["target"] for n in violation["nodes"]][:3]
                problems.append(
                    f"axe {violation['impact']} {violation['id']}: "
                    f"{violation['help']} ({len(violation['nodes'])} nodes, {targets})"
                )
        page.screenshot(path=SHOTS / f"{width}-{label}.png", full_page=True)
        page.keyboard.press("Escape")
        if problems:
            report[f"{label} ({persona}) {url}"] = problems
    assert visited >= 25
    assert report == {}, "\n".join(
        f"{where}:\n  " + "\n  ".join(problems) for where, problems in report.items()
    )
