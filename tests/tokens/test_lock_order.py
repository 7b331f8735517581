"""The product's one lock order (tokens/locks.py) under real concurrency: no
deadlock, no 503, no overspend, one auto-increase per user per cooldown. Real
threads on PostgreSQL; SQLite serializes all writers, so these tests skip there.

A deadlock is counted twice: by the metering retry wrapper (it retries on 40P01,
so a deadlock would otherwise only cost time) and by PostgreSQL's own counter for
the test database (``pg_stat_database.deadlocks``, which also sees deadlocks
outside the wrapper)."""

import random
import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import service_key_create
from tests.conftest import ApiClient
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund, give
from tests.kit import RACE_MARKS, flush_statistics, run_threads
from tokens.ledger import check_ledger
from tokens.models import (
    Allocation,
    AllocationChange,
    Hold,
    UsageCounter,
    UsageEvent,
)
from tokens.services import distribution as engine
from tokens.services import metering
from tokens.services.metering import _common

pytestmark = RACE_MARKS

DEADLOCK = "40P01"


@pytest.fixture
def retried(monkeypatch) -> list[str]:
    """The SQLSTATE of every error the metering retry wrapper judged retryable."""
    seen: list[str] = []
    original = _common._retryable
    lock = threading.Lock()

    def spy(error):
        cause = getattr(error, "__cause__", None)
        with lock:
            seen.append(getattr(cause, "sqlstate", None) or str(error))
        return original(error)

    monkeypatch.setattr(_common, "_retryable", spy)
    return seen


def database_deadlocks() -> int:
    """PostgreSQL's count of deadlocks detected in the test database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def org():
    org = OrganizationFactory(name="Acme")
    fund(org)  # 10,000,000 tokens of each type
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={
            "auto_increase_enabled": True,
            "triggers": [80],
            "bump_mode": "percent_current",
            "bump_value": 25,
            "cooldown_minutes": 60,
            "ceiling": None,
        },
    )
    AIModelFactory(key="gpt")
    return org


def test_48_one_event_batches_half_crossing_the_trigger_no_deadlock_one_increase(
    org, retried
):
    """12 users, 4 one-event batches each, all at once through the API; the first
    batch of each of 6 users crosses 80% of the limit. Three rounds (144 batches),
    each with new users."""
    _key, secret = service_key_create(actor=None, name="gw")
    now = timezone.now().replace(microsecond=0).isoformat()
    deadlocks_before = database_deadlocks()
    hot_users, cold_users = [], []
    statuses: list[int] = []
    for round_ in range(3):
        users = [
            UserFactory(organization=org, email=f"r{round_}u{i}@acme.example")
            for i in range(12)
        ]
        for i, user in enumerate(users):
            give(user, 100_000)
            # Hot users at 79.5%: each of their batches below adds 1% and crosses
            # 80% (only the first to commit fires); the others stay at 10–14%.
            warm = 79_500 if i % 2 == 0 else 10_000
            metering.usage_record(
                key=_key,
                events=[
                    {
                        "event_id": f"warm-{user.pk}",
                        "user": user.email,
                        "model": "gpt",
                        "token_type": "inference",
                        "prompt_tokens": warm,
                        "occurred_at": now,
                    }
                ],
            )
            (hot_users if i % 2 == 0 else cold_users).append(user)

        def report(n, users=users):
            user = users[n % 12]
            response = ApiClient(secret).post(
                "/api/v1/usage",
                {
                    "events": [
                        {
                            "event_id": f"ev-{user.pk}-{n}",
                            "user": user.email,
                            "model": "gpt",
                            "token_type": "inference",
                            "prompt_tokens": 1_000,
                            "occurred_at": now,
                        }
                    ]
                },
            )
            return response.status_code, response.json().get("recorded")

        results = run_threads(48, report, before_close=flush_statistics)
        statuses += [status for status, _recorded in results]
        assert all(recorded == 1 for _s, recorded in results if _s == 200)

    figures = {
        "503": statuses.count(503),
        "deadlocks retried": retried.count(DEADLOCK),
        "deadlocks counted by PostgreSQL": database_deadlocks() - deadlocks_before,
    }
    assert figures == dict.fromkeys(figures, 0)
    assert set(statuses) == {200}
    for user in hot_users:
        increases = AllocationChange.objects.filter(
            user=user, source=AllocationChange.Source.AUTO_INCREASE
        )
        assert increases.count() == 1, user.email
        assert Allocation.objects.get(user=user, token_type="inference").limit == (
            125_000
        )
        assert UsageCounter.objects.get(user=user).used == 83_500
    assert not AllocationChange.objects.filter(
        user__in=cold_users, source=AllocationChange.Source.AUTO_INCREASE
    ).exists()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.AUTO_INCREASE
    ).count() == (len(hot_users))
    assert check_ledger() == []


@override_settings(HOLD_TTL_SECONDS=0)
def test_32_threads_authorizing_near_the_limit_settling_and_expiring_never_deadlock(
    org, retried
):
    """Every hold expires at once (TTL 0), so each refused authorization takes the
    lazy-expiry path (holds, then the counter) while other threads settle holds
    with usage (holds, then the counter) and grant (the counter)."""
    key, _secret = service_key_create(actor=None, name="gw")
    user = UserFactory(organization=org, email="hot@acme.example")
    give(user, 20_000)
    deadlocks_before = database_deadlocks()
    now = timezone.now().replace(microsecond=0).isoformat()

    def client(i):
        rng = random.Random(i)
        outcome = {"granted": 0, "refused": 0, "unavailable": 0}
        for n in range(25):
            tokens = rng.randint(500, 4_000)
            try:
                grant = metering.authorize(
                    key=key,
                    user_email=user.email,
                    model_key="gpt",
                    token_type="inference",
                    tokens=tokens,
                    request_id=f"c{i}-{n}",
                )
            except metering.MeteringError as refusal:
                assert refusal.code == "insufficient_tokens"
                outcome["refused"] += 1
                continue
            except metering.ServiceUnavailable:
                outcome["unavailable"] += 1
                continue
            outcome["granted"] += 1
            try:
                if n % 3 == 0:
                    metering.hold_release(key=key, hold_id=grant.hold.pk)
                else:
                    metering.usage_record(
                        key=key,
                        events=[
                            {
                                "event_id": f"ev-{i}-{n}",
                                "user": user.email,
                                "model": "gpt",
                                "token_type": "inference",
                                "prompt_tokens": rng.randint(1, 200),
                                "occurred_at": now,
                                "hold_id": str(grant.hold.pk),
                            }
                        ],
                    )
            except metering.ServiceUnavailable:
                outcome["unavailable"] += 1
        return outcome

    outcomes = run_threads(32, client, before_close=flush_statistics)
    total = {k: sum(o[k] for o in outcomes) for k in outcomes[0]}
    figures = {
        "503": total["unavailable"],
        "deadlocks retried": retried.count(DEADLOCK),
        "deadlocks counted by PostgreSQL": database_deadlocks() - deadlocks_before,
    }
    assert figures == dict.fromkeys(figures, 0), total
    assert total["granted"] > 0 and total["refused"] > 0, total
    counter = UsageCounter.objects.get(user=user, token_type="inference")
    # No overspend: a grant fits (used + held + tokens ≤ limit) and each
    # settlement charges at most 200 tokens, less than the smallest hold; only
    # usage whose hold had expired or been released before it arrived adds to
    # used without having been held, and may pass the limit.
    unheld = sum(
        UsageEvent.objects.filter(user=user)
        .exclude(hold__status=Hold.Status.SETTLED)
        .values_list("tokens", flat=True)
    )
    # The limit may have grown meanwhile: the organization's auto-increase fires
    # in these usage batches too (80% of 20,000, +25%).
    limit = Allocation.objects.get(user=user, token_type="inference").limit
    assert limit > 20_000
    assert counter.used + counter.held <= limit + unheld
    assert check_ledger() == []
