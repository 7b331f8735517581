"""tokens.ledger.check_ledger: the invariants of docs/architecture.md (Invariants and
check_ledger) verified with set-based queries.

``build_world`` makes a consistent data set through the services and the gateway API
(tests/tokens/test_commands.py reuses it to break each invariant on purpose)."""

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from asksage_admin.lib.periods import label, period_of, previous_period
from tests.factories import (
    AdminFactory,
    AIModelFactory,
    OrganizationFactory,
    UserFactory,
)
from tests.factories import fund as fund_org
from tokens.ledger import MAX_LISTED, check_ledger
from tokens.models import (
    AllocationChange,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    Purchase,
    UsageCounter,
    UsageEvent,
)
from tokens.services import allocation_set_limit, metering, user_deactivate

pytestmark = pytest.mark.django_db


def _set(actor, user, token_type, limit, **extra):
    return allocation_set_limit(
        actor=actor, user=user, token_type=token_type, limit=limit, **extra
    )


def build_world(gateway) -> SimpleNamespace:
    """Two organizations with purchases, limits (one below the minimum on purpose,
    one deactivated user), settled, open and released holds, and usage in this
    month and the last, all made through services and the API."""
    org = OrganizationFactory(name="Acme Corp")
    other = OrganizationFactory(name="Globex")
    admin = AdminFactory(organization=org, email="admin@acme.example")
    member = UserFactory(organization=org, email="member@acme.example")
    leaver = UserFactory(organization=org, email="leaver@acme.example")
    outsider = UserFactory(organization=other, email="user@globex.example")
    fund_org(org, inference=10_000_000, embedding=10_000_000)
    fund_org(other, inference=4_000_000, embedding=4_000_000)
    for user, actor, inference, embedding in (
        (admin, admin, 500_000, 300_000),
        (member, admin, 1_000_000, 500_000),
        (leaver, admin, 400_000, 200_000),
        (outsider, None, 1_000_000, 1_000_000),
    ):
        _set(actor, user, "inference", inference)
        _set(actor, user, "embedding", embedding)
    user_deactivate(actor=admin, user=leaver)
    # An admin lowers a paid user under the minimum on purpose: allowed, audited.
    _set(admin, member, "embedding", 150_000, allow_below_minimum=True)

    AIModelFactory(key="gpt-4o", input_rate=Decimal("1.0"), output_rate=Decimal("3.0"))
    AIModelFactory(key="embed", token_type="embedding", input_rate=Decimal("0.5"))

    def authorize(user, tokens, request_id):
        response = gateway.post(
            "/api/v1/authorize",
            {
                "user": user.email,
                "model": "gpt-4o",
                "token_type": "inference",
                "tokens": tokens,
                "request_id": request_id,
            },
        )
        assert response.status_code == 200, response.json()
        return response.json()["hold_id"]

    settled = authorize(member, 5_000, "r-settled")
    open_hold = authorize(member, 2_000, "r-open")
    released = authorize(member, 1_000, "r-released")
    assert gateway.post(f"/api/v1/holds/{released}/release").status_code == 200

    now = timezone.now()
    last_month = dt.datetime.combine(
        period_of(now) - dt.timedelta(days=1), dt.time(23, 59, 59), tzinfo=dt.UTC
    )

    def event(event_id, user, prompt, completion=0, when=now, **extra):
        return {
            "event_id": event_id,
            "user": user.email,
            "model": "gpt-4o",
            "token_type": "inference",
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "occurred_at": when.isoformat(),
            **extra,
        }

    events = [
        event("e-settle", member, 3_000, 1_000, hold_id=settled),
        event("e-chat", member, 1_200, 300),
        event("e-embed", member, 9_001, model="embed", token_type="embedding"),
        event("e-last-month", member, 700, 100, when=last_month),
        event("e-admin", admin, 400, 50),
        event("e-globex", outsider, 800, 80),
    ]
    response = gateway.post("/api/v1/usage", {"events": events})
    assert response.json()["recorded"] == len(events), response.json()
    return SimpleNamespace(
        org=org,
        other=other,
        admin=admin,
        member=member,
        leaver=leaver,
        outsider=outsider,
        open_hold=open_hold,
        now=now,
    )


@pytest.fixture
def world(gateway):
    return build_world(gateway)


# Mid-month: building the world takes more than a second, and a month's edge
# passing meanwhile splits its usage and pools over two months.
@pytest.mark.time_machine(dt.datetime(2026, 3, 16, 12, 0, tzinfo=dt.UTC))
def test_consistent_world_has_no_violations(world):
    assert check_ledger() == []
    assert check_ledger(organization=world.org) == []
    assert check_ledger(organization=world.other) == []
    # The world really holds what the checks compare.
    counter = UsageCounter.objects.get(
        user=world.member, token_type="inference", period=period_of()
    )
    assert counter.held == 2_000
    assert counter.used == (3_000 + 3 * 1_000) + (1_200 + 3 * 300)


def test_open_hold_past_its_expiry_is_pending_not_a_violation(world):
    Hold.objects.filter(pk=world.open_hold).update(
        expires_at=timezone.now() - dt.timedelta(minutes=5)
    )
    assert check_ledger() == []


def test_counter_without_events_must_have_used_zero(world):
    two_months_ago = previous_period(previous_period(period_of()))
    UsageCounter.objects.create(
        organization=world.org,
        user=world.member,
        token_type="inference",
        period=two_months_ago,
        used=42,
    )
    assert check_ledger() == [
        "Invariant 3 (used = sum of usage events): member@acme.example, inference, "
        f"{label(two_months_ago)}, Acme Corp (id {world.org.pk}): counter used 42 but "
        "the events add up to 0."
    ]


def test_events_without_a_counter_are_a_violation(world):
    last = previous_period(period_of())
    UsageCounter.objects.filter(user=world.member, period=last).delete()
    assert check_ledger() == [
        "Invariant 3 (used = sum of usage events): member@acme.example, inference, "
        f"{label(last)}, Acme Corp (id {world.org.pk}): usage events add up to 1,000 "
        "but there is no counter."
    ]


def test_an_event_counts_in_its_utc_month(world, gateway):
    # 23:30 at UTC−5 on the last day of a month is already the next month in UTC.
    first = previous_period(period_of())
    local = dt.datetime.combine(
        first - dt.timedelta(days=1),
        dt.time(23, 30),
        tzinfo=dt.timezone(dt.timedelta(hours=-5)),
    )
    response = gateway.post(
        "/api/v1/usage",
        {
            "events": [
                {
                    "event_id": "e-late-evening",
                    "user": world.member.email,
                    "model": "gpt-4o",
                    "token_type": "inference",
                    "prompt_tokens": 10,
                    "completion_tokens": 0,
                    "occurred_at": local.isoformat(),
                }
            ]
        },
    )
    assert response.json()["recorded"] == 1
    assert UsageCounter.objects.get(
        user=world.member, token_type="inference", period=first
    ).used == (700 + 3 * 100 + 10)
    assert check_ledger() == []


def test_usage_of_a_user_who_moved_today_stays_with_each_organization(gateway):
    from tokens.services import organization_add_member, organization_remove_member

    first = OrganizationFactory(name="First")
    second = OrganizationFactory(name="Second")
    fund_org(first)
    fund_org(second)
    AdminFactory(organization=first)
    AdminFactory(organization=second)
    AIModelFactory(key="gpt-4o")
    mover = UserFactory(organization=first, email="mover@example.com")
    _set(None, mover, "inference", 1_000_000)
    now = timezone.now().replace(microsecond=0)

    def use(event_id, prompt):
        body = gateway.post(
            "/api/v1/usage",
            {
                "events": [
                    {
                        "event_id": event_id,
                        "user": mover.email,
                        "model": "gpt-4o",
                        "token_type": "inference",
                        "prompt_tokens": prompt,
                        "completion_tokens": 0,
                        "occurred_at": now.isoformat(),
                    }
                ]
            },
        ).json()
        assert body["recorded"] == 1, body

    use("before-the-move", 100)
    organization_remove_member(actor=None, user=mover)
    mover.refresh_from_db()
    organization_add_member(actor=None, organization=second, user=mover, role="user")
    use("after-the-move", 40)

    by_org = dict(
        DailyUsage.objects.filter(user=mover).values_list("organization_id", "tokens")
    )
    assert by_org == {first.pk: 100, second.pk: 40}
    assert dict(OrgDailyUsage.objects.values_list("organization_id", "tokens")) == {
        first.pk: 100,
        second.pk: 40,
    }
    assert check_ledger() == []


def test_daily_rollup_is_checked_in_both_directions(world):
    row = DailyUsage.objects.get(user=world.admin)
    day = row.day
    row.delete()
    DailyUsage.objects.create(
        organization=world.org,
        user=world.admin,
        model=row.model,
        token_type="inference",
        day=day - dt.timedelta(days=40),
        tokens=5,
        events=1,
    )
    violations = check_ledger()
    # The coarser rollups are checked against the daily rollup: they disagree with
    # it now too (their own tests are below).
    assert {v[:13] for v in violations} == {
        "Invariant 5 (",
        "Invariant 5b ",
        "Invariant 5c ",
    }
    violations = [v for v in violations if v.startswith("Invariant 5 ")]
    assert len(violations) == 2
    assert violations[0].startswith("Invariant 5 (daily rollup = usage events): ")
    assert violations[0].endswith(
        ": daily usage 5 tokens in 1 events but the events add up to 0 tokens in 0 "
        "events."
    )
    assert violations[1] == (
        "Invariant 5 (daily rollup = usage events): admin@acme.example, gpt-4o, "
        f"inference, {day.isoformat()}: no daily usage row but the events add up to "
        "550 tokens in 1 events."
    )


def test_org_daily_rollup_is_checked_in_both_directions(world):
    acme = f"Acme Corp (id {world.org.pk})"
    globex = f"Globex (id {world.other.pk})"
    today = world.now.astimezone(dt.UTC).date()
    # A changed row: the embedding tokens of Acme today.
    changed = OrgDailyUsage.objects.get(organization=world.org, model__key="embed")
    OrgDailyUsage.objects.filter(pk=changed.pk).update(tokens=F("tokens") + 5)
    # A missing row: Globex's usage today.
    OrgDailyUsage.objects.filter(organization=world.other).delete()
    # An extra row: usage of a day without any.
    OrgDailyUsage.objects.create(
        organization=world.org,
        model=changed.model,
        token_type="embedding",
        day=today - dt.timedelta(days=40),
        tokens=7,
        events=2,
    )
    name = "Invariant 5b (organization daily rollup = daily rollup): "
    assert sorted(check_ledger()) == sorted(
        [
            f"{name}{acme}, embed, embedding, {today.isoformat()}: organization "
            f"daily usage {changed.tokens + 5:,} tokens in 1 events but the daily "
            f"usage adds up to {changed.tokens:,} tokens in 1 events.",
            f"{name}{acme}, embed, embedding, "
            f"{(today - dt.timedelta(days=40)).isoformat()}: organization daily "
            "usage 7 tokens in 2 events but the daily usage adds up to 0 tokens in 0 "
            "events.",
            f"{name}{globex}, gpt-4o, inference, {today.isoformat()}: no "
            "organization daily usage row but the daily usage adds up to 1,040 "
            "tokens in 1 events.",
        ]
    )
    assert [v[:13] for v in check_ledger(organization=world.other)] == ["Invariant 5b "]


def test_monthly_rollup_is_checked_in_both_directions(world):
    acme = f"Acme Corp (id {world.org.pk})"
    globex = f"Globex (id {world.other.pk})"
    today = world.now.astimezone(dt.UTC).date()
    this_month, last_month = period_of(today), previous_period(period_of(today))
    last_of_last = (this_month - dt.timedelta(days=1)).isoformat()
    # Changed rows: the member's embedding tokens this month (and the total, which
    # the table's constraint keeps equal to the types' sum); the member's last days
    # last month: no inference one (NULL), and a wrong one of any type.
    MonthlyUsage.objects.filter(user=world.member, month=this_month).update(
        embedding_tokens=F("embedding_tokens") + 1, tokens=F("tokens") + 1
    )
    MonthlyUsage.objects.filter(user=world.member, month=last_month).update(
        inference_last_day=None, last_day=last_month
    )
    # A last day of a type without usage (Globex has no embedding usage).
    MonthlyUsage.objects.filter(user=world.outsider).update(embedding_last_day=today)
    # A missing row: the admin's usage this month.
    MonthlyUsage.objects.filter(user=world.admin).delete()
    # An extra row: a month the leaver used nothing.
    MonthlyUsage.objects.create(
        organization=world.org,
        user=world.leaver,
        month=this_month,
        inference_tokens=3,
        inference_events=1,
        inference_last_day=today,
        tokens=3,
        events=1,
        last_day=today,
    )
    name = "Invariant 5c (monthly rollup = daily rollup): "
    on_today = f"last on {today.isoformat()}"
    assert sorted(check_ledger()) == sorted(
        [
            f"{name}member@acme.example, {acme}, {label(this_month)}: monthly usage "
            f"embedding 4,502 tokens in 1 events, {on_today}; total 12,602 tokens "
            f"in 3 events, {on_today}, but the daily usage says embedding 4,501 "
            f"tokens in 1 events, {on_today}; total 12,601 tokens in 3 events, "
            f"{on_today}.",
            f"{name}member@acme.example, {acme}, {label(last_month)}: monthly usage "
            "inference 1,000 tokens in 1 events; total 1,000 tokens in 1 events, "
            f"last on {last_month.isoformat()}, but the daily usage says inference "
            f"1,000 tokens in 1 events, last on {last_of_last}; total 1,000 tokens "
            f"in 1 events, last on {last_of_last}.",
            f"{name}user@globex.example, {globex}, {label(this_month)}: monthly "
            f"usage embedding 0 tokens in 0 events, {on_today}, but the daily usage "
            "says embedding 0 tokens in 0 events.",
            f"{name}admin@acme.example, {acme}, {label(this_month)}: no monthly "
            f"usage row but the daily usage says inference 550 tokens in 1 events, "
            f"{on_today}; total 550 tokens in 1 events, {on_today}.",
            f"{name}leaver@acme.example, {acme}, {label(this_month)}: monthly usage "
            f"inference 3 tokens in 1 events, {on_today}; total 3 tokens in 1 "
            f"events, {on_today}, but the daily usage says inference 0 tokens in 0 "
            "events; total 0 tokens in 0 events.",
        ]
    )
    assert [v[:13] for v in check_ledger(organization=world.other)] == ["Invariant 5c "]


def test_monthly_rollup_totals_are_kept_by_the_database(world):
    row = MonthlyUsage.objects.get(user=world.admin)
    with pytest.raises(IntegrityError), transaction.atomic():
        MonthlyUsage.objects.filter(pk=row.pk).update(tokens=F("tokens") + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        MonthlyUsage.objects.filter(pk=row.pk).update(
            embedding_events=F("embedding_events") + 1
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        MonthlyUsage.objects.filter(pk=row.pk).update(
            inference_tokens=-1, tokens=F("tokens") - F("inference_tokens") - 1
        )
    assert check_ledger() == []


def test_a_check_can_be_scoped_to_one_organization(world):
    UsageCounter.objects.filter(user=world.outsider).update(used=F("used") + 1)
    assert check_ledger(organization=world.org) == []
    assert [v[:12] for v in check_ledger(organization=world.other)] == ["Invariant 3 "]
    assert len(check_ledger()) == 1


def test_pool_is_the_purchases_active_this_month(world):
    last_month = previous_period(period_of())
    Purchase.objects.filter(organization=world.other).update(
        starts_on=last_month, expires_on=last_month
    )
    assert check_ledger() == [
        f"Invariant 1 (allocated ≤ pool): Globex (id {world.other.pk}), embedding in "
        f"{label(period_of())}: allocated 1,000,000 exceeds the pool of 0.",
        f"Invariant 1 (allocated ≤ pool): Globex (id {world.other.pk}), inference in "
        f"{label(period_of())}: allocated 1,000,000 exceeds the pool of 0.",
    ]


def test_below_minimum_only_when_the_platform_set_it(world):
    # Set by an admin on purpose (member, embedding), by deactivation (leaver) and
    # never set at all (a new user with no allocation): none is a violation.
    UserFactory(organization=world.org, email="new@acme.example")
    assert check_ledger() == []
    latest = AllocationChange.objects.filter(
        user=world.member, token_type="embedding"
    ).latest("time", "id")
    AllocationChange.objects.filter(pk=latest.pk).update(source="distribution")
    assert check_ledger() == [
        "Invariant 10 (limits and platform minimum): member@acme.example, embedding: "
        "limit 150,000 is below the platform minimum of 200,000 for a paid, active "
        "user, set by distribution (not by an admin on purpose)."
    ]


def test_banned_user_below_minimum_is_not_a_violation(world):
    latest = AllocationChange.objects.filter(
        user=world.member, token_type="embedding"
    ).latest("time", "id")
    AllocationChange.objects.filter(pk=latest.pk).update(source="reclamation")
    assert len(check_ledger()) == 1
    type(world.member).objects.filter(pk=world.member.pk).update(is_banned=True)
    assert check_ledger() == []


def test_many_violations_are_capped_with_a_note(world):
    UsageCounter.objects.bulk_create(
        UsageCounter(
            organization=world.org,
            user=world.admin,
            token_type="embedding",
            period=dt.date(2020, 1, 1) + dt.timedelta(days=31 * i),
            used=1,
        )
        for i in range(MAX_LISTED + 5)
    )
    violations = check_ledger()
    assert len(violations) == MAX_LISTED + 1
    assert violations[-1] == (
        "Invariant 3 (used = sum of usage events): more violations not listed "
        f"(first {MAX_LISTED} shown)."
    )


def test_usage_events_exist_in_the_world(world):
    # Guard against a vacuous pass: the checks above compared real rows.
    assert UsageEvent.objects.count() == 6
    assert DailyUsage.objects.count() == 5
    # Four organization-level days, in one stripe per user who used them.
    days = OrgDailyUsage.objects.values("organization", "model", "token_type", "day")
    assert days.distinct().count() == 4
    assert OrgDailyUsage.objects.count() == 5
    # One row per organization, user and month (the member's two types in one).
    assert MonthlyUsage.objects.count() == 4


def test_monthly_rollup_keeps_each_types_last_day_across_batches(org, service_key):
    """One row per user and month, written by batches of one type or the other: a
    batch without usage of a type leaves that type's last day as it is (the upsert
    keeps the greater of two last days, ignoring NULL on every backend: SQLite's
    MAX(day, NULL) is NULL), and an earlier day never replaces a later one."""
    AIModelFactory(key="chat")
    AIModelFactory(key="embed", token_type="embedding")
    ava = UserFactory(organization=org, email="ava@acme.example")

    def record(*events):
        result = metering.usage_record(
            key=service_key[0],
            events=[
                {
                    "event_id": f"e-{model}-{day}",
                    "user": ava.email,
                    "model": model,
                    "token_type": "embedding" if model == "embed" else "inference",
                    "prompt_tokens": tokens,
                    "completion_tokens": 0,
                    "occurred_at": f"2026-07-{day:02d}T12:00:00+00:00",
                }
                for model, day, tokens in events
            ],
        )
        assert result.as_dict()["recorded"] == len(events)
        row = MonthlyUsage.objects.get(user=ava)
        return (
            (row.inference_tokens, row.inference_events, row.inference_last_day),
            (row.embedding_tokens, row.embedding_events, row.embedding_last_day),
            (row.tokens, row.events, row.last_day),
        )

    july = dt.date(2026, 7, 1)
    assert record(("chat", 3, 100), ("chat", 5, 10)) == (
        (110, 2, july.replace(day=5)),
        (0, 0, None),
        (110, 2, july.replace(day=5)),
    )
    # Embedding only: inference's last day stays; embedding's is its own.
    assert record(("embed", 4, 7)) == (
        (110, 2, july.replace(day=5)),
        (7, 1, july.replace(day=4)),
        (117, 3, july.replace(day=5)),
    )
    # An earlier inference day: no last day moves back.
    assert record(("chat", 2, 1)) == (
        (111, 3, july.replace(day=5)),
        (7, 1, july.replace(day=4)),
        (118, 4, july.replace(day=5)),
    )
    # A later embedding day moves embedding's and the total's.
    assert record(("embed", 9, 2)) == (
        (111, 3, july.replace(day=5)),
        (9, 2, july.replace(day=9)),
        (120, 5, july.replace(day=9)),
    )
    assert MonthlyUsage.objects.count() == 1
    assert check_ledger() == []
