"""The auto-approval rule's per-user limits (issue 14, defect 11): one member filed 85
requests in a row and every one was approved, draining the pool. Now at most
``max_per_user_month`` tokens of a type per user and calendar month (UTC) and
``max_approvals_per_day`` approvals per user in any 24 hours are auto-approved; the
rest wait for an admin with a note naming the limit."""

import datetime as dt
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import AuditEvent
from tests.factories import fund, give
from tests.kit import limit
from tokens import selectors
from tokens.ledger import check_ledger
from tokens.models import AllocationChange, AutoApprovalRule, TokenRequest
from tokens.services.requests import (
    auto_approval_rule_update,
    token_request_deny,
    token_request_submit,
)

Action = AuditEvent.Action
LIST = reverse("tokens:request_list")
RULE = reverse("tokens:request_auto_approval")
START = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock():
    """``timezone.now()`` pinned (and moved by the test): no test depends on today."""
    pinned = Clock(START)
    with mock.patch("django.utils.timezone.now", side_effect=lambda: pinned.now):
        yield pinned


@pytest.fixture
def team(clock, org, admin_user, member):
    fund(org, inference=10_000_000, embedding=10_000_000)
    give(member, 300_000)
    give(member, 300_000, "embedding")
    return org


def rule(org, actor, **limits):
    return auto_approval_rule_update(
        actor=actor,
        organization=org,
        enabled=True,
        max_amount=100_000,
        max_consumption_percent=90,
        **limits,
    )


def submit(user, amount=100_000, token_type="inference"):
    return token_request_submit(
        user=user, token_type=token_type, amount=amount, reason="More work"
    )


def test_existing_rules_get_the_documented_defaults(org):
    saved = AutoApprovalRule.objects.create(organization=org, enabled=True)
    saved.refresh_from_db()
    assert (saved.max_per_user_month, saved.max_approvals_per_day) == (1_000_000, 3)


def test_85_requests_in_a_row_stop_at_the_monthly_limit(
    team, member, admin_user, clock
):
    rule(team, admin_user, max_per_user_month=500_000, max_approvals_per_day=1_000)
    before = selectors.org_summary(team)["inference"].unallocated
    outcomes = []
    for _ in range(85):
        clock.advance(minutes=10)
        try:
            outcomes.append(submit(member).status)
        except ValidationError as error:
            assert "already have a pending request" in " ".join(error.messages)
            outcomes.append("refused")
    assert outcomes[:6] == ["approved"] * 5 + ["pending"]
    assert set(outcomes[6:]) == {"refused"}
    held = TokenRequest.objects.get(status="pending")
    assert held.hold_note == (
        "Held for an admin: 500,000 inference tokens were already auto-approved for "
        "this user this month; with 100,000 more it would pass the rule's 500,000 a "
        "month."
    )
    assert limit(member) == 800_000
    after = selectors.org_summary(team)["inference"].unallocated
    assert before - after == 500_000
    submitted = AuditEvent.objects.filter(
        action=Action.REQUEST_SUBMITTED, target_id=str(held.pk)
    ).get()
    assert submitted.after["held_back"] == held.hold_note
    assert check_ledger() == []


def test_the_monthly_limit_counts_this_request_and_each_type_apart(
    team, member, admin_user
):
    rule(team, admin_user, max_per_user_month=150_000, max_approvals_per_day=1_000)
    assert submit(member, amount=100_000).status == "approved"
    # 100,000 + 60,000 would pass 150,000: held.
    assert submit(member, amount=60_000).status == "pending"
    # The embedding month is counted on its own.
    assert submit(member, amount=100_000, token_type="embedding").status == "approved"


def test_the_month_is_the_calendar_month_in_utc(team, member, admin_user, clock):
    rule(team, admin_user, max_per_user_month=100_000, max_approvals_per_day=1_000)
    clock.now = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC)
    assert submit(member).status == "approved"
    clock.now = dt.datetime(2026, 3, 31, 23, 59, tzinfo=dt.UTC)
    held = submit(member)
    assert held.status == "pending"
    token_request_deny(actor=admin_user, request=held)
    clock.now = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)
    fund(team, inference=10_000_000, embedding=10_000_000)  # April's pool
    assert submit(member).status == "approved"


def test_at_most_n_auto_approvals_per_user_in_any_24_hours(
    team, member, admin_user, clock
):
    rule(team, admin_user, max_per_user_month=10_000_000, max_approvals_per_day=3)
    for token_type in ["inference", "embedding", "inference"]:
        clock.advance(hours=1)
        assert submit(member, token_type=token_type).status == "approved"
    # The rate counts every type: the fourth in 24 hours waits for an admin.
    held = submit(member, token_type="embedding")
    assert held.status == "pending"
    assert held.hold_note == (
        "Held for an admin: 3 requests of this user were auto-approved in the last "
        "24 hours (the rule allows 3)."
    )
    token_request_deny(actor=admin_user, request=held)
    # 24 hours after the first approval, one slot is free again (rolling window).
    clock.now = START + dt.timedelta(hours=24, minutes=59)
    assert submit(member, token_type="embedding").status == "pending"
    token_request_deny(
        actor=admin_user,
        request=TokenRequest.objects.get(status="pending"),
    )
    clock.now = START + dt.timedelta(hours=25, seconds=1)
    assert submit(member, token_type="embedding").status == "approved"
    assert (
        TokenRequest.objects.filter(auto_approved=True, status="approved").count() == 4
    )


def test_held_requests_show_their_note_in_the_queue_and_the_card_the_limits(
    team, member, admin_user, admin_client
):
    rule(team, admin_user, max_per_user_month=100_000, max_approvals_per_day=2)
    submit(member)
    submit(member, amount=1_000)
    page = admin_client.get(LIST).content.decode()
    assert "Held for an admin: 100,000 inference tokens were already" in page
    assert (
        "per user at most 100,000 tokens of a type a month (UTC) and 2 approvals in "
        "24 hours" in page
    )


def test_each_limit_change_is_audited_once_with_only_what_changed(
    team, admin_user, admin_client
):
    rule(team, admin_user)
    post = {
        "enabled": "on",
        "max_amount": "100000",
        "max_consumption_percent": "90",
        "max_per_user_month": "1,000,000",
        "max_approvals_per_day": "3",
    }
    changes = AuditEvent.objects.filter(action=Action.AUTO_APPROVAL_CHANGED)
    count = changes.count()
    assert admin_client.post(RULE, post).status_code == 302  # unchanged
    assert changes.count() == count
    response = admin_client.post(RULE, {**post, "max_approvals_per_day": "5"})
    assert response.status_code == 302
    assert changes.count() == count + 1
    latest = changes.order_by("-pk").first()
    assert (latest.before, latest.after) == (
        {"max_approvals_per_day": 3},
        {"max_approvals_per_day": 5},
    )
    post["max_approvals_per_day"] = "5"
    response = admin_client.post(RULE, {**post, "max_per_user_month": "250000"})
    assert response.status_code == 302
    assert changes.count() == count + 2
    latest = changes.order_by("-pk").first()
    assert (latest.before, latest.after) == (
        {"max_per_user_month": 1_000_000},
        {"max_per_user_month": 250_000},
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_per_user_month", "0", "at least 1 token"),
        ("max_per_user_month", str(2**63), "more tokens than any pool holds"),
        ("max_per_user_month", "", "most tokens one user may get"),
        ("max_approvals_per_day", "0", "at least 1 auto-approval"),
        ("max_approvals_per_day", "1001", "at most 1000 auto-approvals"),
        ("max_approvals_per_day", "x", "whole number of approvals"),
        ("max_consumption_percent", "0", "at 0% no request could ever"),
    ],
)
def test_bad_limits_are_refused_with_a_message_and_nothing_saved(
    team, admin_user, admin_client, field, value, message
):
    rule(team, admin_user)
    post = {
        "enabled": "on",
        "max_amount": "100000",
        "max_consumption_percent": "90",
        "max_per_user_month": "1000000",
        "max_approvals_per_day": "3",
    }
    count = AuditEvent.objects.count()
    response = admin_client.post(RULE, {**post, field: value})
    assert response.status_code == 400
    assert any(message in e for e in response.context["rule_form"].errors[field])
    assert AuditEvent.objects.count() == count
    saved = AutoApprovalRule.objects.get(organization=team)
    assert (saved.max_per_user_month, saved.max_approvals_per_day) == (1_000_000, 3)


def test_the_service_refuses_bad_limits(team, admin_user):
    with pytest.raises(ValidationError) as caught:
        rule(team, admin_user, max_per_user_month=0, max_approvals_per_day=True)
    assert set(caught.value.message_dict) == {
        "max_per_user_month",
        "max_approvals_per_day",
    }
    assert not AllocationChange.objects.filter(source="request").exists()
