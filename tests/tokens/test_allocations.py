"""The pool rules (docs/product.md, Tokens: pool, limits and minimum), through the
services."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import AuditEvent
from tests.factories import AdminFactory, UserFactory, fund, give
from tests.kit import limit
from tokens import selectors
from tokens.ledger import check_ledger
from tokens.models import AllocationChange, Purchase
from tokens.services import (
    allocation_set_limit,
    allocations_bulk_set_limit,
    purchase_record,
    user_ban,
    user_deactivate,
    user_reactivate,
    user_unban,
    users_set_banned,
    users_set_paid,
)
from tokens.services.distribution import override_set, policy_update

pytestmark = pytest.mark.django_db


# --- purchases and the pool ----------------------------------------------------------


def test_purchase_counts_toward_pool_in_its_months_only(org):
    today = timezone.now().date()
    this_month = today.replace(day=1)
    next_month = (this_month + dt.timedelta(days=32)).replace(day=1)
    fund(org, inference=4_000_000, embedding=2_000_000)
    purchase_record(
        actor=None,
        organization=org,
        payer_email="b@x.com",
        inference_tokens=2_000_000,
        embedding_tokens=0,
        starts_on=next_month,
    )
    purchase_record(
        actor=None,
        organization=org,
        payer_email="b@x.com",
        inference_tokens=2_000_000,
        embedding_tokens=0,
        starts_on=this_month - dt.timedelta(days=60),
        expires_on=this_month - dt.timedelta(days=1),
    )
    assert selectors.pools(org) == {"inference": 4_000_000, "embedding": 2_000_000}
    assert selectors.pools(org, next_month)["inference"] == 6_000_000


def test_purchase_must_be_in_lots_and_is_audited(org, superuser):
    with pytest.raises(ValidationError) as error:
        purchase_record(
            actor=superuser,
            organization=org,
            payer_email="b@x.com",
            inference_tokens=1_000_000,
            embedding_tokens=0,
        )
    assert "lots of 2,000,000" in str(error.value)
    assert not Purchase.objects.exists()
    fund(org, actor=superuser)
    event = AuditEvent.objects.get(action=AuditEvent.Action.PURCHASE_RECORDED)
    assert event.actor == superuser
    assert event.after["inference_tokens"] == 10_000_000


# --- limits -------------------------------------------------------------------------


def test_set_limit_within_pool_writes_change_and_one_audit_event(org, admin_user):
    fund(org)
    user = UserFactory(organization=org)
    change = allocation_set_limit(
        actor=admin_user, user=user, token_type="inference", limit=300_000
    )
    assert limit(user) == 300_000
    assert change.delta == 300_000
    assert change.source == "manual"
    event = AuditEvent.objects.get(action=AuditEvent.Action.LIMIT_CHANGED)
    assert change.audit_event == event
    assert event.actor == admin_user
    assert event.before == {"inference_limit": 0}
    assert event.after == {"inference_limit": 300_000}
    assert event.organization == org


def test_set_limit_over_unallocated_is_refused_with_the_amount(org, admin_user):
    fund(org, inference=2_000_000)
    a, b = UserFactory(organization=org), UserFactory(organization=org)
    give(a, 1_500_000)
    with pytest.raises(ValidationError) as error:
        allocation_set_limit(
            actor=admin_user, user=b, token_type="inference", limit=600_000
        )
    assert "only 500,000 are unallocated" in error.value.messages[0]
    assert limit(b) == 0
    assert AllocationChange.objects.filter(user=b).count() == 0
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.LIMIT_CHANGED, target_id=str(b.pk)
    ).exists()


def test_lowering_a_limit_is_always_allowed_and_frees_the_pool(org, admin_user):
    fund(org, inference=2_000_000)
    user = UserFactory(organization=org)
    give(user, 2_000_000)
    allocation_set_limit(
        actor=admin_user, user=user, token_type="inference", limit=500_000
    )
    assert selectors.org_summary(org)["inference"].unallocated == 1_500_000


def test_set_limit_below_minimum_for_paid_user_needs_explicit_confirmation(
    org, admin_user
):
    fund(org)
    user = UserFactory(organization=org)
    with pytest.raises(ValidationError) as error:
        allocation_set_limit(
            actor=admin_user, user=user, token_type="inference", limit=199_999
        )
    assert "at least 200,000" in error.value.messages[0]
    allocation_set_limit(
        actor=admin_user,
        user=user,
        token_type="inference",
        limit=199_999,
        allow_below_minimum=True,
    )
    assert limit(user) == 199_999


@pytest.mark.parametrize("bad", [-1, "100", 1.5, None, True])
def test_set_limit_refuses_non_integers_and_negatives(org, admin_user, bad):
    fund(org)
    user = UserFactory(organization=org)
    with pytest.raises(ValidationError):
        allocation_set_limit(
            actor=admin_user,
            user=user,
            token_type="inference",
            limit=bad,
            allow_below_minimum=True,
        )
    assert not AllocationChange.objects.exists()


def test_admin_of_another_org_cannot_set_limits(org, other_admin_user):
    fund(org)
    user = UserFactory(organization=org)
    with pytest.raises(PermissionDenied):
        allocation_set_limit(
            actor=other_admin_user, user=user, token_type="inference", limit=300_000
        )


def test_setting_the_same_limit_changes_nothing(org, admin_user):
    fund(org)
    user = UserFactory(organization=org)
    give(user, 300_000)
    assert (
        allocation_set_limit(
            actor=admin_user, user=user, token_type="inference", limit=300_000
        )
        is None
    )
    assert AllocationChange.objects.filter(user=user).count() == 1


# --- deactivation, reactivation, ban -------------------------------------------------


def test_deactivate_drops_limits_to_1000_and_returns_the_rest(org, admin_user):
    fund(org)
    user = UserFactory(organization=org)
    give(user, 800_000)
    give(user, 300_000, "embedding")
    user_deactivate(actor=admin_user, user=user)
    changes = list(AllocationChange.objects.filter(user=user, source="deactivation"))
    user.refresh_from_db()
    assert not user.is_paid
    assert (limit(user), limit(user, "embedding")) == (1_000, 1_000)
    assert {c.source for c in changes} == {"deactivation"}
    events = AuditEvent.objects.filter(action=AuditEvent.Action.USER_PAID_CHANGED)
    assert events.count() == 1
    assert events.get().after == {
        "is_paid": False,
        "inference_limit": 1_000,
        "embedding_limit": 1_000,
    }
    assert all(c.audit_event == events.get() for c in changes)
    assert selectors.org_summary(org)["inference"].allocated == 1_000


def test_reactivate_restores_the_minimum_as_the_pool_allows(org, admin_user):
    fund(org, inference=2_000_000, embedding=2_000_000)
    user = UserFactory(organization=org)
    give(user, 500_000)
    user_deactivate(actor=admin_user, user=user)
    filler = UserFactory(organization=org)
    give(filler, 1_899_000)  # leaves 100,000 inference unallocated
    user_reactivate(actor=admin_user, user=user)
    user.refresh_from_db()
    assert user.is_paid
    assert limit(user) == 101_000  # 1,000 + what was left
    # No saved policy: the Standard floor of 500,000 is granted where the pool can.
    assert limit(user, "embedding") == 500_000
    event = AuditEvent.objects.filter(
        action=AuditEvent.Action.USER_PAID_CHANGED
    ).first()
    assert "399,000 inference tokens short of the floor" in event.message


@pytest.mark.parametrize(
    ("policy_floor", "override_floor", "expected"),
    [
        (200_000, None, 200_000),  # Conservative-like policy: the minimum
        (300_000, None, 300_000),  # the policy's floor, above the minimum
        (300_000, 450_000, 450_000),  # the user's own floor wins
    ],
)
def test_reactivation_grants_the_floor_not_just_the_minimum(
    org, admin_user, policy_floor, override_floor, expected
):
    """Defect: reactivation reset the limit to the platform minimum whatever the
    organization's floor policy (it granted 200,000 in every case here)."""
    fund(org, inference=4_000_000, embedding=4_000_000)
    user = UserFactory(organization=org)
    give(user, 600_000)
    user_deactivate(actor=admin_user, user=user)
    policy_update(
        actor=admin_user,
        organization=org,
        changes={"floor_inference": policy_floor, "floor_embedding": policy_floor},
    )
    if override_floor is not None:
        override_set(
            actor=admin_user,
            organization=org,
            user=user,
            floor=override_floor,
            ceiling=None,
            exempt_auto_increase=False,
            exempt_reclamation=False,
        )
    user_reactivate(actor=admin_user, user=user)
    assert (limit(user), limit(user, "embedding")) == (expected, expected)
    assert check_ledger() == []


def test_deactivating_twice_is_refused(org, admin_user):
    fund(org)
    user = UserFactory(organization=org)
    user_deactivate(actor=admin_user, user=user)
    with pytest.raises(ValidationError, match="already deactivated"):
        user_deactivate(actor=admin_user, user=user)


def test_ban_and_unban_are_audited_and_not_self(org, admin_user):
    user = UserFactory(organization=org)
    user_ban(actor=admin_user, user=user)
    user.refresh_from_db()
    assert user.is_banned
    user_unban(actor=admin_user, user=user)
    assert (
        AuditEvent.objects.filter(
            action__in=[AuditEvent.Action.USER_BANNED, AuditEvent.Action.USER_UNBANNED]
        ).count()
        == 2
    )
    with pytest.raises(ValidationError, match="yourself"):
        user_ban(actor=admin_user, user=admin_user)


def test_org_summary_numbers(org):
    fund(org, inference=4_000_000, embedding=2_000_000)
    give(AdminFactory(organization=org), 1_000_000)
    summary = selectors.org_summary(org)["inference"]
    assert (summary.pool, summary.allocated, summary.unallocated) == (
        4_000_000,
        1_000_000,
        3_000_000,
    )


# --- bulk ---------------------------------------------------------------------------


def test_bulk_limit_refused_whole_when_pool_too_small(org, admin_user):
    fund(org, inference=2_000_000)
    users = [UserFactory(organization=org) for _ in range(3)]
    give(users[0], 500_000)
    with pytest.raises(ValidationError) as error:
        allocations_bulk_set_limit(
            actor=admin_user,
            organization=org,
            users=users,
            token_type="inference",
            limit=800_000,
        )
    # needs 300,000 + 800,000 × 2 = 1,900,000; 1,500,000 unallocated → 400,000 short
    assert "400,000 short" in error.value.messages[0]
    assert [limit(u) for u in users] == [500_000, 0, 0]
    assert AllocationChange.objects.filter(source="bulk").count() == 0


def test_bulk_limit_one_audit_event_per_user(org, admin_user):
    fund(org, inference=4_000_000)
    users = [UserFactory(organization=org) for _ in range(3)]
    changes = allocations_bulk_set_limit(
        actor=admin_user,
        organization=org,
        users=users,
        token_type="inference",
        limit=1_000_000,
    )
    assert len(changes) == 3
    events = AuditEvent.objects.filter(action=AuditEvent.Action.LIMIT_CHANGED)
    assert events.count() == 3
    assert {e.target_id for e in events} == {str(u.pk) for u in users}


def test_bulk_refuses_users_of_another_org(org, other_org, admin_user):
    fund(org)
    stranger = UserFactory(organization=other_org)
    with pytest.raises(ValidationError, match="not in this organization"):
        users_set_banned(
            actor=admin_user, organization=org, users=[stranger], banned=True
        )
    stranger.refresh_from_db()
    assert not stranger.is_banned


def test_bulk_paid_on_refused_whole_when_minimum_not_covered(org, admin_user):
    fund(org, inference=2_000_000, embedding=2_000_000)
    users = [UserFactory(organization=org) for _ in range(3)]
    users_set_paid(actor=admin_user, organization=org, users=users, paid=False)
    give(UserFactory(organization=org), 1_700_000)  # 297,000 inference left
    with pytest.raises(ValidationError, match="more are needed"):
        users_set_paid(actor=admin_user, organization=org, users=users, paid=True)
    assert not any(
        u.is_paid for u in type(users[0]).objects.filter(pk__in=[u.pk for u in users])
    )


def test_bulk_paid_off_skips_users_already_unpaid(org, admin_user):
    fund(org)
    a, b = UserFactory(organization=org), UserFactory(organization=org, is_paid=False)
    changed = users_set_paid(
        actor=admin_user, organization=org, users=[a, b], paid=False
    )
    assert changed == [a]
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.USER_PAID_CHANGED).count()
        == 1
    )
