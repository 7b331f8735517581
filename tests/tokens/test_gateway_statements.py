"""Statements and round trips per gateway call: a few per call, whatever the
organization's size.

The gateway is in the path of every LLM call, so each call's statements are
counted here (the service key's look-up included; the transaction's own
BEGIN/COMMIT or savepoints are not statements of the call's work), and so are the
round trips they take: on PostgreSQL, statements that do not need each other's
results are sent together (``tokens/services/metering/hot.py``, ``run_together``);
SQLite, in the same process, runs them one by one. The counts are pinned: a
change that adds a look-up or a round trip to the hot path fails here and must
say why.
"""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import AIModelFactory, UserFactory, fund, give

pytestmark = pytest.mark.django_db

# authorize: key, existing hold?, user with the model and the allowed-models check,
# hold INSERT, counter UPDATE.
# usage of one event settling its hold: key, users, models, hold (locked), event
# INSERT, hold settled, counter (used added, held released in one UPDATE), daily,
# auto-increase candidates, monthly, organization daily (striped), alert facts
# (issue 19: the one read that decides whether a threshold is reached; the insert
# of an alert runs only when one is, once per threshold and month).
# balance: key, user, counter with limit, organization's month (rollup), its open
# holds, pool.
# release: key, hold (locked), hold released, counter.
EXPECTED = {"authorize": 5, "usage": 12, "balance": 6, "release": 4}
# Round trips on PostgreSQL. authorize: key; existing hold? with the user and the
# model; hold INSERT with the counter UPDATE. usage: key; users, models and holds;
# event INSERT (its RETURNING decides the rest); holds settled with the counters;
# auto-increase candidates; the three rollups with the alert facts. release: key;
# hold; hold released with its counter.
ROUND_TRIPS = {"authorize": 3, "usage": 6, "balance": 6, "release": 3}


def _work(statements) -> tuple[int, int]:
    """Round trips and statements of the call, read as soon as it ends (the
    connection keeps a bounded log, so a context read later may look at other
    statements)."""
    sent = [
        q["sql"]
        for q in statements.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    return len(sent), sum(len(sql.split(";\n")) for sql in sent)


def _calls(gateway, email: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for warm in (True, False):  # the first pair creates the month's counter
        rid = str(uuid.uuid4())
        with CaptureQueriesContext(connection) as authorize:
            response = gateway.post(
                "/api/v1/authorize",
                {
                    "user": email,
                    "model": "gpt",
                    "token_type": "inference",
                    "tokens": 100,
                    "request_id": rid,
                },
            )
        seen = {"authorize": _work(authorize)}
        assert response.status_code == 200, response.content
        event = {
            "event_id": rid,
            "user": email,
            "model": "gpt",
            "token_type": "inference",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "occurred_at": timezone.now().isoformat(),
            "hold_id": response.json()["hold_id"],
        }
        with CaptureQueriesContext(connection) as usage:
            response = gateway.post("/api/v1/usage", {"events": [event]})
        seen["usage"] = _work(usage)
        assert response.json()["recorded"] == 1
        with CaptureQueriesContext(connection) as balance:
            response = gateway.get(
                "/api/v1/balance", {"user": email, "token_type": "inference"}
            )
        seen["balance"] = _work(balance)
        assert response.status_code == 200, response.content
        response = gateway.post(
            "/api/v1/authorize",
            {
                "user": email,
                "model": "gpt",
                "token_type": "inference",
                "tokens": 100,
                "request_id": rid + "-released",
            },
        )
        with CaptureQueriesContext(connection) as release:
            released = gateway.post(
                f"/api/v1/holds/{response.json()['hold_id']}/release"
            )
        seen["release"] = _work(release)
        assert released.json() == {"released": 100}
        if not warm:
            counts = seen
    return counts


def test_each_call_runs_the_same_few_statements_in_a_small_and_a_large_org(
    gateway, org, other_org
):
    AIModelFactory(key="gpt", input_rate=1, output_rate=3)
    for organization, size in ((org, 2), (other_org, 60)):
        fund(organization)
        for i in range(size):
            user = UserFactory(
                organization=organization, email=f"u{i}@{organization.pk}.example"
            )
            give(user, 100_000)
            if i < size - 1:  # usage, counters and rollups of the others
                _calls(gateway, user.email)
    small = _calls(gateway, f"u1@{org.pk}.example")
    large = _calls(gateway, f"u59@{other_org.pk}.example")
    assert small == large
    assert {call: n for call, (_trips, n) in small.items()} == EXPECTED
    trips = ROUND_TRIPS if connection.vendor == "postgresql" else EXPECTED
    assert {call: n for call, (n, _statements) in small.items()} == trips
