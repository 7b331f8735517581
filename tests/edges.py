"""Shared by the month-edge tests: the edges, an organization built just before one,
and the gateway calls. The clock is moved with time-machine's ``time_machine``
fixture, not ticking, so every call happens at the exact instant named."""

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest

from accounts.services import service_key_create
from asksage_admin.lib.periods import next_period, period_of
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, give
from tokens.models import UsageCounter
from tokens.services import metering, purchase_record

UTC = dt.UTC
INF = "inference"
LOT = 2_000_000


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


@dataclass(frozen=True)
class Edge:
    last: dt.datetime  # the last second of a month
    first: dt.datetime  # the first second of the next

    @property
    def old(self) -> dt.date:
        return period_of(self.last)

    @property
    def new(self) -> dt.date:
        return period_of(self.first)


EDGES = [
    pytest.param(Edge(at(2027, 1, 31, 23, 59, 59), at(2027, 2, 1)), id="jan-feb"),
    pytest.param(Edge(at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1)), id="year"),
    pytest.param(Edge(at(2028, 2, 29, 23, 59, 59), at(2028, 3, 1)), id="leap-day"),
]


def check_edge(edge: Edge) -> None:
    """The parameters are what their names say."""
    assert edge.first - edge.last == dt.timedelta(seconds=1)
    assert edge.new == next_period(edge.old) == edge.first.date()


@dataclass
class World:
    org: object
    ann: object
    key: object


def build(time_machine, edge: Edge, *, expiring: int = 0, lasting: int = LOT) -> World:
    """Acme, active for 90 days, built a day before the edge: a purchase of
    ``lasting`` tokens of each type from the old month on (no expiry), one of
    ``expiring`` that expires on the old month's last day, Ann with 1,000,000 of
    each type, the model ``gpt`` and an unbound gateway key."""
    check_edge(edge)
    time_machine.move_to(edge.last - dt.timedelta(days=1), tick=False)
    org = OrganizationFactory(
        name="Acme", activated_at=edge.last - dt.timedelta(days=90)
    )
    for amount, expires_on in ((lasting, None), (expiring, edge.last.date())):
        if amount:
            purchase_record(
                actor=None,
                organization=org,
                payer_email="billing@acme.example",
                inference_tokens=amount,
                embedding_tokens=amount,
                starts_on=edge.old,
                expires_on=expires_on,
            )
    ann = UserFactory(organization=org, email="ann@acme.example")
    give(ann, 1_000_000)
    give(ann, 1_000_000, "embedding")
    AIModelFactory(key="gpt")
    key, _secret = service_key_create(actor=None, name="gw")
    return World(org, ann, key)


_ids = itertools.count()


def report(key, user, tokens: int, occurred_at: dt.datetime, *, hold=None) -> None:
    """One usage event through the gateway's service, which must record it."""
    event = {
        "event_id": f"edge-{next(_ids)}",
        "user": user.email,
        "model": "gpt",
        "token_type": INF,
        "prompt_tokens": tokens,
        "completion_tokens": 0,
        "occurred_at": occurred_at.isoformat(),
    }
    if hold is not None:
        event["hold_id"] = str(hold.pk)
    result = metering.usage_record(key=key, events=[event])
    assert result.count("recorded") == 1, result.results


def authorize(key, user, tokens: int, request_id: str):
    return metering.authorize(
        key=key,
        user_email=user.email,
        model_key="gpt",
        token_type=INF,
        tokens=tokens,
        request_id=request_id,
    )


def counter(user, period: dt.date) -> dict | None:
    return (
        UsageCounter.objects.filter(user=user, token_type=INF, period=period)
        .values("used", "held")
        .first()
    )
