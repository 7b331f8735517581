"""A user with history in two organizations: everything of organization A
(allocation changes by A's admin with a private note, usage in two months,
counters, rollups, a token request, audit events, an open hold), then moved to B
through the real services (staff "remove from organization", "add member"), then
a little usage in B. ``A_MARKERS`` are texts and figures that exist only in A."""

import datetime as dt
from dataclasses import dataclass
from unittest import mock

from django.contrib.auth.models import Group

from accounts.models import Organization, User
from accounts.services import service_key_create
from tests.conftest import ApiClient
from tests.factories import (
    AdminFactory,
    AIModelFactory,
    OrganizationFactory,
    UserFactory,
    fund,
)
from tokens.services import (
    allocation_set_limit,
    organization_add_member,
    organization_remove_member,
)
from tokens.services.requests import token_request_approve, token_request_submit

# Mid-month: A's usage is in October and November, B's in November after the move.
NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=dt.UTC)
A_NOTE = "ALPHA-PRIVATE-APPROVAL-NOTE"
A_REASON = "ALPHA-PRIVATE-REASON"
A_ADMIN = "alpha.admin@alpha.example"
A_LIMIT = 777_131
A_OCTOBER, A_NOVEMBER, A_EMBEDDING, A_HELD = 91_379, 62_917, 33_713, 48_131
B_NOVEMBER = 1_234


def _figures(*numbers: int) -> list[str]:
    return [text for n in numbers for text in (str(n), f"{n:,}")]


A_MARKERS = [
    A_NOTE,
    A_REASON,
    A_ADMIN,
    "Alpha Secret Org",
    *_figures(
        A_LIMIT,
        A_OCTOBER,
        A_NOVEMBER,
        A_EMBEDDING,
        A_HELD,
        # What a figure adding A's usage to B's would show.
        A_OCTOBER + A_NOVEMBER + A_EMBEDDING + B_NOVEMBER,
        A_NOVEMBER + B_NOVEMBER,
        A_HELD + 0,
    ),
]


@dataclass
class Moved:
    a: Organization
    b: Organization
    a_admin: User
    b_admin: User
    mover: User
    gateway: ApiClient


def _usage(gateway: ApiClient, mover: User, event_id: str, **event) -> None:
    body = gateway.post(
        "/api/v1/usage",
        {
            "events": [
                {
                    "event_id": event_id,
                    "user": mover.email,
                    "model": "gpt-4o",
                    "token_type": "inference",
                    "completion_tokens": 0,
                    **event,
                }
            ]
        },
    ).json()
    assert body["recorded"] == 1, body


def build_moved_user() -> Moved:
    """Build the world at ``NOW`` (``timezone.now`` patched while building)."""
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        return _build()


def _build() -> Moved:
    a = OrganizationFactory(name="Alpha Secret Org")
    b = OrganizationFactory(name="Beta")
    fund(a)
    fund(b)
    a_admin = AdminFactory(organization=a, email=A_ADMIN)
    b_admin = AdminFactory(organization=b, email="beta.admin@beta.example")
    sales = UserFactory(organization=None, email="sales@vendor.example", is_staff=True)
    sales.groups.add(Group.objects.get(name="Sales"))
    AIModelFactory(key="gpt-4o")
    AIModelFactory(key="embed", token_type="embedding")
    mover = UserFactory(organization=a, email="mover@example.com", is_paid=True)
    for token_type in ("inference", "embedding"):
        allocation_set_limit(
            actor=a_admin, user=mover, token_type=token_type, limit=200_000
        )
    request = token_request_submit(
        user=mover, token_type="inference", amount=A_LIMIT - 200_000, reason=A_REASON
    )
    token_request_approve(
        actor=a_admin, request=request, amount=A_LIMIT - 200_000, note=A_NOTE
    )
    _key, secret = service_key_create(actor=None, name="gateway")
    gateway = ApiClient(secret)
    _usage(
        gateway,
        mover,
        "a-october",
        prompt_tokens=A_OCTOBER,
        occurred_at="2026-10-20T10:00:00Z",
    )
    _usage(
        gateway,
        mover,
        "a-november",
        prompt_tokens=A_NOVEMBER,
        occurred_at="2026-11-10T10:00:00Z",
    )
    _usage(
        gateway,
        mover,
        "a-embedding",
        model="embed",
        token_type="embedding",
        prompt_tokens=A_EMBEDDING,
        occurred_at="2026-11-11T10:00:00Z",
    )
    held = gateway.post(
        "/api/v1/authorize",
        {
            "user": mover.email,
            "model": "gpt-4o",
            "token_type": "inference",
            "tokens": A_HELD,
            "request_id": "a-open-hold",
        },
    )
    assert held.status_code == 200, held.json()
    organization_remove_member(actor=sales, user=mover)
    mover.refresh_from_db()
    organization_add_member(actor=sales, organization=b, user=mover, role="user")
    mover.refresh_from_db()
    _usage(
        gateway,
        mover,
        "b-november",
        prompt_tokens=B_NOVEMBER,
        occurred_at="2026-11-14T10:00:00Z",
    )
    return Moved(a, b, a_admin, b_admin, mover, gateway)
