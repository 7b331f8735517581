"""The distribution engine under concurrency (docs/architecture.md, Concurrency and
locks): real threads on PostgreSQL; SQLite serializes writers, so these tests skip
there."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import service_key_create
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund, give
from tests.kit import RACE_MARKS
from tests.tokens.test_concurrency import run_threads
from tokens.ledger import check_ledger
from tokens.models import Allocation, AllocationChange, DistributionRun
from tokens.services import distribution as engine
from tokens.services import metering

pytestmark = RACE_MARKS


@pytest.fixture
def org():
    org = OrganizationFactory(
        name="Acme", activated_at=timezone.now() - dt.timedelta(days=30)
    )
    fund(org)
    return org


def test_20_concurrent_usage_reports_crossing_the_trigger_raise_the_limit_once(org):
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={
            "triggers": [90],
            "bump_mode": "percent_current",
            "bump_value": 25,
            "ceiling": None,
        },
    )
    user = UserFactory(organization=org, email="hot@acme.example")
    give(user, 1_000_000)
    AIModelFactory(key="gpt")
    key, _secret = service_key_create(actor=None, name="gw")
    now = timezone.now().isoformat()

    def report(i, tokens=None):
        return metering.usage_record(
            key=key,
            events=[
                {
                    "event_id": f"ev-{i}",
                    "user": user.email,
                    "model": "gpt",
                    "token_type": "inference",
                    "prompt_tokens": tokens or 10_000,
                    "occurred_at": now,
                }
            ],
        ).count("recorded")

    report("warm", 890_000)  # 89%: every one of the 20 reports below crosses 90%
    assert sum(run_threads(20, report)) == 20
    changes = AllocationChange.objects.filter(
        user=user, source=AllocationChange.Source.AUTO_INCREASE
    )
    assert changes.count() == 1
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.AUTO_INCREASE).count() == 1
    )
    assert Allocation.objects.get(user=user, token_type="inference").limit == 1_250_000
    assert check_ledger() == []


def test_two_concurrent_scheduled_runs_record_one_run_per_due_time(org):
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={"schedule": "daily", "schedule_hour": 0},
    )
    for i in range(5):
        user = UserFactory(organization=org, email=f"u{i}@acme.example")
        give(user, 300_000)
        give(user, 300_000, "embedding")
    now = timezone.now()

    for round_ in range(3):
        moment = now + dt.timedelta(days=round_)
        results = run_threads(
            4, lambda _i, moment=moment: engine.run_due_distributions(now=moment)
        )
        statuses = sorted(status for result in results for _org, status in result)
        assert statuses.count("ran") == 1, statuses
        assert all(s == "ran" or s.startswith("skipped") for s in statuses)
    due_times = list(DistributionRun.objects.values_list("due_at", flat=True))
    assert len(due_times) == len(set(due_times)) == 3
    runs_audited = AuditEvent.objects.filter(action=AuditEvent.Action.DISTRIBUTION_RUN)
    assert runs_audited.count() == 3
    # The first run raised everyone to the floor; the later ones had nothing to do.
    assert set(
        Allocation.objects.filter(organization=org).values_list("limit", flat=True)
    ) == {500_000}
    assert check_ledger() == []
