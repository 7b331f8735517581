"""A key bound to an organization cannot tell whether an email has an account
(registration and password reset never tell either): for every API operation
that takes a user, a user outside the key's organization (of another
organization, in any state, or of none) gets the answer an unknown email gets,
byte for byte. The operations come from the OpenAPI document, so a new operation
that takes a user fails here until it is added."""

import pytest
from django.utils import timezone

from accounts.services import service_key_create
from api.gateway import openapi_document
from tests.conftest import ApiClient
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund, give
from tokens.models import Hold, UsageEvent

pytestmark = pytest.mark.django_db

WHEN = timezone.now().replace(microsecond=0).isoformat()


def authorize(client: ApiClient, email: str):
    return client.post(
        "/api/v1/authorize",
        {
            "user": email,
            "model": "gpt",
            "token_type": "inference",
            "tokens": 100,
            "request_id": "probe",
        },
    )


def usage(client: ApiClient, email: str):
    return client.post(
        "/api/v1/usage",
        {
            "events": [
                {
                    "event_id": "probe",
                    "user": email,
                    "model": "gpt",
                    "token_type": "inference",
                    "prompt_tokens": 10,
                    "occurred_at": WHEN,
                }
            ]
        },
    )


def balance(client: ApiClient, email: str):
    return client.get("/api/v1/balance", {"user": email, "token_type": "inference"})


OPERATIONS = {
    ("post", "/api/v1/authorize"): authorize,
    ("post", "/api/v1/usage"): usage,
    ("get", "/api/v1/balance"): balance,
}


def _takes_a_user(schema, document, seen=()) -> bool:
    """Whether a schema (following $refs) has a property named ``user``."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref:
            if ref in seen:
                return False
            target = document
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            return _takes_a_user(target, document, (*seen, ref))
        if "user" in schema.get("properties", {}):
            return True
        return any(_takes_a_user(v, document, seen) for v in schema.values())
    if isinstance(schema, list):
        return any(_takes_a_user(v, document, seen) for v in schema)
    return False


def operations_taking_a_user() -> set[tuple[str, str]]:
    document = openapi_document()
    found = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters") or []
            if any(p.get("name") == "user" for p in parameters) or _takes_a_user(
                operation.get("requestBody"), document
            ):
                found.add((method, path))
    return found


def test_every_operation_that_takes_a_user_is_probed():
    assert operations_taking_a_user() == set(OPERATIONS)


@pytest.fixture
def world():
    acme = OrganizationFactory(name="Acme")
    globex = OrganizationFactory(name="Globex")
    suspended = OrganizationFactory(name="Initrode", status="suspended")
    for org in (acme, globex):
        fund(org)
    AIModelFactory(key="gpt")
    own = UserFactory(organization=acme, email="ava@acme.example")
    give(own, 10_000)
    outsiders = {
        "another organization's member": UserFactory(
            organization=globex, email="bob@globex.example"
        ),
        "another organization's admin": UserFactory(
            organization=globex, email="boss@globex.example", role="admin"
        ),
        "another organization's banned user": UserFactory(
            organization=globex, email="banned@globex.example", is_banned=True
        ),
        "another organization's unpaid user": UserFactory(
            organization=globex, email="unpaid@globex.example", is_paid=False
        ),
        "a suspended organization's user": UserFactory(
            organization=suspended, email="sam@initrode.example"
        ),
        "a user of no organization": UserFactory(
            organization=None, email="solo@nowhere.example"
        ),
    }
    give(outsiders["another organization's member"], 10_000)
    _key, secret = service_key_create(actor=None, name="acme-gw", organization=acme)
    return {"client": ApiClient(secret), "own": own, "outsiders": outsiders}


@pytest.mark.parametrize("operation", sorted(OPERATIONS), ids=lambda o: o[1])
def test_an_org_key_gets_the_unknown_email_answer_for_any_user_outside_its_org(
    world, operation
):
    send = OPERATIONS[operation]
    client = world["client"]
    unknown = send(client, "nobody@nowhere.example")
    assert unknown.status_code in {200, 404}
    answers = {
        who: send(client, user.email) for who, user in world["outsiders"].items()
    }
    for who, answer in answers.items():
        assert (answer.status_code, answer.content) == (
            unknown.status_code,
            unknown.content,
        ), who
    # The probe can tell answers apart: the key's own user gets another one.
    assert send(client, world["own"].email).content != unknown.content
    # Nothing was held or recorded for anyone outside the organization.
    outsiders = list(world["outsiders"].values())
    assert not Hold.objects.filter(user__in=outsiders).exists()
    assert not UsageEvent.objects.filter(user__in=outsiders).exists()


def test_an_org_key_cannot_probe_another_organizations_event_ids(world):
    """An event id another organization recorded is not revealed either: the
    event of an outsider stays an unknown user's (not a conflict)."""
    outsider = world["outsiders"]["another organization's member"]
    _key, platform = service_key_create(actor=None, name="gateway")
    recorded = usage(ApiClient(platform), outsider.email).json()
    assert recorded["recorded"] == 1
    again = usage(world["client"], outsider.email)
    assert again.content == usage(world["client"], "nobody@nowhere.example").content
    assert again.json()["results"][0]["error"] == "unknown_user"
