"""Month edges, continued (docs/product.md, Months and edges): the distribution schedule
at 00:00 on the 1st and its catch-up after a downtime, Token Statistics, ``/me/`` and
the exports on the 1st at 00:00, and the first usage of a month under concurrency."""

import csv
import datetime as dt
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from asksage_admin.lib.periods import next_period
from tests.conftest import sign_in
from tests.edges import EDGES, Edge, at, authorize, build, counter, report
from tests.factories import AdminFactory, UserFactory
from tests.kit import race
from tokens.ledger import check_ledger
from tokens.models import DistributionPolicy, DistributionRun, UsageCounter
from tokens.services import distribution as engine

pytestmark = pytest.mark.django_db


@pytest.fixture(params=EDGES)
def edge(request) -> Edge:
    return request.param


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# --- the schedule -----------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["monthly", "daily"])
def test_due_times_at_midnight_on_the_first(edge, schedule):
    policy = DistributionPolicy(schedule=schedule, schedule_day=1, schedule_hour=0)
    # At the first second of the month the run of 00:00 on the 1st is due ...
    assert engine.last_due_at(policy, now=edge.first) == edge.first
    # ... and one second earlier it is the next one.
    assert engine.next_run_at(policy, after=edge.last) == edge.first
    previous = midnight(edge.old if schedule == "monthly" else edge.last.date())
    assert engine.last_due_at(policy, now=edge.last) == previous
    following = midnight(
        next_period(edge.new)
        if schedule == "monthly"
        else edge.first.date() + dt.timedelta(days=1)
    )
    assert engine.next_run_at(policy, after=edge.first) == following


def test_a_monthly_run_on_day_28_skips_no_month_and_runs_once_in_february(edge):
    policy = DistributionPolicy(schedule="monthly", schedule_day=28, schedule_hour=0)
    day_28 = midnight(edge.old.replace(day=28))
    assert engine.last_due_at(policy, now=edge.last) == day_28
    assert engine.last_due_at(policy, now=edge.first) == day_28
    assert engine.next_run_at(policy, after=edge.last) == midnight(
        edge.new.replace(day=28)
    )


@pytest.mark.parametrize("schedule", ["monthly", "daily"])
def test_a_run_due_at_midnight_on_the_first_runs_exactly_then_and_once(
    edge, time_machine, schedule
):
    world = build(time_machine, edge)
    engine.policy_ensure(organization=world.org)
    engine.policy_update(
        actor=None,
        organization=world.org,
        changes={"schedule": schedule, "schedule_day": 1, "schedule_hour": 0},
    )
    previous = midnight(edge.old if schedule == "monthly" else edge.last.date())
    assert engine.run_due_distributions(now=edge.last) == [(world.org, "ran")]
    assert engine.run_due_distributions(now=edge.first) == [(world.org, "ran")]
    assert engine.run_due_distributions(now=edge.first + dt.timedelta(minutes=5)) == [
        (world.org, f"skipped: already ran for {edge.first:%Y-%m-%d %H:%M} UTC")
    ]
    assert list(
        DistributionRun.objects.order_by("due_at").values_list("due_at", flat=True)
    ) == [previous, edge.first]


@pytest.mark.parametrize("schedule", ["monthly", "daily"])
def test_a_missed_run_is_caught_up_once_after_a_downtime_across_the_edge(
    edge, time_machine, schedule
):
    world = build(time_machine, edge)
    engine.policy_ensure(organization=world.org)
    engine.policy_update(
        actor=None,
        organization=world.org,
        changes={"schedule": schedule, "schedule_day": 1, "schedule_hour": 0},
    )
    # The last run before the downtime: three days before the edge.
    went_down = edge.last - dt.timedelta(days=3)
    assert engine.run_due_distributions(now=went_down) == [(world.org, "ran")]
    # Back up two hours after the edge, cron calls every few minutes: the latest
    # due time (00:00 on the 1st) runs once; the daily ones missed meanwhile are
    # not replayed (a run works on the state as it is now, so one run catches up).
    back = edge.first + dt.timedelta(hours=2)
    statuses = [
        status
        for moment in (
            back,
            back + dt.timedelta(minutes=5),
            back + dt.timedelta(hours=3),
        )
        for _org, status in engine.run_due_distributions(now=moment)
    ]
    assert statuses[0] == "ran"
    assert (
        statuses[1:]
        == [f"skipped: already ran for {edge.first:%Y-%m-%d %H:%M} UTC"] * 2
    )
    runs = DistributionRun.objects.order_by("due_at").values_list("due_at", flat=True)
    assert list(runs)[-1] == edge.first
    assert len(runs) == 2
    assert check_ledger() == []


# --- Token Statistics, /me/ and exports on 1 January at 00:00 ---------------------

YEAR = Edge(at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1))


@pytest.fixture
def year_end(time_machine):
    """Acme with usage on 31 December at 23:59:59 (Ann, 500), 1 December at 00:00
    (Ann, 300), 1 February 2026 at 00:00 (Bob, 100: the oldest month of the trend)
    and 31 January 2026 at 23:59:59 (Bob, 50: just outside it). The clock stops at
    1 January 2027, 00:00:00."""
    world = build(time_machine, YEAR)
    bob = UserFactory(organization=world.org, email="bob@acme.example")
    time_machine.move_to(YEAR.first, tick=False)
    report(world.key, world.ann, 500, YEAR.last)
    report(world.key, world.ann, 300, at(2026, 12, 1))
    report(world.key, bob, 100, at(2026, 2, 1))
    report(world.key, bob, 50, at(2026, 1, 31, 23, 59, 59))
    world.admin = sign_in(
        AdminFactory(organization=world.org, email="admin@acme.example"), mfa=True
    )
    return world


def statistics(client, **params):
    response = client.get("/panel/statistics/", params)
    assert response.status_code == 200
    return response.context


def test_statistics_at_midnight_on_the_first_show_an_empty_month_and_the_trend(
    year_end,
):
    context = statistics(year_end.admin)
    period = context["period"]
    assert (period.start, period.end) == (dt.date(2027, 1, 1), dt.date(2027, 1, 31))
    kpis = context["kpis"]
    assert (kpis.used.total, kpis.active_users.total) == (0, 0)
    chart = context["daily_chart"]
    assert len(chart["labels"]) == 31 and chart["labels"][0] == "2027-01-01"
    # The usage is all zero; the forecast of the month ahead (docs/forecasts.md,
    # from December's days) is drawn in datasets of its own.
    usage = [s for s in chart["datasets"] if not s["key"].startswith("projection-")]
    assert [s["key"] for s in usage] == ["inference", "embedding"]
    assert all(value == 0 for series in usage for value in series["data"])
    # The 12 months ending with January 2027: February 2026 … January 2027.
    months = {row.month: row.total for row in context["months"]}
    assert list(months) == [dt.date(2026, m, 1) for m in range(2, 13)] + [
        dt.date(2027, 1, 1)
    ]
    assert months[dt.date(2026, 2, 1)] == 100
    assert months[dt.date(2026, 12, 1)] == 800
    assert months[dt.date(2027, 1, 1)] == 0
    assert sum(months.values()) == 900  # 31 January 2026 is outside

    december = statistics(year_end.admin, month="2026-12")
    assert december["kpis"].used.total == 800
    assert december["kpis"].active_users.total == 1
    assert december["daily_chart"]["labels"][-1] == "2026-12-31"


def test_me_at_midnight_on_the_first_shows_the_new_month(year_end):
    context = sign_in(year_end.ann).get("/me/").context
    assert context["period"] == dt.date(2027, 1, 1)
    for item in context["balances"]:
        balance = item["balance"]
        assert (balance.used, balance.held, balance.limit) == (0, 0, 1_000_000)
    assert list(context["usage_by_model"]) == []


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_exports_of_a_range_spanning_the_year_edge(year_end, time_machine):
    time_machine.move_to(YEAR.first + dt.timedelta(seconds=1), tick=False)
    report(year_end.key, year_end.ann, 700, YEAR.first)
    span = {"period": "range", "start": "2026-12-31", "end": "2027-01-01"}

    rows = read_csv(year_end.admin.get("/panel/statistics/export/events.csv", span))
    header, *events = rows
    when = header.index("occurred_at")
    tokens = header.index("tokens")
    assert [(row[when][:19], row[tokens]) for row in events] == [
        ("2026-12-31T23:59:59", "500"),
        ("2027-01-01T00:00:00", "700"),
    ]
    header, *months = read_csv(
        year_end.admin.get("/panel/statistics/export/monthly.csv", span)
    )
    by_month = {(row[0], row[1]): row[4] for row in months}
    assert by_month[("2026", "12")] == "800"
    assert by_month[("2027", "1")] == "700"


# --- the first usage of a month under concurrency ---------------------------------


@race
def test_the_first_usage_of_a_month_from_many_clients_creates_one_counter(
    edge, time_machine
):
    world = build(time_machine, edge)
    time_machine.move_to(edge.first, tick=False)  # every thread sees this instant
    clients = 16
    barrier = threading.Barrier(clients)

    def client(i):
        try:
            barrier.wait()
            hold = authorize(world.key, world.ann, 1_000, f"first-{i}").hold
            report(world.key, world.ann, 700 + i, edge.first, hold=hold)
            if i % 2:
                report(world.key, world.ann, 5, edge.last)  # late, the old month
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))

    assert UsageCounter.objects.filter(user=world.ann, period=edge.new).count() == 1
    assert counter(world.ann, edge.new) == {
        "used": sum(700 + i for i in range(clients)),
        "held": 0,
    }
    assert counter(world.ann, edge.old) == {"used": 5 * (clients // 2), "held": 0}
    assert check_ledger() == []
