"""Forecasts and alerts in a real browser (docs/forecasts.md), at 1400 and 1000 px:
the projection drawn on Token Statistics' daily chart, the forecast cards on Token
Distribution, the projection on /me/, the "Likely to hit the limit" column, and the
Alerts page (save settings, a refusal, the list). No console errors or CSP
violations; screenshots in the git-ignored ``screenshots/``."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.models import Alert, DailyUsage, OrgDailyUsage

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them in CI) with the reason
    expect = None

pytestmark = pytest.mark.browser
WIDTHS = [1400, 1000]


@pytest.fixture
def busy(shell_admin):
    """Acme Corp, active for 60 days, 28 days of steady usage (more on weekdays)
    that will outrun its 2M pool this month, and a member near their limit."""
    org = shell_admin.organization
    org.activated_at = timezone.now() - dt.timedelta(days=60)
    org.save()
    fund(org, inference=2_000_000, embedding=2_000_000)
    model = AIModelFactory(key="gpt-4o", name="GPT-4o")
    ava = UserFactory(
        organization=org, email="ava@acme.example", first_name="Ava", last_name="Stone"
    )
    give(ava, 300_000)
    today = timezone.now().astimezone(dt.UTC).date()
    for i in range(0, 29):
        day = today - dt.timedelta(days=i)
        tokens = 40_000 if day.weekday() >= 5 else 110_000
        OrgDailyUsage.objects.create(
            organization=org,
            model=model,
            token_type="inference",
            day=day,
            stripe=i % 3,
            tokens=tokens,
            events=10,
        )
        if 0 < i <= 7:
            DailyUsage.objects.create(
                organization=org,
                user=ava,
                model=model,
                token_type="inference",
                day=day,
                tokens=20_000,
                events=2,
            )
    Alert.objects.create(
        organization=org,
        token_type="inference",
        month=today.replace(day=1),
        kind=Alert.Kind.ORG_USAGE,
        threshold=50,
        used=1_000_000,
        budget=2_000_000,
        recipients=["ada@acme.example"],
        delivered_at=timezone.now(),
        attempts=1,
    )
    return {"org": org, "ava": ava}


def assert_clean(page):
    assert page.problems == [], "\n".join(page.problems)


def no_horizontal_scroll(page):
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth + 1"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_statistics_draws_the_projection(
    admin_page, live_server, screenshots_dir, busy, width
):
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(reduced_motion="reduce")
    page.goto(live_server.url + reverse("analytics:statistics"))
    page.wait_for_function(
        "() => window.Chart && "
        "window.Chart.getChart(document.getElementById('chart-daily'))"
    )
    keys = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-daily'))"
        ".data.datasets.map(d => d.label)"
    )
    assert keys == [
        "Inference",
        "Embedding",
        "Inference (projected)",
        "Embedding (projected)",
    ]
    projected = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-daily'))"
        ".data.datasets[2].data.reduce((a, b) => a + b, 0)"
    )
    card = page.locator("[data-forecast-type=inference]")
    expect(card).to_be_visible()
    expect(card.locator("[data-projected]")).to_contain_text("% of the pool")
    page.locator("summary", has_text="Projection as a table").click()
    expect(page.locator("#table-projection")).to_be_visible()
    table_total = page.evaluate(
        "() => [...document.querySelectorAll('#table-projection tbody tr')]"
        ".reduce((n, tr) => n + Number(tr.cells[1].textContent.replace(/,/g, '')), 0)"
    )
    assert table_total == projected  # the table twin holds the chart's numbers
    page.screenshot(
        path=screenshots_dir / f"forecast-statistics-{width}.png", full_page=True
    )
    assert_clean(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_distribution_shows_the_forecast_cards(
    admin_page, live_server, screenshots_dir, busy, width
):
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + reverse("tokens:distribution"))
    card = page.locator("#status [data-forecast-type=inference]")
    expect(card).to_be_visible()
    expect(card.locator("[data-runout] .forecast-warning")).to_be_visible()
    expect(card.locator("[data-lots]")).to_contain_text("more lot")
    assert no_horizontal_scroll(page)
    page.locator("#status").screenshot(
        path=screenshots_dir / f"forecast-distribution-{width}.png"
    )
    assert_clean(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_users_table_sorts_by_likely_to_hit_the_limit(
    admin_page, live_server, screenshots_dir, busy, width
):
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + reverse("tokens:user_list"))
    page.get_by_role("link", name="Likely to hit the limit").click()
    page.get_by_role("link", name="Likely to hit the limit").click()  # descending
    first = page.locator("table.table-users tbody tr").first
    expect(first).to_contain_text("ava@acme.example")
    expect(first.locator(".badge-warning")).to_be_visible()
    page.screenshot(path=screenshots_dir / f"forecast-users-{width}.png")
    assert_clean(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_me_shows_the_projection(
    live_server, make_page, settings, screenshots_dir, busy, width
):
    client = Client()
    client.force_login(busy["ava"])
    name = django_settings.SESSION_COOKIE_NAME
    page = make_page(
        width=width,
        cookies=[
            {"name": name, "value": client.cookies[name].value, "url": live_server.url}
        ],
    )
    page.goto(live_server.url + reverse("tokens:me"))
    forecast = page.locator("[data-user-forecast=inference]")
    expect(forecast).to_contain_text("by the end of the month")
    expect(forecast).to_contain_text("Likely to hit the limit")
    assert no_horizontal_scroll(page)
    page.screenshot(path=screenshots_dir / f"forecast-me-{width}.png", full_page=True)
    assert_clean(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_alert_settings_page(admin_page, live_server, screenshots_dir, busy, width):
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + reverse("tokens:alerts"))
    expect(page.get_by_role("heading", name="Alert settings")).to_be_visible()
    expect(page.locator("table.table-alerts")).to_contain_text("Organization pool used")
    # A refusal: the message on the field, nothing saved (400).
    page.get_by_label("Pool thresholds (%)").fill("50, 180")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".field-errors, .errorlist").first).to_contain_text(
        "between 1 and 100"
    )
    page.screenshot(
        path=screenshots_dir / f"alerts-refused-{width}.png", full_page=True
    )
    page.get_by_label("Pool thresholds (%)").fill("60, 90, 100")
    page.get_by_label("User thresholds (%)").fill("75")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".messages, [role=status]").first).to_contain_text(
        "Alert settings saved."
    )
    expect(page.get_by_label("Pool thresholds (%)")).to_have_value("60, 90, 100")
    assert no_horizontal_scroll(page)
    page.screenshot(path=screenshots_dir / f"alerts-{width}.png", full_page=True)
    # The refused save answered 400 on purpose (and Chromium logs it).
    problems = [p for p in page.problems if "400" not in p]
    assert problems == [], "\n".join(problems)
