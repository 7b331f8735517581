"""The two paths that start again to keep the lock order (tokens/locks.py), on
every database: a usage batch in which an auto-increase is due locks the
organization and the allocations before the holds, and an authorization that
does not fit expires holds only in a second run, before it touches the counter."""

from unittest import mock

import pytest
from django.utils import timezone

from accounts.services import service_key_create
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund, give
from tokens.ledger import check_ledger
from tokens.models import AllocationChange, Hold
from tokens.services import distribution as engine
from tokens.services import metering
from tokens.services.metering import holds as holds_module
from tokens.services.metering import usage as usage_module

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    org = OrganizationFactory(name="Acme")
    fund(org)
    engine.policy_ensure(organization=org)
    engine.policy_update(
        actor=None,
        organization=org,
        changes={"triggers": [80], "bump_mode": "percent_current", "bump_value": 25},
    )
    AIModelFactory(key="gpt")
    user = UserFactory(organization=org, email="ava@acme.example")
    give(user, 100_000)
    key, _secret = service_key_create(actor=None, name="gw")
    return org, user, key


def report(key, user, event_id, tokens, hold_id=None):
    event = {
        "event_id": event_id,
        "user": user.email,
        "model": "gpt",
        "token_type": "inference",
        "prompt_tokens": tokens,
        "occurred_at": timezone.now().isoformat(),
    }
    if hold_id:
        event["hold_id"] = str(hold_id)
    return metering.usage_record(key=key, events=[event])


def spy(module, name, calls):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((name, result))
        return result

    return mock.patch.object(module, name, wrapper)


def test_a_batch_with_an_increase_due_locks_the_organization_before_the_holds(world):
    _org, user, key = world
    hold = metering.authorize(
        key=key,
        user_email=user.email,
        model_key="gpt",
        token_type="inference",
        tokens=90_000,
        request_id="r1",
    ).hold
    calls: list = []
    with (
        spy(usage_module, "lock_for_auto_increase", calls),
        spy(usage_module, "lock_holds_sql", calls),
    ):
        result = report(key, user, "ev-1", 85_000, hold_id=hold.pk)
    assert result.count("recorded") == 1
    # First run: holds locked, increase found due, rolled back; second run: the
    # organization and allocations first, then the holds.
    assert [name for name, _r in calls] == [
        "lock_holds_sql",
        "lock_for_auto_increase",
        "lock_holds_sql",
    ]
    assert (
        AllocationChange.objects.filter(
            user=user, source=AllocationChange.Source.AUTO_INCREASE
        ).count()
        == 1
    )
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.SETTLED
    assert check_ledger() == []


def test_a_batch_with_nothing_due_runs_once_and_locks_no_organization(world):
    _org, user, key = world
    calls: list = []
    with spy(usage_module, "lock_for_auto_increase", calls):
        report(key, user, "ev-1", 10_000)
    assert calls == []


def test_an_authorization_that_does_not_fit_expires_holds_only_in_a_second_run(
    world,
):
    _org, user, key = world

    def ask(tokens, request_id):
        return metering.authorize(
            key=key,
            user_email=user.email,
            model_key="gpt",
            token_type="inference",
            tokens=tokens,
            request_id=request_id,
        )

    ask(1_000, "warm")  # the counter exists from here on
    calls: list = []
    with spy(holds_module, "_reserve", calls), spy(holds_module, "_expire_due", calls):
        ask(2_000, "fits")
        assert [name for name, _r in calls] == ["_reserve"]
        calls.clear()
        with pytest.raises(metering.MeteringError) as refused:
            ask(200_000, "too-much")
    assert refused.value.code == "insufficient_tokens"
    assert [(name, result) for name, result in calls] == [
        ("_reserve", None),
        ("_expire_due", 0),
        ("_reserve", None),
    ]
    assert not Hold.objects.filter(request_id="too-much").exists()
    assert check_ledger() == []
