"""Budgets that hold under concurrency (docs/architecture.md, Concurrency and locks).
Real threads on PostgreSQL; SQLite serializes writers, so these tests skip there."""

import random

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.services import service_key_create
from tests.factories import (
    AdminFactory,
    AIModelFactory,
    OrganizationFactory,
    UserFactory,
    fund,
    give,
)
from tests.kit import RACE_MARKS, run_threads
from tokens.ledger import check_ledger
from tokens.models import Allocation, Hold, TokenRequest, UsageCounter, UsageEvent
from tokens.services import allocation_set_limit, metering
from tokens.services.requests import auto_approval_rule_update, token_request_submit

pytestmark = RACE_MARKS


@pytest.fixture
def setup():
    org = OrganizationFactory()
    fund(org)
    user = UserFactory(organization=org, email="hot@acme.example")
    AIModelFactory(key="gpt")
    key, _secret = service_key_create(actor=None, name="gw")
    return org, user, key


def test_32_clients_x_50_authorizations_never_overspend(setup):
    _org, user, key = setup
    give(user, 100_000)

    def client(i):
        rng = random.Random(i)
        granted = []
        for n in range(50):
            tokens = rng.randint(1, 400)
            try:
                hold = metering.authorize(
                    key=key,
                    user_email=user.email,
                    model_key="gpt",
                    token_type="inference",
                    tokens=tokens,
                    request_id=f"c{i}-{n}",
                )
                granted.append(hold.hold.tokens)
            except metering.MeteringError as refusal:
                assert refusal.code == "insufficient_tokens"
        return granted

    granted = [t for per_client in run_threads(32, client) for t in per_client]
    counter = UsageCounter.objects.get(user=user, token_type="inference")
    assert sum(granted) <= 100_000
    assert counter.held == sum(granted), "no grant lost or double counted"
    assert Hold.objects.filter(user=user).count() == len(granted)
    # Random sizes of 1–400 over 1,600 tries exhaust the budget almost exactly.
    assert 100_000 - sum(granted) < 400
    assert check_ledger() == []


def test_same_1000_events_twice_from_8_threads_recorded_once(setup):
    _org, user, key = setup
    give(user, 10_000_000)
    when = timezone.now().replace(microsecond=0).isoformat()
    events = [
        {
            "event_id": f"ev-{i}",
            "user": user.email,
            "model": "gpt",
            "token_type": "inference",
            "prompt_tokens": i % 97,
            "completion_tokens": i % 13,
            "occurred_at": when,
        }
        for i in range(1_000)
    ]
    # Two copies of every event, dealt out to 8 threads in shuffled batches of 250.
    copies = events + events
    random.Random(7).shuffle(copies)
    shares = [copies[i::8] for i in range(8)]

    def send(i):
        totals = {"recorded": 0, "duplicates": 0, "rejected": 0}
        share = shares[i]
        for start in range(0, len(share), 250):
            result = metering.usage_record(key=key, events=share[start : start + 250])
            for name in totals:
                totals[name] += result.as_dict()[name]
        return totals

    results = run_threads(8, send)
    assert sum(r["recorded"] for r in results) == 1_000
    assert sum(r["duplicates"] for r in results) == 1_000
    assert sum(r["rejected"] for r in results) == 0
    assert UsageEvent.objects.count() == 1_000
    expected = sum(e["prompt_tokens"] + e["completion_tokens"] for e in events)
    assert UsageCounter.objects.get(user=user).used == expected
    assert check_ledger() == []


def test_two_admins_setting_limits_at_once_cannot_over_allocate(setup):
    org, _user, _key = setup  # pool: 10,000,000 inference tokens
    admins = [UserFactory(organization=org, role="admin") for _ in range(2)]
    # Each round, both admins race for more than half of what is left.
    for amount in (6_000_000, 3_000_000, 600_000):
        targets = [UserFactory(organization=org) for _ in range(2)]

        def set_limit(i, targets=targets, amount=amount):
            try:
                allocation_set_limit(
                    actor=admins[i],
                    user=targets[i],
                    token_type="inference",
                    limit=amount,
                    allow_below_minimum=True,
                )
                return True
            except ValidationError as error:
                assert "unallocated" in error.messages[0]
                return False

        assert sorted(run_threads(2, set_limit)) == [False, True], "one admin wins"
    allocated = sum(
        Allocation.objects.filter(organization=org, token_type="inference").values_list(
            "limit", flat=True
        )
    )
    assert allocated == 9_600_000
    assert check_ledger() == []


def test_simultaneous_requests_of_one_user_never_pass_the_auto_approval_limits(setup):
    """Issue 14, defect 11: 16 submissions of one user at once, with a rule allowing
    2 auto-approvals a day. The limits are counted under the organization lock, so
    exactly 2 are approved whatever the interleaving; the rest wait or are refused
    (one pending request per type)."""
    org, user, _key = setup
    admin = AdminFactory(organization=org, email="boss@acme.example")
    give(user, 300_000)
    give(user, 300_000, "embedding")
    auto_approval_rule_update(
        actor=admin,
        organization=org,
        enabled=True,
        max_amount=100_000,
        max_consumption_percent=90,
        max_per_user_month=10_000_000,
        max_approvals_per_day=2,
    )

    def submit(i):
        try:
            request = token_request_submit(
                user=user,
                token_type=("inference", "embedding")[i % 2],
                amount=10_000,
                reason="race",
            )
        except ValidationError:
            return "refused"
        return request.status

    outcomes = run_threads(16, submit)
    assert outcomes.count("approved") == 2
    approved = TokenRequest.objects.filter(user=user, auto_approved=True)
    assert approved.count() == 2
    held = TokenRequest.objects.filter(user=user, status="pending")
    assert all("24 hours" in r.hold_note for r in held)
    assert check_ledger() == []
