"""Faults (docs/security.md, Security guarantees; docs/architecture.md, Invariants and
check_ledger, Concurrency and locks): with the database unreachable the API answers 503
JSON and pages a friendly 503 page, never a stack trace; and a failure injected in the
middle of a usage batch, a bulk action, a distribution run or an activation leaves
nothing half-saved: every table as before and ``check_ledger()`` clean.

Each write is driven through the product's own path (the API, the panel, the staff
site). The failure is injected at the SQL level (``connection.execute_wrapper``): once
given statements have run inside the action's transaction, the next statement on a
given table fails instead of running. So the point of failure is defined by what has
been written, not by the name of a Python function, and holds however the services
batch their writes. Two kinds of failure: the database going away (``OperationalError``:
503) and a bug (``RuntimeError``: the 500 page)."""

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.template import loader
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, EnterpriseAccountRequest, Organization, User
from tests.conftest import ApiClient, sign_in
from tests.factories import AIModelFactory, UserFactory, fund, give
from tests.kit import member
from tokens.ledger import check_ledger
from tokens.models import (
    Allocation,
    AllocationChange,
    DailyUsage,
    DistributionRun,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    Purchase,
    UsageCounter,
    UsageEvent,
)
from tokens.services import distribution, enterprise_request_submit

pytestmark = pytest.mark.django_db

DB_GONE = OperationalError("server closed the connection unexpectedly")
FAILURES = [
    pytest.param(DB_GONE, 503, "be right back", id="database-gone"),
    pytest.param(RuntimeError("disk full"), 500, "Something went wrong", id="bug"),
]


def snapshot() -> dict:
    """Everything a write in this project can touch."""
    return {
        "organizations": sorted(Organization.objects.values_list("id", "status")),
        "users": sorted(
            User.objects.values_list(
                "id", "organization_id", "role", "is_paid", "is_banned"
            )
        ),
        "requests": sorted(
            EnterpriseAccountRequest.objects.values_list("id", "status")
        ),
        "purchases": Purchase.objects.count(),
        "allocations": sorted(
            Allocation.objects.values_list("user_id", "token_type", "limit")
        ),
        "changes": AllocationChange.objects.count(),
        "audit": AuditEvent.objects.count(),
        "runs": DistributionRun.objects.count(),
        "usage": UsageEvent.objects.count(),
        "counters": sorted(
            UsageCounter.objects.values_list(
                "user_id", "token_type", "period", "used", "held"
            )
        ),
        "daily": sorted(
            DailyUsage.objects.values_list("user_id", "day", "tokens", "events")
        ),
        "org_daily": sorted(
            OrgDailyUsage.objects.values_list(
                "organization_id", "model_id", "day", "tokens", "events"
            )
        ),
        "monthly": sorted(
            # (organization, user, month) is unique: the sort never compares
            # a last day with None.
            MonthlyUsage.objects.values_list(
                "organization_id",
                "user_id",
                "month",
                "inference_tokens",
                "inference_events",
                "inference_last_day",
                "embedding_tokens",
                "embedding_events",
                "embedding_last_day",
                "tokens",
                "events",
                "last_day",
            )
        ),
        "holds": sorted(Hold.objects.values_list("id", "status")),
    }


class FailMidway:
    """An execute wrapper: after a statement containing each of ``after`` has run,
    the next statement containing ``then`` raises ``error`` instead of running.

    Statements the gateway sends together in one round trip
    (``hot.run_together``: joined by ";\n", a placeholder per parameter) are
    looked at one by one: when the failure strikes inside such a batch, the
    statements before it run (one by one) and then the error is raised, as it
    could be were they sent apart."""

    def __init__(self, *, after: list[str], then: str, error: Exception):
        self.pending, self.then, self.error = list(after), then, error
        self.fired = False

    def __call__(self, execute, sql, params, many, context):
        parts = [sql] if many else sql.split(";\n")
        pending = list(self.pending)
        for i, part in enumerate(parts):
            if not self.fired and not pending and self.then in part:
                rest = list(params)
                for before in parts[:i]:  # run what precedes the failure
                    n = before.count("%s")
                    execute(before, rest[:n], many, context)
                    rest = rest[n:]
                self.fired = True
                raise self.error
            pending = [fragment for fragment in pending if fragment not in part]
        result = execute(sql, params, many, context)
        self.pending = pending
        return result


def table(model) -> str:
    return f'"{model._meta.db_table}"'


def fail_midway(*, after: list[str], then: str, error: Exception):
    """Run the block with the failure armed; ``.fired`` tells whether it struck."""
    injector = FailMidway(after=after, then=then, error=error)
    return injector, connection.execute_wrapper(injector)


def assert_friendly(response, status: int, text: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert text in html
    assert "Traceback" not in html
    assert "disk full" not in html
    assert "server closed" not in html


def assert_unchanged(before: dict) -> None:
    after = snapshot()
    assert {k: v for k, v in after.items() if v != before[k]} == {}
    assert check_ledger() == []


def down():
    """Every database access fails as if the server were unreachable."""
    return mock.patch.object(
        BaseDatabaseWrapper,
        "ensure_connection",
        side_effect=OperationalError("could not connect to server: Connection refused"),
    )


# --- the database unreachable --------------------------------------------------------


@pytest.fixture
def admin(admin_user):
    client = sign_in(admin_user, mfa=True)
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    "url",
    ["/panel/users/", "/panel/distribution/", "/panel/statistics/", "/me/", "/"],
)
def test_pages_answer_the_friendly_503_page(admin, url):
    with down():
        response = admin.get(url)
    assert_friendly(response, 503, "be right back")
    assert response["Retry-After"] == "30"
    # Security headers still apply, including those of the middleware skipped.
    assert response["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Request-ID"]


@pytest.mark.parametrize(
    "error", [DB_GONE, InterfaceError("connection already closed")]
)
def test_a_view_losing_the_database_answers_503(admin, error):
    with mock.patch("tokens.selectors.users_in", side_effect=error):
        response = admin.get(reverse("tokens:user_list"))
    assert_friendly(response, 503, "be right back")
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_other_errors_keep_the_500_page(admin):
    with mock.patch("tokens.selectors.users_in", side_effect=RuntimeError("disk full")):
        response = admin.get(reverse("tokens:user_list"))
    assert_friendly(response, 500, "Something went wrong")


def test_the_503_page_stands_alone():
    html = loader.get_template("503.html").render()
    assert "{%" not in html and "{{" not in html
    assert "<script" not in html and "style=" not in html


def test_api_answers_503_json_when_the_database_is_unreachable(service_key, admin):
    gateway = ApiClient(service_key[1])
    body = {
        "user": "a@b.c",
        "model": "m",
        "token_type": "inference",
        "tokens": 1,
        "request_id": "r",
    }
    with down():
        responses = [
            gateway.post("/api/v1/authorize", body),
            gateway.post("/api/v1/usage", {"events": [{}]}),
            gateway.get(
                "/api/v1/balance", {"user": "a@b.c", "token_type": "inference"}
            ),
            # A cookie makes the middleware load a session first: also JSON.
            admin.get("/api/v1/balance", {"user": "a@b.c", "token_type": "inference"}),
        ]
    for response in responses:
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"] == "service_unavailable"
        assert "detail" in response.json()


def test_healthz_reports_the_database_down(db):
    with down():
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "down"}


# --- a usage batch --------------------------------------------------------------------


@pytest.fixture
def metered(org, service_key):
    fund(org)
    ava = UserFactory(organization=org, email="ava@acme.example")
    bob = UserFactory(organization=org, email="bob@acme.example")
    for user in (ava, bob):
        give(user, 100_000)
    AIModelFactory(key="gpt")
    gateway = ApiClient(service_key[1])
    gateway.client.raise_request_exception = False
    hold = gateway.post(
        "/api/v1/authorize",
        {
            "user": "ava@acme.example",
            "model": "gpt",
            "token_type": "inference",
            "tokens": 500,
            "request_id": "r1",
        },
    ).json()["hold_id"]
    when = timezone.now().replace(microsecond=0).isoformat()
    events = [
        {
            "event_id": f"ev-{i}",
            "user": email,
            "model": "gpt",
            "token_type": "inference",
            "prompt_tokens": 10 * i,
            "completion_tokens": i,
            "occurred_at": when,
            **({"hold_id": hold} if i == 0 else {}),
        }
        for i, email in enumerate(["ava@acme.example", "bob@acme.example"] * 3)
    ]
    return gateway, events


EVENTS_WRITTEN = f"INSERT INTO {table(UsageEvent)}"


@pytest.mark.parametrize(
    ("after", "then"),
    [
        # the events are inserted; the counters fail
        ([EVENTS_WRITTEN], table(UsageCounter)),
        # events and counters written; auto-increase's look-up of the counters
        # just raised fails
        ([EVENTS_WRITTEN, table(UsageCounter)], "WITH hot AS"),
        # all that and auto-increase done; the daily rollups fail
        ([EVENTS_WRITTEN, table(UsageCounter)], table(DailyUsage)),
        # and the daily rollups written; the monthly rollups fail
        (
            [EVENTS_WRITTEN, table(UsageCounter), table(DailyUsage)],
            table(MonthlyUsage),
        ),
        # and the organization daily rollups, written last
        (
            [
                EVENTS_WRITTEN,
                table(UsageCounter),
                table(DailyUsage),
                table(MonthlyUsage),
            ],
            table(OrgDailyUsage),
        ),
    ],
    ids=["counters", "auto-increase", "rollups", "monthly-rollups", "org-rollups"],
)
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (DB_GONE, 503, "service_unavailable"),
        (RuntimeError("disk full"), 500, "server_error"),
    ],
    ids=["database-gone", "bug"],
)
def test_a_usage_batch_failing_midway_records_nothing(
    metered, after, then, error, status, code
):
    gateway, events = metered
    before = snapshot()
    injector, armed = fail_midway(after=after, then=then, error=error)
    with armed:
        response = gateway.post("/api/v1/usage", {"events": events})
    assert injector.fired
    assert response.status_code == status
    assert response.json()["error"] == code
    assert "disk full" not in response.content.decode()
    assert_unchanged(before)
    # And the same batch goes through afterwards, exactly once.
    assert gateway.post("/api/v1/usage", {"events": events}).json()["recorded"] == 6
    assert check_ledger() == []


# --- a bulk action on the User Management page ----------------------------------------


@pytest.fixture
def team(org, admin_user):
    """Three members of a funded org, each below the distribution floor."""
    fund(org, inference=4_000_000, embedding=4_000_000)
    return [
        member(org, f"{name}@acme.example", inference=100_000, embedding=100_000)
        for name in ("ava", "bob", "cy")
    ]


# A limit is written; the allocation changes (the ledger) fail.
LIMIT_WRITTEN = f"UPDATE {table(Allocation)}"


@pytest.mark.parametrize(("error", "status", "text"), FAILURES)
def test_a_bulk_action_failing_midway_changes_nobody(admin, team, error, status, text):
    before = snapshot()
    injector, armed = fail_midway(
        after=[LIMIT_WRITTEN], then=table(AllocationChange), error=error
    )
    with armed:
        response = admin.post(
            reverse("tokens:user_bulk"),
            {
                "action": "set_limit",
                "token_type": "inference",
                "limit": 400_000,
                "pk": [u.pk for u in team],
                "confirmed": "1",
            },
        )
    assert injector.fired
    assert_friendly(response, status, text)
    assert_unchanged(before)


# --- a distribution run ---------------------------------------------------------------


@pytest.mark.parametrize(("error", "status", "text"), FAILURES)
def test_a_distribution_run_failing_midway_changes_nothing(
    admin, team, org, error, status, text
):
    distribution.policy_ensure(organization=org)
    assert len(distribution.distribution_plan(organization=org).changes) >= 3
    before = snapshot()
    injector, armed = fail_midway(
        after=[f"INSERT INTO {table(DistributionRun)}", LIMIT_WRITTEN],
        then=table(AllocationChange),
        error=error,
    )
    with armed:
        response = admin.post(reverse("tokens:distribution_run"))
    assert injector.fired
    assert_friendly(response, status, text)
    assert_unchanged(before)
    assert not DistributionRun.objects.exists()


# --- an activation from the staff site ------------------------------------------------


@pytest.fixture
def pending(db):
    requester = UserFactory(organization=None, email="ceo@initech.example")
    UserFactory(organization=None, email="dev@initech.example")
    UserFactory(organization=None, email="ops@initech.example")
    return enterprise_request_submit(
        requester=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails="ceo@initech.example, dev@initech.example, ops@initech.example",
        admin_emails="ceo@initech.example",
        inference_tokens=4_000_000,
        embedding_tokens=4_000_000,
    )


@pytest.mark.parametrize(("error", "status", "text"), FAILURES)
def test_an_activation_failing_after_the_organization_is_created_leaves_nothing(
    sales_client, pending, error, status, text
):
    sales_client.raise_request_exception = False
    before = snapshot()
    injector, armed = fail_midway(
        after=[
            f"INSERT INTO {table(Organization)}",
            f"INSERT INTO {table(Purchase)}",
            LIMIT_WRITTEN,
        ],
        then=table(AllocationChange),
        error=error,
    )
    with armed:
        response = sales_client.post(
            reverse("admin:accounts_enterpriseaccountrequest_changelist"),
            {
                "action": "activate_requests",
                "_selected_action": [str(pending.pk)],
                "index": 0,
                "apply": "1",
            },
        )
    assert injector.fired
    assert_friendly(response, status, text)
    assert_unchanged(before)
    assert not Organization.objects.filter(name="Initech").exists()
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING


def test_the_snapshot_sees_a_write(metered):
    """The helper is not blind: a successful batch changes it."""
    gateway, events = metered
    before = snapshot()
    gateway.post("/api/v1/usage", {"events": events})
    changed = {k for k, v in snapshot().items() if v != before[k]}
    assert {"usage", "counters", "daily", "holds"} <= changed
