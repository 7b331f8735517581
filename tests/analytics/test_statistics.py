"""Analytics → Token Statistics (docs/product.md, Token Statistics), from the outside.

Usage is recorded the way the gateway records it (POST /api/v1/usage), so the daily
rollups the page reads are maintained by the real code; every figure the page and the
exports show is then checked against sums computed here from the raw ``UsageEvent``
rows, independently of the page's selectors.
"""

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, User
from asksage_admin.lib.periods import last_day, next_period, period_of, previous_period
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.models import Allocation, TokenRequest, UsageEvent
from tokens.selectors import pools
from tokens.services import purchase_record

pytestmark = pytest.mark.django_db

PAGE = reverse("analytics:statistics")
EXPORTS = {
    name: reverse(f"analytics:statistics_export_{name}")
    for name in ("monthly", "users", "models", "events")
}
TYPES = ("inference", "embedding")
UTC = dt.UTC


# --- the dataset ----------------------------------------------------------------------


def months_back(month: dt.date, count: int) -> dt.date:
    for _ in range(count):
        month = previous_period(month)
    return month


def usage_events(users, models, *, count, prefix, now, step_hours=17, app="chat-app"):
    """``count`` gateway events, one every ``step_hours`` going back from ``now``,
    rotating over users, models (and so types), sizes and applications."""
    events = []
    keys = list(models)
    for i in range(count):
        model = models[keys[i % len(keys)]]
        embedding = model.token_type == "embedding"
        events.append(
            {
                "event_id": f"{prefix}-{i}",
                "user": users[i % len(users)].email,
                "model": model.key,
                "token_type": "embedding" if embedding else "inference",
                "prompt_tokens": 100 + (37 * i) % 900,
                "completion_tokens": 0 if embedding else 20 + (11 * i) % 300,
                "occurred_at": (
                    now - dt.timedelta(hours=step_hours * i + 1)
                ).isoformat(),
                "application": '=HYPERLINK("http://evil.example")' if i == 4 else app,
            }
        )
    return events


def post_usage(gateway, events):
    for start in range(0, len(events), 1000):
        batch = events[start : start + 1000]
        response = gateway.post("/api/v1/usage", {"events": batch})
        assert response.status_code == 200, response.content
        assert response.json()["recorded"] == len(batch), response.json()


@pytest.fixture
def ai_models(db):
    return {
        "chat": AIModelFactory(key="chat-fast", name="Chat Fast"),
        "big": AIModelFactory(
            key="chat-big",
            name="Chat Big",
            input_rate=Decimal("2.5"),
            output_rate=Decimal("3"),
        ),
        "embed": AIModelFactory(
            key="embed-small", name="Embed Small", token_type="embedding"
        ),
    }


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def dataset(org, admin_user, other_org, ai_models, gateway, now):
    """Acme: four members and the admin, a current purchase and an expired one,
    limits, token requests, and 150 events over about 106 days (four or five
    months). Globex: one member with usage on the same days (must never show)."""
    this_month = period_of(now)
    fund(org, inference=20_000_000, embedding=10_000_000)
    purchase_record(
        actor=None,
        organization=org,
        payer_email="billing@acme.example",
        inference_tokens=4_000_000,
        embedding_tokens=2_000_000,
        starts_on=months_back(this_month, 3),
        expires_on=this_month - dt.timedelta(days=1),
    )
    people = [
        UserFactory(
            organization=org,
            email="ava@acme.example",
            first_name="Ava",
            last_name="Stone",
        ),
        UserFactory(
            organization=org, email="bob@acme.example", first_name="Bob", last_name="Ng"
        ),
        UserFactory(
            organization=org,
            email="cy@acme.example",
            first_name="=SUM(A1:A9)",
            last_name="Evil",
        ),
        UserFactory(
            organization=org,
            email="dee@acme.example",
            first_name="Dee",
            last_name="Ray",
        ),
        admin_user,
    ]
    for index, person in enumerate(people):
        give(person, 1_000_000 + index * 100_000, "inference")
        give(person, 500_000 + index * 50_000, "embedding")
    TokenRequest.objects.create(
        organization=org,
        user=people[0],
        token_type="inference",
        amount=5_000,
        reason="more",
        limit_at_request=1_000_000,
    )
    TokenRequest.objects.create(
        organization=org,
        user=people[1],
        token_type="embedding",
        amount=7_000,
        reason="more",
        limit_at_request=550_000,
    )
    TokenRequest.objects.create(
        organization=org,
        user=people[2],
        token_type="inference",
        amount=9_000,
        reason="done",
        limit_at_request=1_200_000,
        status=TokenRequest.Status.DENIED,
    )
    post_usage(
        gateway,
        usage_events(people, ai_models, count=150, prefix="acme", now=now),
    )

    fund(other_org, inference=2_000_000, embedding=2_000_000)
    stranger = UserFactory(
        organization=other_org, email="=cmd@globex.example", first_name="Gus"
    )
    give(stranger, 900_000)
    post_usage(
        gateway,
        usage_events(
            [stranger], ai_models, count=60, prefix="globex", now=now, app="=globex"
        ),
    )
    return {"people": people, "stranger": stranger}


# --- independent expectations (from raw events) ------------------------------------


def events_of(org, start, end, types=TYPES):
    return [
        e
        for e in UsageEvent.objects.filter(organization=org).select_related(
            "user", "model"
        )
        if start <= e.occurred_at.astimezone(UTC).date() <= end
        and e.token_type in types
    ]


def day_of(event) -> dt.date:
    return event.occurred_at.astimezone(UTC).date()


def share(part, whole) -> Decimal:
    if not whole:
        return Decimal("0.0")
    return (Decimal(part) * 100 / Decimal(whole)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


def month_list(first, last):
    months = []
    while first <= last:
        months.append(first)
        first = next_period(first)
    return months


def trend_months(start, end):
    last = period_of(end)
    return month_list(min(period_of(start), months_back(last, 11)), last)


def expected(org, start, end, types=TYPES):
    """Every figure of the page for ``start``–``end``, from raw events."""
    events = events_of(org, start, end, types)
    used = {t: sum(e.tokens for e in events if e.token_type == t) for t in TYPES}
    months = month_list(period_of(start), period_of(end))
    pool_sum = {t: sum(pools(org, m)[t] for m in months) for t in TYPES}
    limits = {
        t: Allocation.objects.filter(organization=org, token_type=t).aggregate(
            s=Sum("limit")
        )["s"]
        or 0
        for t in TYPES
    }
    pool_now = pools(org)
    daily = defaultdict(int)
    for e in events:
        daily[(day_of(e), e.token_type)] += e.tokens
    trend = trend_months(start, end)
    trend_events = events_of(
        org, trend[0], last_day(trend[-1]), types
    )  # the monthly window
    monthly = {
        m: {"inference": 0, "embedding": 0, "events": 0} for m in trend
    }  # zero months included
    for e in trend_events:
        cell = monthly[period_of(day_of(e))]
        cell[e.token_type] += e.tokens
        cell["events"] += 1
    per_model = defaultdict(lambda: {"inference": 0, "embedding": 0, "events": 0})
    for e in events:
        cell = per_model[(e.model.key, e.model.name)]
        cell[e.token_type] += e.tokens
        cell["events"] += 1
    total = sum(used.values())
    per_user = defaultdict(lambda: {"tokens": 0, "last": None, "events": 0})
    for e in events:
        cell = per_user[e.user.email]
        cell["tokens"] += e.tokens
        cell["events"] += 1
        cell["last"] = max(cell["last"] or day_of(e), day_of(e))
    top = sorted(per_user.items(), key=lambda item: (-item[1]["tokens"], item[0]))[:10]
    return {
        "events": events,
        "used": used,
        "used_total": sum(used[t] for t in types),
        "purchased": {t: pool_sum[t] for t in types},
        "allocated": {t: limits[t] for t in types},
        "unallocated": {t: max(0, pool_now[t] - limits[t]) for t in types},
        "active_users": len({e.user_id for e in events}),
        "active_by_type": {
            t: len({e.user_id for e in events if e.token_type == t}) for t in types
        },
        "pending": {
            t: TokenRequest.objects.filter(
                organization=org, status="pending", token_type=t
            ).count()
            for t in types
        },
        "daily": daily,
        "monthly": monthly,
        "per_model": dict(per_model),
        "total": total,
        "top": top,
    }


def page(client, **params):
    response = client.get(PAGE, params)
    assert response.status_code == 200, response.content[:2000]
    return response


# --- access ---------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(anon_client):
    for url in [PAGE, *EXPORTS.values()]:
        response = anon_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_member_is_forbidden(member_client):
    for url in [PAGE, *EXPORTS.values()]:
        assert member_client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.DATA_EXPORTED
    ).exists()


def test_admin_sees_the_page(admin_client, dataset):
    response = page(admin_client)
    assert response.templates[0].name == "analytics/statistics.html"
    content = response.content.decode()
    for text in [
        "Purchased",
        "Allocated",
        "Used",
        "Unallocated",
        "Active users",
        "Requests pending",
        "Daily usage",
        "Monthly usage",
        "Monthly Data",
        "Usage by model",
        "Top users",
    ]:
        assert text in content
    # Chart data is JSON in non-executable script tags; no inline script or style.
    for chart in ("data-daily", "data-monthly", "data-models"):
        assert f'<script id="{chart}" type="application/json">' in content
    assert "<script>" not in content
    assert "style=" not in content


def test_admin_of_another_org_sees_only_their_numbers(
    other_admin_client, org, other_org, dataset, now
):
    today = now.astimezone(UTC).date()
    start = months_back(period_of(today), 4)
    # ?org= is for superusers only: an org admin always gets their own organization.
    response = page(
        other_admin_client,
        org=org.pk,
        start=start.isoformat(),
        end=today.isoformat(),
    )
    want = expected(other_org, start, today)
    context = response.context
    assert context["org"] == other_org
    assert context["kpis"].used.total == want["used_total"] > 0
    assert context["kpis"].active_users.total == 1
    assert [u.email for u in context["top_users"]] == ["=cmd@globex.example"]
    content = response.content.decode()
    for person in dataset["people"]:
        assert person.email not in content


def test_superuser_views_an_org_with_the_org_parameter(superuser_client, org, dataset):
    response = page(superuser_client, org=org.pk)
    assert response.context["org"] == org
    content = response.content.decode()
    assert f"{reverse('analytics:statistics_export_users')}?org={org.pk}" in content
    assert f'name="org" value="{org.pk}"' in content


# --- numbers --------------------------------------------------------------------------


def periods(now):
    today = now.astimezone(UTC).date()
    this_month = period_of(today)
    last_month = previous_period(this_month)
    return {
        "this month (default)": ({}, this_month, last_day(this_month)),
        "last month": (
            {"month": last_month.strftime("%Y-%m")},
            last_month,
            last_day(last_month),
        ),
        "three months and a bit": (
            {
                "period": "range",
                "start": (
                    months_back(this_month, 3) + dt.timedelta(days=9)
                ).isoformat(),
                "end": today.isoformat(),
            },
            months_back(this_month, 3) + dt.timedelta(days=9),
            today,
        ),
    }


@pytest.mark.parametrize(
    "which", ["this month (default)", "last month", "three months and a bit"]
)
@pytest.mark.parametrize("token_type", ["all", "inference", "embedding"])
def test_every_figure_equals_the_sum_of_raw_events(
    admin_client, org, dataset, now, which, token_type
):
    params, start, end = periods(now)[which]
    types = TYPES if token_type == "all" else (token_type,)
    if token_type != "all":
        params = {**params, "token_type": token_type}
    response = page(admin_client, **params)
    want = expected(org, start, end, types)
    context = response.context
    period = context["period"]
    assert (period.start, period.end, period.token_types) == (start, end, types)
    if which != "this month (default)":
        assert len(want["events"]) > 10  # the dataset covers these periods

    # KPI cards
    kpis = context["kpis"]
    for name in ("purchased", "allocated", "unallocated"):
        figure = getattr(kpis, name)
        assert {t: figure.by_type[t] for t in types} == want[name], name
        assert figure.total == sum(want[name].values())
    assert {t: kpis.used.by_type[t] for t in types} == {
        t: want["used"][t] for t in types
    }
    assert kpis.used.total == want["used_total"]
    assert kpis.active_users.total == want["active_users"]
    assert {t: kpis.active_users.by_type[t] for t in types} == want["active_by_type"]
    assert {t: kpis.pending_requests.by_type[t] for t in types} == want["pending"]
    assert kpis.pending_requests.total == sum(want["pending"].values())

    # Daily chart and its table: every day of the range, zeros included.
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    chart = context["daily_chart"]
    assert chart["labels"] == [d.isoformat() for d in days]
    # (the forecast's datasets, "projection-<type>", are tested in test_forecasts)
    usage = [s for s in chart["datasets"] if not s["key"].startswith("projection-")]
    assert [s["key"] for s in usage] == list(types)
    for series in usage:
        assert series["data"] == [want["daily"][(d, series["key"])] for d in days]
    assert [(row.day, row.by_type) for row in context["days"]] == [
        (d, {t: want["daily"][(d, t)] for t in types}) for d in days
    ]

    # Monthly chart and the Monthly Data table: 12 months ending with the period.
    months = list(want["monthly"])
    assert len(months) >= 12
    assert [r.month for r in context["months"]] == months
    for row in context["months"]:
        cell = want["monthly"][row.month]
        assert (row.inference, row.embedding, row.events) == (
            cell["inference"],
            cell["embedding"],
            cell["events"],
        )
        assert row.total == cell["inference"] + cell["embedding"]
    for series in context["monthly_chart"]["datasets"]:
        assert series["data"] == [want["monthly"][m][series["key"]] for m in months]
    assert context["months_events"] == sum(
        c["events"] for c in want["monthly"].values()
    )

    # By model: chart and table.
    rows = context["models"]
    assert {r.key: (r.inference, r.embedding, r.events) for r in rows} == {
        key: (c["inference"], c["embedding"], c["events"])
        for (key, _name), c in want["per_model"].items()
    }
    for r in rows:
        assert r.share == share(r.tokens, want["total"])
    assert [r.tokens for r in rows] == sorted((r.tokens for r in rows), reverse=True)
    chart = context["model_chart"]
    assert chart["labels"] == [r.name for r in rows]
    for series in chart["datasets"]:
        assert series["data"] == [getattr(r, series["key"]) for r in rows]

    # Top users: the 10 biggest, with share and last active day.
    assert [
        (u.email, u.tokens, u.share, u.last_active) for u in context["top_users"]
    ] == [
        (email, c["tokens"], share(c["tokens"], want["total"]), c["last"])
        for email, c in want["top"]
    ]


def test_tables_show_the_numbers_and_link_to_users(admin_client, org, dataset, now):
    today = now.astimezone(UTC).date()
    start = months_back(period_of(today), 3)
    response = page(admin_client, start=start.isoformat(), end=today.isoformat())
    want = expected(org, start, today)
    content = response.content.decode()
    assert f'data-kpi="used">{want["used_total"]:,}<' in content
    assert f'data-kpi="active_users">{want["active_users"]}<' in content
    for email, cell in want["top"]:
        user = User.objects.get(email=email)
        link = reverse("tokens:user_detail", kwargs={"pk": user.pk})
        assert f'<a href="{link}">{email}</a>' in content
        assert f"{cell['tokens']:,}" in content
    for (key, name), cell in want["per_model"].items():
        assert name in content and key in content
        assert f"{cell['inference'] + cell['embedding']:,}" in content
    for cell in want["monthly"].values():
        if cell["events"]:
            assert f"{cell['inference'] + cell['embedding']:,}" in content


def test_a_member_who_left_still_counts_and_is_not_linked(
    admin_client, org, dataset, now
):
    from tokens.services import organization_remove_member

    bob = dataset["people"][1]
    organization_remove_member(actor=None, user=bob)
    today = now.astimezone(UTC).date()
    start = months_back(period_of(today), 4)
    response = page(admin_client, start=start.isoformat(), end=today.isoformat())
    want = expected(org, start, today)
    assert response.context["kpis"].used.total == want["used_total"]
    top = {u.email: u for u in response.context["top_users"]}
    assert not top[bob.email].is_member
    link = reverse("tokens:user_detail", kwargs={"pk": bob.pk})
    assert link not in response.content.decode()
    rows = read_csv(
        admin_client.get(
            EXPORTS["users"], {"start": start.isoformat(), "end": today.isoformat()}
        )
    )
    assert bob.email in [r[0] for r in rows[1:]]


def test_empty_period_shows_zeros_and_empty_states(admin_client, dataset):
    response = page(admin_client, month="2001-02")
    context = response.context
    assert context["kpis"].used.total == 0
    assert context["kpis"].active_users.total == 0
    assert context["models"] == []
    assert context["top_users"] == []
    assert [d.total for d in context["days"]] == [0] * 28
    assert "No usage in this period." in response.content.decode()


# --- query count ----------------------------------------------------------------------


def count_queries(client, params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        page(client, **params)
    assert ctx.captured_queries, "no query captured: the count would prove nothing"
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    ("start", "end", "rollups"),
    [
        # Whole months: the organization and monthly rollups only.
        ("2025-01-01", "2026-12-31", {"orgdailyusage", "monthlyusage"}),
        # Days at the edges: the daily rollup too, for those days.
        ("2025-01-15", "2026-12-20", {"orgdailyusage", "monthlyusage", "dailyusage"}),
    ],
)
def test_the_page_never_reads_raw_events(admin_client, dataset, start, end, rollups):
    admin_client.get(PAGE)
    with CaptureQueriesContext(connection) as ctx:
        page(admin_client, start=start, end=end)
    tables = " ".join(q["sql"] for q in ctx.captured_queries)
    read = {
        name
        for name in ("orgdailyusage", "monthlyusage", "dailyusage")
        if f"tokens_{name}" in tables
    }
    assert read == rollups
    assert "tokens_usageevent" not in tables


def test_query_count_is_the_same_for_1_and_12_months_of_data(
    admin_client, org, admin_user, ai_models, gateway, now
):
    fund(org)
    today = now.astimezone(UTC).date()
    year = {
        "start": months_back(period_of(today), 11).isoformat(),
        "end": today.isoformat(),
    }
    users = [UserFactory(organization=org) for _ in range(3)]
    # One month of data (the last 20 days).
    post_usage(
        gateway,
        usage_events(users, ai_models, count=40, prefix="m1", now=now, step_hours=12),
    )
    admin_client.get(PAGE)  # session and last-active writes happen once
    one_month = [count_queries(admin_client, year), count_queries(admin_client, {})]
    # Twelve months of data.
    post_usage(
        gateway,
        usage_events(users, ai_models, count=400, prefix="m12", now=now, step_hours=21),
    )
    assert len({e.occurred_at.month for e in UsageEvent.objects.all()}) >= 12
    assert [count_queries(admin_client, year), count_queries(admin_client, {})] == (
        one_month
    )


# Mid-month: the events go back 1,000 minutes from now and must all fall in the
# month the page shows by default (at 00:02 on the 1st most were last month's).
@pytest.mark.time_machine(dt.datetime(2026, 11, 16, 12, 0, tzinfo=dt.UTC))
def test_query_count_is_the_same_for_10_and_1000_users(
    admin_client, org, ai_models, gateway, now
):
    fund(org)

    def add_users(start, count):
        users = User.objects.bulk_create(
            [
                User(
                    organization=org,
                    email=f"u{n}@acme.example",
                    first_name="U",
                    last_name=str(n),
                )
                for n in range(start, start + count)
            ]
        )
        post_usage(
            gateway,
            [
                {
                    "event_id": f"u-{u.email}",
                    "user": u.email,
                    "model": ai_models["chat"].key,
                    "token_type": "inference",
                    "prompt_tokens": 10 + i,
                    "completion_tokens": 5,
                    "occurred_at": (now - dt.timedelta(minutes=i + 1)).isoformat(),
                }
                for i, u in enumerate(users)
            ],
        )

    add_users(0, 10)
    admin_client.get(PAGE)
    few = count_queries(admin_client, {})
    add_users(10, 990)
    assert count_queries(admin_client, {}) == few
    assert page(admin_client).context["kpis"].active_users.total == 1000


# --- exports --------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def range_params(now):
    today = now.astimezone(UTC).date()
    start = months_back(period_of(today), 3) + dt.timedelta(days=5)
    return start, today, {"start": start.isoformat(), "end": today.isoformat()}


def test_monthly_export(admin_client, org, dataset, now):
    start, end, params = range_params(now)
    response = admin_client.get(EXPORTS["monthly"], params)
    months = trend_months(start, end)
    assert response["Content-Disposition"] == (
        f'attachment; filename="statistics-monthly-{org.pk}-'
        f'{months[0].isoformat()}-{last_day(months[-1]).isoformat()}.csv"'
    )
    rows = read_csv(response)
    assert rows[0] == ["Year", "Month", "Inference", "Embedding", "Total", "Events"]
    want = expected(org, start, end)["monthly"]
    assert rows[1:] == [
        [
            str(m.year),
            str(m.month),
            str(c["inference"]),
            str(c["embedding"]),
            str(c["inference"] + c["embedding"]),
            str(c["events"]),
        ]
        for m, c in want.items()
    ]


def test_user_export(admin_client, org, dataset, now):
    start, end, params = range_params(now)
    response = admin_client.get(EXPORTS["users"], params)
    assert response["Content-Disposition"] == (
        f'attachment; filename="statistics-users-{org.pk}-{start}-{end}.csv"'
    )
    rows = read_csv(response)
    assert rows[0] == [
        "Email",
        "Name",
        "Inference",
        "Embedding",
        "Total",
        "Max Inference Tokens",
        "Max Embedding Tokens",
    ]
    events = events_of(org, start, end)
    want = []
    for user in User.objects.filter(organization=org).order_by("email"):
        used = {
            t: sum(
                e.tokens for e in events if e.user_id == user.pk and e.token_type == t
            )
            for t in TYPES
        }
        limit = {
            t: Allocation.objects.get(user=user, token_type=t).limit for t in TYPES
        }
        name = user.get_full_name()
        want.append(
            [
                user.email,
                "'" + name if name.startswith("=") else name,
                str(used["inference"]),
                str(used["embedding"]),
                str(used["inference"] + used["embedding"]),
                str(limit["inference"]),
                str(limit["embedding"]),
            ]
        )
    assert rows[1:] == want
    assert ["cy@acme.example", "'=SUM(A1:A9) Evil"] in [r[:2] for r in rows]
    assert "=cmd@globex.example" not in {r[0] for r in rows}


def test_model_export(admin_client, org, dataset, now):
    start, end, params = range_params(now)
    rows = read_csv(
        admin_client.get(EXPORTS["models"], {**params, "token_type": "inference"})
    )
    assert rows[0] == [
        "Model",
        "Model key",
        "Inference",
        "Embedding",
        "Total",
        "Share %",
        "Events",
    ]
    want = expected(org, start, end, ("inference",))
    assert sorted(rows[1:]) == sorted(
        [
            name,
            key,
            str(c["inference"]),
            str(c["embedding"]),
            str(c["inference"] + c["embedding"]),
            f"{share(c['inference'] + c['embedding'], want['total']):.1f}",
            str(c["events"]),
        ]
        for (key, name), c in want["per_model"].items()
    )
    assert {r[1] for r in rows[1:]} == {"chat-fast", "chat-big"}


def test_event_export(admin_client, org, dataset, now):
    start, end, params = range_params(now)
    response = admin_client.get(EXPORTS["events"], params)
    assert response["Content-Disposition"] == (
        f'attachment; filename="usage-events-{org.pk}-{start}-{end}.csv"'
    )
    rows = read_csv(response)
    assert rows[0] == [
        "event_id",
        "occurred_at",
        "user_email",
        "model",
        "token_type",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
        "application",
    ]
    events = sorted(events_of(org, start, end), key=lambda e: (e.occurred_at, e.pk))
    assert rows[1:] == [
        [
            e.event_id,
            e.occurred_at.astimezone(UTC).isoformat(),
            e.user.email,
            e.model.key,
            e.token_type,
            str(e.prompt_tokens),
            str(e.completion_tokens),
            str(e.tokens),
            "'" + e.application if e.application.startswith("=") else e.application,
        ]
        for e in events
    ]
    assert [r[8] for r in rows[1:] if r[0] == "acme-4"] == [
        '\'=HYPERLINK("http://evil.example")'
    ]
    assert not [r for r in rows if r[0].startswith("globex") or "globex" in r[2]]


def test_every_export_is_audited_with_its_filters(
    admin_client, admin_user, org, dataset, now
):
    start, end, params = range_params(now)
    for url in EXPORTS.values():
        read_csv(admin_client.get(url, {**params, "token_type": "embedding"}))
    events = AuditEvent.objects.filter(action=AuditEvent.Action.DATA_EXPORTED).order_by(
        "id"
    )
    filters = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "token_type": "embedding",
    }
    assert [(e.actor, e.organization, e.after) for e in events] == [
        (admin_user, org, {"export": what, "filters": filters})
        for what in (
            "statistics-monthly",
            "statistics-users",
            "statistics-models",
            "usage-events",
        )
    ]


def test_other_org_admin_exports_only_their_data(other_admin_client, org, dataset, now):
    _start, _end, params = range_params(now)
    for url in EXPORTS.values():
        body = "\n".join(
            ",".join(r)
            for r in read_csv(other_admin_client.get(url, {**params, "org": org.pk}))
        )
        for person in dataset["people"]:
            assert person.email not in body
        assert "acme-" not in body
        assert "Ava" not in body


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"start": "2025-03-10", "end": "2025-03-01"},
            "The range ends (2025-03-01) before it starts (2025-03-10): swap them.",
        ),
        (
            {"start": "2022-01-01", "end": "2024-06-30"},
            "A range can cover at most 2 years (731 days); this one covers 912 days.",
        ),
        (
            {"start": "2025-02-30", "end": "2025-03-01"},
            "Enter the start date as YYYY-MM-DD.",
        ),
        (
            {"start": "2025-01-01", "end": "yesterday"},
            "Enter the end date as YYYY-MM-DD.",
        ),
        (
            {"period": "range", "start": "2025-01-01"},
            "Choose the last day of the range.",
        ),
        ({"month": "2025-13"}, "Enter the month as YYYY-MM"),
        ({"month": "March"}, "Enter the month as YYYY-MM"),
        ({"period": "month"}, "Choose the month to show (YYYY-MM)."),
        ({"month": "1999-12"}, "Enter the month as YYYY-MM"),
        (
            {"start": "0001-01-01", "end": "0001-01-02"},
            "Choose a date between 2000-01-01 and 2999-12-31.",
        ),
        (
            {"token_type": "training"},
            "Choose a token type: all, inference or embedding",
        ),
        ({"period": "week"}, "Choose the period: this month, a month or a date range."),
    ],
)
def test_bad_input_gets_a_message_not_a_500(admin_client, dataset, params, message):
    response = admin_client.get(PAGE, params)
    assert response.status_code == 400
    content = response.content.decode()
    assert message in content.replace("&#x27;", "'")
    assert "The statistics cannot be shown for this period." in content
    assert "kpis" not in response.context
    for url in EXPORTS.values():
        response = admin_client.get(url, params)
        assert response.status_code == 400
        assert not response.streaming
        assert message in response.content.decode().replace("&#x27;", "'")
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.DATA_EXPORTED
    ).exists()


def test_exactly_two_years_is_allowed(admin_client, dataset):
    response = page(admin_client, start="2023-01-01", end="2024-12-31")
    assert len(response.context["days"]) == 731
    assert len(response.context["months"]) == 24


def test_month_link_without_period_parameter(admin_client, dataset):
    response = page(admin_client, month="2024-02")
    period = response.context["period"]
    assert (period.start, period.end) == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    # The picker shows the mode that was used.
    assert '<option value="month" selected>' in response.content.decode()


def test_the_error_banner_keeps_its_messages_apart(admin_client, org):
    """Each message is its own sentence in the page's text (a screen reader or a
    copy of the banner used to read "…period.Choose the first day…")."""
    response = admin_client.get(PAGE, {"period": "range"})
    assert response.status_code == 400
    text = " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())
    flat = re.sub(r"<[^>]+>", "", response.content.decode())
    assert "for this period. Choose the first day of the range." in text
    assert "range.Choose" not in flat
    assert "period.Choose" not in flat
