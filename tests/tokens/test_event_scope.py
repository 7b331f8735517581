"""Idempotency scope of usage events (issue 14, defect 5): an event_id is unique
within its reporting scope (the organization the event is recorded under, and
whether a key bound to it or the platform gateway reported it), so one tenant's
ids neither void nor reveal another's events, nor the gateway's."""

from types import SimpleNamespace

import pytest

from accounts.services import service_key_create
from tests.conftest import ApiClient
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund
from tokens.ledger import check_ledger
from tokens.models import UsageCounter, UsageEvent

USAGE = "/api/v1/usage"


@pytest.fixture
def tenants(db, gateway):
    a, b = OrganizationFactory(name="Alpha"), OrganizationFactory(name="Beta")
    fund(a)
    fund(b)
    AIModelFactory(key="gpt-4o")
    ann = UserFactory(organization=a, email="ann@alpha.example")
    bob = UserFactory(organization=b, email="bob@beta.example")
    keys = {
        org.name: ApiClient(
            service_key_create(actor=None, name=f"key-{org.name}", organization=org)[1]
        )
        for org in (a, b)
    }
    return SimpleNamespace(
        ann=ann, bob=bob, a_key=keys["Alpha"], b_key=keys["Beta"], gateway=gateway
    )


def event(user, prompt: int = 100, event_id: str = "X") -> dict:
    return {
        "event_id": event_id,
        "user": user.email,
        "model": "gpt-4o",
        "token_type": "inference",
        "prompt_tokens": prompt,
        "occurred_at": "2026-11-10T10:00:00Z",
    }


def statuses(client: ApiClient, *events) -> list:
    body = client.post(USAGE, {"events": list(events)}).json()
    return [(r["status"], r.get("error")) for r in body["results"]]


def test_an_org_bound_key_cannot_void_another_organizations_or_the_gateways_event(
    tenants,
):
    ann, bob, gateway = tenants.ann, tenants.bob, tenants.gateway
    a_key, b_key = tenants.a_key, tenants.b_key
    recorded = ("recorded", None)
    # The attack: A's key records id X first.
    assert statuses(a_key, event(ann, 10)) == [recorded]
    # B's own key, and the platform gateway for B's user, record their own X.
    assert statuses(b_key, event(bob, 20)) == [recorded]
    assert statuses(gateway, event(bob, 40, "Y")) == [recorded]
    assert statuses(gateway, event(bob, 30)) == [recorded]
    # The gateway's report of A's own usage is not voided by A's key either.
    assert statuses(gateway, event(ann, 50)) == [recorded]
    used = dict(UsageCounter.objects.values_list("user__email", "used"))
    assert used == {ann.email: 10 + 50, bob.email: 20 + 40 + 30}
    assert check_ledger() == []


def test_duplicates_and_conflicts_are_within_one_scope(tenants):
    ann, gateway = tenants.ann, tenants.gateway
    a_key, b_key = tenants.a_key, tenants.b_key
    assert statuses(a_key, event(ann, 10)) == [("recorded", None)]
    assert statuses(gateway, event(ann, 50)) == [("recorded", None)]
    # Within a scope: the same payload is a duplicate, other data a conflict.
    assert statuses(a_key, event(ann, 10)) == [("duplicate", None)]
    assert statuses(a_key, event(ann, 11)) == [("rejected", "conflict")]
    assert statuses(gateway, event(ann, 50)) == [("duplicate", None)]
    assert statuses(gateway, event(ann, 51)) == [("rejected", "conflict")]
    # Another organization's key is refused for A's user, without learning that
    # A has an X (an unknown user to it, never duplicate or conflict).
    assert statuses(b_key, event(ann, 10)) == [("rejected", "unknown_user")]
    assert UsageEvent.objects.count() == 2
    assert check_ledger() == []


def test_one_gateway_batch_may_carry_the_same_id_for_two_organizations(tenants):
    ann, bob, gateway = tenants.ann, tenants.bob, tenants.gateway
    assert statuses(gateway, event(ann, 10), event(bob, 20), event(bob, 20)) == [
        ("recorded", None),
        ("recorded", None),
        ("duplicate", None),
    ]
    assert sorted(UsageEvent.objects.values_list("organization__name", "tokens")) == [
        ("Alpha", 10),
        ("Beta", 20),
    ]
    assert check_ledger() == []
