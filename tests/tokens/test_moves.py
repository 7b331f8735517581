"""A user who moves between organizations mid-month (issue 14, defect 3): usage is
charged to the organization that authorized it (the hold's), else to the user's
organization when it is recorded; each organization has its own counter of the
user, so B's "used", B's limit and auto-increase in B see only B-era usage."""

from unittest import mock

import pytest
from django.db import connection

from analytics.selectors import StatsPeriod, kpis
from tests.conftest import sign_in
from tests.tenant_world import (
    A_EMBEDDING,
    A_HELD,
    A_NOVEMBER,
    B_NOVEMBER,
    NOW,
    build_moved_user,
)
from tokens import selectors
from tokens.ledger import check_ledger
from tokens.models import AllocationChange, UsageCounter, UsageEvent
from tokens.services import allocation_set_limit
from tokens.services.distribution import policy_ensure

NOVEMBER = NOW.date().replace(day=1)


@pytest.fixture
def moved(db):
    return build_moved_user()


@pytest.fixture
def at_now():
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        yield


def _counter(org, user, token_type="inference"):
    return UsageCounter.objects.filter(
        organization=org, user=user, token_type=token_type, period=NOVEMBER
    ).values_list("used", "held")


def test_each_organization_counts_only_its_own_usage_of_a_user_who_moved(moved, at_now):
    a, b, mover = moved.a, moved.b, moved.mover
    # A keeps A-era usage and the hold its gateway opened; B starts afresh.
    assert list(_counter(a, mover)) == [(A_NOVEMBER, A_HELD)]
    assert list(_counter(b, mover)) == [(B_NOVEMBER, 0)]
    assert list(_counter(b, mover, "embedding")) == []
    summary_a, summary_b = selectors.org_summary(a), selectors.org_summary(b)
    assert (summary_a["inference"].used, summary_a["inference"].held) == (
        A_NOVEMBER,
        A_HELD,
    )
    assert summary_a["embedding"].used == A_EMBEDDING
    assert (summary_b["inference"].used, summary_b["embedding"].used) == (
        B_NOVEMBER,
        0,
    )
    # Every figure of B agrees: statistics, balance API, authorize's remaining.
    month = StatsPeriod(NOVEMBER, NOVEMBER.replace(day=30))
    assert kpis(b, month).used.by_type == {"inference": B_NOVEMBER, "embedding": 0}
    balance = moved.gateway.get(
        "/api/v1/balance", {"user": moved.mover.email, "token_type": "inference"}
    ).json()
    assert (balance["limit"], balance["used"], balance["held"]) == (
        200_000,
        B_NOVEMBER,
        0,
    )
    assert balance["remaining"] == 200_000 - B_NOVEMBER
    hold = moved.gateway.post(
        "/api/v1/authorize",
        {
            "user": mover.email,
            "model": "gpt-4o",
            "token_type": "inference",
            "tokens": 1_000,
            "request_id": "b-hold",
        },
    ).json()
    assert hold["remaining"] == 200_000 - B_NOVEMBER - 1_000
    assert f"{B_NOVEMBER:,}" in sign_in(mover).get("/me/").content.decode()
    assert check_ledger() == []
    # Each organization's ledger on its own too (A's changes of the user who left
    # add up to 0; the allocation row is B's).
    assert check_ledger(organization=a) == []
    assert check_ledger(organization=b) == []


def test_a_hold_opened_before_the_move_is_charged_to_the_organization_that_opened_it(
    moved, at_now
):
    hold = (
        moved.gateway.post(
            "/api/v1/authorize",
            {
                "user": moved.mover.email,
                "model": "gpt-4o",
                "token_type": "inference",
                "tokens": A_HELD,
                "request_id": "a-open-hold",
            },
        )
        .json()
        .get("hold_id")
    )
    assert hold, "the same request_id returns A's hold"
    body = moved.gateway.post(
        "/api/v1/usage",
        {
            "events": [
                {
                    "event_id": "settles-a-hold",
                    "user": moved.mover.email,
                    "model": "gpt-4o",
                    "token_type": "inference",
                    "prompt_tokens": 500,
                    "occurred_at": "2026-11-15T11:00:00Z",
                    "hold_id": hold,
                }
            ]
        },
    ).json()
    assert body["recorded"] == 1, body
    assert UsageEvent.objects.get(event_id="settles-a-hold").organization == moved.a
    assert list(_counter(moved.a, moved.mover)) == [(A_NOVEMBER + 500, 0)]
    assert list(_counter(moved.b, moved.mover)) == [(B_NOVEMBER, 0)]
    assert check_ledger() == []


def test_auto_increase_in_the_new_organization_ignores_usage_in_the_old_one(db):
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        moved = build_moved_user()
        policy_ensure(organization=moved.b)  # Standard: triggers at 80% and 95%
        # A limit in B that A-era usage alone (62,917) would take past 80%.
        allocation_set_limit(
            actor=moved.b_admin,
            user=moved.mover,
            token_type="inference",
            limit=70_000,
            allow_below_minimum=True,
        )

        def use(event_id: str, tokens: int) -> None:
            body = moved.gateway.post(
                "/api/v1/usage",
                {
                    "events": [
                        {
                            "event_id": event_id,
                            "user": moved.mover.email,
                            "model": "gpt-4o",
                            "token_type": "inference",
                            "prompt_tokens": tokens,
                            "occurred_at": "2026-11-15T11:00:00Z",
                        }
                    ]
                },
            ).json()
            assert body["recorded"] == 1, body

        def increases() -> int:
            return AllocationChange.objects.filter(
                organization=moved.b,
                user=moved.mover,
                source=AllocationChange.Source.AUTO_INCREASE,
            ).count()

        # A-era usage plus this is past 80% of 70,000; B's own (1,234 + 100) is not.
        use("b-small", 100)
        assert increases() == 0
        # B's own usage reaching 80% of B's limit does fire.
        use("b-big", 56_000 - B_NOVEMBER - 100)
        assert increases() == 1
    assert check_ledger() == []


def test_check_ledger_catches_usage_charged_to_the_organization_the_user_left(
    moved,
):
    """The old mis-attribution, planted with raw SQL: B-era usage added to A's
    counter, B's counter gone. Per user the sums still agree; per organization
    both counters are wrong."""
    table = UsageCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET used = used + %s WHERE organization_id = %s "  # noqa: S608
            "AND user_id = %s AND token_type = 'inference' AND period = %s",
            [B_NOVEMBER, moved.a.pk, moved.mover.pk, NOVEMBER],
        )
        cursor.execute(
            f"DELETE FROM {table} WHERE organization_id = %s AND user_id = %s",  # noqa: S608
            [moved.b.pk, moved.mover.pk],
        )
    violations = check_ledger()
    assert violations == [
        "Invariant 3 (used = sum of usage events): mover@example.com, inference, "
        f"2026-11, Alpha Secret Org (id {moved.a.pk}): counter used "
        f"{A_NOVEMBER + B_NOVEMBER:,} but the events add up to {A_NOVEMBER:,}.",
        "Invariant 3 (used = sum of usage events): mover@example.com, inference, "
        f"2026-11, Beta (id {moved.b.pk}): usage events add up to {B_NOVEMBER:,} "
        "but there is no counter.",
    ]
    assert [v[:12] for v in check_ledger(organization=moved.b)] == ["Invariant 3 "]
