"""The ledger at month edges (docs/product.md, Months and edges): holds, late usage,
pools, purchases, over-allocation, auto-increase cooldowns, token requests and
retention, each at the last second of a month and the first second of the next, for a
plain month edge, 31 December → 1 January and 29 February → 1 March."""

import datetime as dt
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from asksage_admin.lib.periods import label, previous_period
from tests.conftest import sign_in
from tests.edges import (
    EDGES,
    INF,
    LOT,
    Edge,
    authorize,
    build,
    counter,
    report,
)
from tests.factories import AdminFactory, UserFactory, give
from tokens import selectors
from tokens.ledger import check_ledger
from tokens.models import (
    Allocation,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    TokenRequest,
    UsageCounter,
    UsageEvent,
)
from tokens.services import (
    allocation_set_limit,
    metering,
    purchase_record,
)
from tokens.services import distribution as engine
from tokens.services.pool import headroom
from tokens.services.requests import (
    auto_approval_rule_update,
    token_request_approve,
    token_request_submit,
)
from tokens.services.retention import activity_prune

pytestmark = pytest.mark.django_db


@pytest.fixture(params=EDGES)
def edge(request) -> Edge:
    return request.param


# --- holds and late usage ---------------------------------------------------------


@pytest.mark.parametrize("occurred", ["last second", "first second"])
def test_a_hold_opened_in_one_month_and_settled_in_the_next(
    edge, time_machine, occurred
):
    world = build(time_machine, edge)
    ann = world.ann
    time_machine.move_to(edge.last, tick=False)
    hold = authorize(world.key, ann, 4_000, "r1").hold
    assert hold.period == edge.old  # a hold belongs to the month it was opened in
    assert counter(ann, edge.old) == {"used": 0, "held": 4_000}

    time_machine.move_to(edge.first, tick=False)
    when = edge.last if occurred == "last second" else edge.first
    report(world.key, ann, 3_000, when, hold=hold)

    # The held tokens go back to the hold's month; the usage goes to the month of
    # occurred_at, whichever that is.
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.SETTLED
    used_old, used_new = (3_000, None) if when == edge.last else (0, 3_000)
    assert counter(ann, edge.old) == {"used": used_old, "held": 0}
    assert counter(ann, edge.new) == (
        None if used_new is None else {"used": used_new, "held": 0}
    )
    assert list(DailyUsage.objects.values_list("day", "tokens")) == [
        (when.date(), 3_000)
    ]
    assert list(OrgDailyUsage.objects.values_list("day", "tokens")) == [
        (when.date(), 3_000)
    ]
    assert list(MonthlyUsage.objects.values_list("month", "tokens")) == [
        (when.date().replace(day=1), 3_000)
    ]
    balance = metering.balance(key=world.key, user_email=ann.email, token_type=INF)
    assert balance["period"] == label(edge.new)
    assert (balance["used"], balance["held"]) == (used_new or 0, 0)
    assert balance["remaining"] == 1_000_000 - (used_new or 0)
    assert check_ledger() == []


def test_a_hold_left_open_at_the_edge_does_not_reduce_the_next_month(
    edge, time_machine
):
    world = build(time_machine, edge)
    ann = world.ann
    time_machine.move_to(edge.last, tick=False)
    first = authorize(world.key, ann, 600_000, "r1").hold
    second = authorize(world.key, ann, 400_000, "r2")
    assert second.remaining == 0  # the old month is fully held

    # A second later the new month's whole limit is available: its counter is
    # created on demand by the first authorization of the month.
    time_machine.move_to(edge.first, tick=False)
    assert counter(ann, edge.new) is None
    fresh = authorize(world.key, ann, 1_000_000, "r3")
    assert (fresh.hold.period, fresh.remaining) == (edge.new, 0)
    assert counter(ann, edge.new) == {"used": 0, "held": 1_000_000}

    # Released or expired in the new month, old holds give back the old month's.
    assert metering.hold_release(key=world.key, hold_id=first.pk) == 600_000
    assert counter(ann, edge.old) == {"used": 0, "held": 400_000}
    time_machine.move_to(
        edge.last + dt.timedelta(seconds=settings.HOLD_TTL_SECONDS), tick=False
    )
    assert metering.holds_expire() == 1
    assert counter(ann, edge.old) == {"used": 0, "held": 0}
    assert counter(ann, edge.new) == {"used": 0, "held": 1_000_000}
    assert check_ledger() == []


def test_usage_of_the_old_month_reported_after_the_edge_stays_in_the_old_month(
    edge, time_machine
):
    world = build(time_machine, edge)
    org, ann = world.org, world.ann
    # Auto-increase on at 80%: the late usage must not fire it in the new month.
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={"triggers": [80], "bump_mode": "flat", "bump_value": 500_000},
    )
    time_machine.move_to(edge.last, tick=False)
    report(world.key, ann, 100_000, edge.last)

    time_machine.move_to(edge.first, tick=False)
    report(world.key, ann, 850_000, edge.last - dt.timedelta(seconds=10))

    assert counter(ann, edge.old) == {"used": 950_000, "held": 0}
    assert counter(ann, edge.new) is None
    assert set(DailyUsage.objects.values_list("day", flat=True)) == {edge.last.date()}
    assert list(MonthlyUsage.objects.values_list("month", "tokens")) == [
        (edge.old, 950_000)
    ]
    # 95% of the old month: no auto-increase, the limit is the new month's too.
    assert Allocation.objects.get(user=ann, token_type=INF).limit == 1_000_000
    # The balance, the org summary and the pages speak of the new month.
    balance = metering.balance(key=world.key, user_email=ann.email, token_type=INF)
    assert (balance["period"], balance["used"], balance["remaining"]) == (
        label(edge.new),
        0,
        1_000_000,
    )
    assert selectors.org_summary(org)[INF].used == 0
    assert selectors.org_summary(org, edge.old)[INF].used == 950_000
    row = selectors.users_for_panel(org).get(pk=ann.pk)
    assert (row.monthly_inference, row.prev_month_inference) == (0, 950_000)
    response = sign_in(ann).get("/me/")
    assert response.context["period"] == edge.new
    (inference,) = [
        b["balance"] for b in response.context["balances"] if b["label"] == "Inference"
    ]
    assert (inference.used, inference.held, inference.limit) == (0, 0, 1_000_000)
    assert check_ledger() == []


# --- pools, purchases, limits -----------------------------------------------------


def test_a_purchase_counts_from_its_start_month_through_its_expiry_month(
    edge, time_machine
):
    world = build(time_machine, edge, expiring=LOT)  # + one lasting LOT
    for lots, starts_on, expires_on in (
        (3, edge.new, None),  # starts on the 1st
        (1, edge.new.replace(day=15), None),  # mid-month: counts for the whole month
        (1, edge.old, edge.new),  # expires on the 1st: counts for that whole month
    ):
        purchase_record(
            actor=None,
            organization=world.org,
            payer_email="billing@acme.example",
            inference_tokens=lots * LOT,
            embedding_tokens=lots * LOT,
            starts_on=starts_on,
            expires_on=expires_on,
        )
    time_machine.move_to(edge.last, tick=False)
    assert selectors.pools(world.org) == {"inference": 3 * LOT, "embedding": 3 * LOT}
    time_machine.move_to(edge.first, tick=False)
    assert selectors.pools(world.org) == {"inference": 6 * LOT, "embedding": 6 * LOT}
    # A month's pool does not depend on when it is asked for.
    assert selectors.pools(world.org, edge.old)[INF] == 3 * LOT
    assert selectors.pools(world.org, previous_period(edge.old))[INF] == 0


def test_when_a_purchase_ends_the_next_month_is_over_allocated_until_limits_drop(
    edge, time_machine
):
    world = build(time_machine, edge, expiring=LOT)
    org, ann = world.org, world.ann
    bob = UserFactory(organization=org, email="bob@acme.example")
    give(bob, 2_000_000)  # allocated 3,000,000 of 4,000,000
    time_machine.move_to(edge.last, tick=False)
    assert selectors.org_summary(org)[INF].unallocated == 1_000_000
    assert check_ledger() == []

    time_machine.move_to(edge.first, tick=False)
    summary = selectors.org_summary(org)[INF]
    assert (summary.pool, summary.allocated) == (LOT, 3_000_000)
    # Shown as 0 unallocated; the kernel's headroom is 1,000,000 below zero.
    assert (summary.unallocated, headroom(org, INF)) == (0, -1_000_000)
    # The ledger reports it (an admin must lower limits), naming the month.
    assert any(
        f"inference in {label(edge.new)}: allocated 3,000,000 exceeds the pool of "
        "2,000,000" in line
        for line in check_ledger()
    )
    # Nothing may be raised, not even by auto-increase, until limits are lowered.
    admin = AdminFactory(organization=org, email="admin@acme.example")
    with pytest.raises(ValidationError, match="only 0 are unallocated"):
        allocation_set_limit(actor=admin, user=ann, token_type=INF, limit=1_000_001)
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={"triggers": [80], "bump_mode": "flat", "bump_value": 500_000},
    )
    report(world.key, ann, 900_000, edge.first)
    assert Allocation.objects.get(user=ann, token_type=INF).limit == 1_000_000
    # A distribution run finds no pool to raise floors from (the shortfall is
    # reported, nothing is taken from anyone).
    carl = UserFactory(organization=org, email="carl@acme.example")
    give(carl, 0)
    engine.distribution_run(actor=admin, organization=org, distribute_equally=True)
    assert Allocation.objects.get(user=carl, token_type=INF).limit == 0
    assert Allocation.objects.get(user=bob, token_type=INF).limit == 2_000_000
    allocation_set_limit(
        actor=admin, user=bob, token_type=INF, limit=1_000_000, allow_below_minimum=True
    )
    assert [line for line in check_ledger() if "inference in" in line] == []


# --- auto-increase ----------------------------------------------------------------


def test_an_auto_increase_cooldown_runs_on_across_the_edge(edge, time_machine):
    world = build(time_machine, edge)
    org, ann = world.org, world.ann
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={
            "triggers": [80],
            "bump_mode": "percent_current",
            "bump_value": 25,
            "ceiling": None,
            "cooldown_minutes": 60,
        },
    )
    fired_at = edge.last - dt.timedelta(minutes=30)

    def limit() -> int:
        return Allocation.objects.get(user=ann, token_type=INF).limit

    time_machine.move_to(fired_at, tick=False)
    report(world.key, ann, 800_000, fired_at)
    assert limit() == 1_250_000
    # The new month starts at 0 used; 80% of the new limit 30 minutes after the
    # increase is the same tier within the cooldown: no second increase.
    time_machine.move_to(edge.first, tick=False)
    report(world.key, ann, 1_000_000, edge.first)
    assert counter(ann, edge.new)["used"] == 1_000_000
    assert limit() == 1_250_000
    time_machine.move_to(fired_at + dt.timedelta(minutes=60), tick=False)
    report(world.key, ann, 1, fired_at + dt.timedelta(minutes=60))
    assert limit() == 1_562_500
    assert check_ledger() == []


# --- token requests and auto-approval ---------------------------------------------


def test_a_request_made_in_one_month_is_decided_against_the_next_months_pool(
    edge, time_machine
):
    world = build(time_machine, edge, expiring=LOT)
    org, ann = world.org, world.ann
    admin = AdminFactory(organization=org, email="admin@acme.example")
    bob = UserFactory(organization=org, email="bob@acme.example")
    give(bob, 1_000_000)
    time_machine.move_to(edge.last, tick=False)
    asked = token_request_submit(
        user=ann, token_type=INF, amount=1_500_000, reason="Year-end report"
    )
    small = token_request_submit(
        user=bob, token_type=INF, amount=500_000, reason="Month-end batch"
    )
    assert asked.created_at == edge.last

    # The old month's 4,000,000 would have covered both; the new month's pool is
    # 2,000,000, all allocated: approvals are refused with the unallocated amount.
    time_machine.move_to(edge.first, tick=False)
    with pytest.raises(ValidationError, match="only 0 are unallocated"):
        token_request_approve(actor=admin, request=asked, amount=1_500_000)
    assert TokenRequest.objects.get(pk=asked.pk).status == "pending"
    allocation_set_limit(
        actor=admin, user=ann, token_type=INF, limit=200_000, allow_below_minimum=True
    )
    approved = token_request_approve(actor=admin, request=small, amount=500_000)
    assert (approved.status, approved.decided_at) == ("approved", edge.first)
    assert Allocation.objects.get(user=bob, token_type=INF).limit == 1_500_000
    assert check_ledger() == []


def test_auto_approval_reads_the_new_months_consumption_right_after_the_edge(
    edge, time_machine
):
    world = build(time_machine, edge, lasting=2 * LOT)
    org, ann = world.org, world.ann
    admin = AdminFactory(organization=org, email="admin@acme.example")
    bob = UserFactory(organization=org, email="bob@acme.example")
    give(bob, 1_000_000)
    auto_approval_rule_update(
        actor=admin,
        organization=org,
        enabled=True,
        max_amount=100_000,
        max_consumption_percent=50,
    )
    time_machine.move_to(edge.last, tick=False)
    report(world.key, ann, 2_200_000, edge.last)  # 55% of the 4,000,000 pool
    before = token_request_submit(user=ann, token_type=INF, amount=100_000, reason="a")
    assert before.status == "pending"

    # One second later: the new month has consumed nothing, and late usage of the
    # old month reported now is still the old month's.
    time_machine.move_to(edge.first, tick=False)
    report(world.key, bob, 900_000, edge.last)
    after = token_request_submit(user=bob, token_type=INF, amount=100_000, reason="b")
    assert after.status == "approved"
    assert Allocation.objects.get(user=bob, token_type=INF).limit == 1_100_000
    assert check_ledger() == []


# --- retention --------------------------------------------------------------------


@pytest.mark.parametrize("cutoff_at", ["first second", "last second"])
def test_retention_prunes_usage_by_whole_months(edge, time_machine, cutoff_at):
    world = build(time_machine, edge)
    ann = world.ann
    before_old = edge.old - dt.timedelta(days=1)
    moments = [
        dt.datetime.combine(before_old, dt.time(23, 59, 59), tzinfo=dt.UTC),
        dt.datetime.combine(edge.old, dt.time(0, 0, 0), tzinfo=dt.UTC),
        edge.last,
        edge.first,
    ]
    for moment in moments:
        time_machine.move_to(moment, tick=False)
        report(world.key, ann, 1_000, moment)
    cutoff = edge.first if cutoff_at == "first second" else edge.last
    days = 1095
    time_machine.move_to(cutoff + dt.timedelta(days=days), tick=False)
    counts = activity_prune(older_than_days=days)

    # Usage goes by whole months: everything before the month of the cutoff.
    kept_from = edge.new if cutoff_at == "first second" else edge.old
    kept = [m for m in moments if m.date() >= kept_from]
    assert sorted(UsageEvent.objects.values_list("occurred_at", flat=True)) == kept
    assert counts["usage_events"] == len(moments) - len(kept)
    assert set(UsageCounter.objects.values_list("period", flat=True)) == {
        m.date().replace(day=1) for m in kept
    }
    assert set(MonthlyUsage.objects.values_list("month", flat=True)) == {
        m.date().replace(day=1) for m in kept
    }
    assert set(DailyUsage.objects.values_list("day", flat=True)) == {
        m.date() for m in kept
    }
    assert check_ledger() == []


def test_a_usage_batch_is_one_instant_even_when_the_clock_crosses_the_edge(
    edge, time_machine
):
    """The batch began at the last second: its events are the old month's, and so
    is the auto-increase they trigger, although the clock has passed the edge by
    the time the increase is looked at (it once read the clock again, found the
    new month, and skipped every increase of the batch)."""
    world = build(time_machine, edge)
    engine.policy_ensure(organization=world.org)
    engine.policy_update(
        actor=None,
        organization=world.org,
        changes={"triggers": [80], "bump_mode": "flat", "bump_value": 500_000},
    )
    time_machine.move_to(edge.last, tick=False)
    hold = authorize(world.key, world.ann, 1_000, "r1").hold
    readings = iter([edge.last])

    def clock():
        return next(readings, edge.first)  # the first reading, then past the edge

    with mock.patch("django.utils.timezone.now", side_effect=clock):
        report(world.key, world.ann, 850_000, edge.last, hold=hold)
    assert Hold.objects.get(pk=hold.pk).closed_at == edge.last
    allocation = Allocation.objects.get(user=world.ann, token_type=INF)
    assert allocation.limit == 1_500_000
    assert allocation.last_auto_increase_at == edge.last
    assert check_ledger() == []
