"""Analytics → Token Statistics (docs/product.md, Token Statistics) in a real browser:
the three charts are drawn by the vendored Chart.js from json_script data, the period
picker shows the right inputs and reloads the figures, an export downloads; no console
errors and no Content Security Policy violations."""

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.services import service_key_create
from asksage_admin.lib.periods import last_day, period_of, previous_period
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.services.metering import usage_record

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them in CI) with the reason
    expect = None

pytestmark = pytest.mark.browser

PAGE = reverse("analytics:statistics")
PEOPLE = [
    ("ava@acme.example", "Ava", "Stone"),
    ("bob@acme.example", "Bob", "Marsh"),
    ("cy@acme.example", "Cy", "Young"),
    ("dee@acme.example", "Dee", "Rivera"),
    ("eli@acme.example", "Eli", "Moss"),
    ("fay@acme.example", "Fay", "Okoro"),
]


@pytest.fixture
def usage(shell_admin):
    """Acme Corp: six members, four models and about four months of usage."""
    org = shell_admin.organization
    fund(org, inference=40_000_000, embedding=20_000_000)
    users = [shell_admin]
    for email, first_name, last_name in PEOPLE:
        user = UserFactory(
            organization=org, email=email, first_name=first_name, last_name=last_name
        )
        give(user, 2_000_000)
        give(user, 1_000_000, "embedding")
        users.append(user)
    models = [
        AIModelFactory(key="gpt-4o", name="GPT-4o", output_rate=Decimal("3")),
        AIModelFactory(key="claude-sonnet", name="Claude Sonnet"),
        AIModelFactory(key="llama-70b", name="Llama 3 70B"),
        AIModelFactory(key="embed-large", name="Embed Large", token_type="embedding"),
    ]
    key, _secret = service_key_create(actor=None, name="gateway")
    now = timezone.now()
    events = []
    for i in range(600):
        # The first event of each of the seven people happens right now, so this
        # month (the page's default) has usage of all of them at any instant, even
        # at 00:00:00 on the 1st; the rest go back four hours apart.
        occurred_at = now if i < len(users) else now - dt.timedelta(hours=4 * i + 1)
        model = models[(i * 7) % len(models)] if i % 5 else models[0]
        embedding = model.token_type == "embedding"
        events.append(
            {
                "event_id": f"ev-{i}",
                "user": users[(i * 5) % len(users)].email,
                "model": model.key,
                "token_type": "embedding" if embedding else "inference",
                "prompt_tokens": 800 + (i * 379) % 5000,
                "completion_tokens": 0 if embedding else 200 + (i * 211) % 1500,
                "occurred_at": occurred_at.isoformat(),
                "application": "chat",
            }
        )
    assert usage_record(key=key, events=events).count("recorded") == len(events)
    return org


def assert_no_problems(page, allowed=()):
    problems = [p for p in page.problems if not any(a in p for a in allowed)]
    assert problems == [], "\n".join(problems)


def open_page(page, live_server, query=""):
    page.emulate_media(reduced_motion="reduce")  # charts draw at once, no animation
    page.goto(live_server.url + PAGE + query)
    expect(page.locator(".page-header h1")).to_have_text("Token Statistics")
    page.wait_for_function(
        "() => window.Chart && [...document.querySelectorAll('canvas[data-chart]')]"
        ".every(canvas => window.Chart.getChart(canvas))"
    )
    return page


DRAWN = """
() => [...document.querySelectorAll('canvas[data-chart]')].map(canvas => {
  const chart = window.Chart.getChart(canvas);
  const pixels = canvas.getContext('2d')
    .getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
  return {
    id: canvas.id,
    width: canvas.getBoundingClientRect().width,
    height: canvas.getBoundingClientRect().height,
    type: chart && chart.config.type,
    datasets: chart ? chart.data.datasets.length : 0,
    points: chart ? chart.data.datasets.reduce((n, d) => n + d.data.length, 0) : 0,
    painted: painted,
  };
})
"""


def test_charts_render_and_match_their_tables(
    admin_page, live_server, screenshots_dir, usage
):
    page = open_page(admin_page, live_server)

    charts = {c["id"]: c for c in page.evaluate(DRAWN)}
    assert set(charts) == {"chart-daily", "chart-monthly", "chart-models"}
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 150, chart
        # The daily chart of this month also has the forecast's two datasets
        # (docs/forecasts.md): the days left, per type.
        datasets = 4 if chart["id"] == "chart-daily" else 2
        assert chart["type"] == "bar" and chart["datasets"] == datasets, chart
        assert chart["painted"] > 1000, chart  # bars, axes and labels were drawn
    days_in_month = last_day(period_of(timezone.now())).day  # the whole month
    assert charts["chart-daily"]["points"] == 4 * days_in_month
    assert charts["chart-monthly"]["points"] == 2 * 12
    assert charts["chart-models"]["points"] == 2 * 4

    # The chart's numbers equal its table's: the monthly chart vs Monthly Data.
    chart_months = page.evaluate(
        """() => {
          const chart = Chart.getChart(document.getElementById('chart-monthly'));
          return chart.data.datasets[0].data.map(
            (v, i) => v + chart.data.datasets[1].data[i]);
        }"""
    )
    table_months = [
        int(text.replace(",", ""))
        for text in page.locator(
            "#table-monthly tbody tr td:nth-last-child(2)"
        ).all_inner_texts()
    ]
    assert chart_months == list(reversed(table_months))
    assert sum(chart_months) > 0

    # The daily table is behind a disclosure, with one row per day.
    daily_rows = page.locator("#table-daily tbody tr")
    expect(daily_rows.first).to_be_hidden()
    page.get_by_text("Daily usage as a table").click()
    expect(daily_rows.first).to_be_visible()
    expect(daily_rows).to_have_count(days_in_month)
    page.get_by_text("Daily usage as a table").click()

    # Top users link to their detail page.
    top = page.locator("#table-top-users tbody tr")
    expect(top).to_have_count(len(PEOPLE) + 1)
    expect(top.first.get_by_role("link")).to_have_attribute(
        "href", re.compile(r"^/panel/users/\d+/$")
    )

    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=screenshots_dir / "statistics-1400.png", full_page=True)
    page.set_viewport_size({"width": 1000, "height": 900})
    expect(page.locator(".page-header .nav-open")).to_be_visible()
    page.wait_for_timeout(300)  # Chart.js resizes on the next frame
    for chart in page.evaluate(DRAWN):
        assert 300 < chart["width"] < 1000 and chart["painted"] > 1000, chart
    page.screenshot(path=screenshots_dir / "statistics-1000.png", full_page=True)

    assert_no_problems(page)


def test_period_picker(admin_page, live_server, usage):
    page = open_page(admin_page, live_server)
    month = page.locator("#id_month")
    start, end = page.locator("#id_start"), page.locator("#id_end")
    # This month: no extra inputs.
    expect(month).to_be_hidden()
    expect(start).to_be_hidden()

    # A chosen month.
    last_month = previous_period(period_of(timezone.now()))
    page.select_option("#id_period", "month")
    expect(month).to_be_visible()
    expect(start).to_be_hidden()
    month.fill(last_month.strftime("%Y-%m"))
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"period=month&month=\d{4}-\d{2}"))
    expect(page.locator("[data-period-label]")).to_have_text(
        last_month.strftime("%B %Y")
    )
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-daily'))"
    )
    days = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-daily')).data.labels"
    )
    assert days[0] == last_month.isoformat()

    # A date range, type filter on.
    page.select_option("#id_period", "range")
    expect(month).to_be_hidden()
    expect(start).to_be_visible()
    expect(end).to_be_visible()
    first = last_month.replace(day=10)
    start.fill(first.isoformat())
    end.fill((first + dt.timedelta(days=29)).isoformat())
    page.select_option("#id_token_type", "embedding")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".stats-heading")).to_contain_text("Embedding")
    expect(page.locator("[data-period-label]")).to_contain_text(
        first.isoformat()  # the one date format
    )
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-daily'))"
    )
    series = page.evaluate(
        """() => Chart.getChart(document.getElementById('chart-daily'))
             .data.datasets.map(d => [d.label, d.data.length])"""
    )
    # A range that contains today also draws the forecast (docs/forecasts.md).
    today = timezone.now().astimezone(dt.UTC).date()
    forecast = (
        [["Embedding (projected)", 30]]
        if first <= today <= first + dt.timedelta(days=29)
        else []
    )
    assert series == [["Embedding", 30], *forecast]

    # A reversed range: the message, no figures, and the picker to fix it.
    start.fill("2025-03-10")
    end.fill("2025-03-01")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".alert-error")).to_contain_text(
        "The range ends (2025-03-01) before it starts (2025-03-10): swap them."
    )
    expect(page.locator("canvas")).to_have_count(0)
    expect(start).to_be_visible()

    assert_no_problems(page, allowed=["HTTP 400", "status of 400 (Bad Request)"])


def test_export_downloads(admin_page, live_server, usage):
    page = open_page(admin_page, live_server)
    menu = page.locator(".export-menu")
    expect(menu.locator(".export-list")).to_be_hidden()
    menu.locator("summary").click()
    expect(menu.locator(".export-list")).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu.locator(".export-list")).to_be_hidden()
    menu.locator("summary").click()
    page.locator(".stats-heading").click()  # a click elsewhere closes it too
    expect(menu.locator(".export-list")).to_be_hidden()
    menu.locator("summary").click()
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("Usage per user")).click()
    download = info.value
    this_month = period_of(timezone.now())
    assert re.fullmatch(
        rf"statistics-users-{usage.pk}-{this_month.isoformat()}-\d{{4}}-\d{{2}}-\d{{2}}\.csv",
        download.suggested_filename,
    ), download.suggested_filename
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.reader(io.StringIO(handle.read())))
    assert rows[0][:5] == ["Email", "Name", "Inference", "Embedding", "Total"]
    assert len(rows) == len(PEOPLE) + 2  # header, members and the admin
    assert sum(int(r[4]) for r in rows[1:]) > 0

    assert_no_problems(page)
