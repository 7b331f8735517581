"""The gateway contract (docs/gateway-api.md), from the outside."""

import datetime as dt
import json
import uuid
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from accounts.services import service_key_create, service_key_revoke
from tests.conftest import ApiClient
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.models import AlertSettings, Hold, UsageCounter, UsageEvent

# Mid-month and ticking: holds, counters and usage of a test stay in one month
# (a run crossing a month's edge put the hold in one month and the usage in the next).
PINNED = dt.datetime(2026, 3, 16, 12, 0, tzinfo=dt.UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(PINNED)]

AUTHORIZE = "/api/v1/authorize"
USAGE = "/api/v1/usage"
BALANCE = "/api/v1/balance"


@pytest.fixture
def user(org):
    fund(org)
    user = UserFactory(organization=org, email="ava@acme.example")
    give(user, 1_000)
    give(user, 500, "embedding")
    return user


@pytest.fixture(autouse=True)
def models(db):
    return {
        "gpt": AIModelFactory(key="gpt", input_rate=1, output_rate=3),
        "embed": AIModelFactory(key="embed", token_type="embedding"),
    }


def ask(tokens=100, request_id="req-1", **over):
    return {
        "user": "ava@acme.example",
        "model": "gpt",
        "token_type": "inference",
        "tokens": tokens,
        "request_id": request_id,
        **over,
    }


WHEN = PINNED.isoformat()


def event(event_id="ev-1", **over):
    return {
        "event_id": event_id,
        "user": "ava@acme.example",
        "model": "gpt",
        "token_type": "inference",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "occurred_at": WHEN,
        **over,
    }


def counter(user, token_type="inference"):
    return UsageCounter.objects.get(user=user, token_type=token_type)


# --- authorize -----------------------------------------------------------------------


def test_authorize_grants_a_hold_and_reports_remaining(gateway, user):
    response = gateway.post(AUTHORIZE, ask(300))
    assert response.status_code == 200
    body = response.json()
    assert body["tokens"] == 300
    assert body["remaining"] == 700
    hold = Hold.objects.get(pk=body["hold_id"])
    assert hold.status == "open"
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert 590 <= (expires - timezone.now()).total_seconds() <= 600
    assert counter(user).held == 300


def test_authorize_same_request_id_returns_same_hold(gateway, user):
    first = gateway.post(AUTHORIZE, ask(300)).json()
    again = gateway.post(AUTHORIZE, ask(300)).json()
    assert again["hold_id"] == first["hold_id"]
    assert Hold.objects.count() == 1
    assert counter(user).held == 300


def test_authorize_request_id_reused_for_other_amount_is_conflict(gateway, user):
    gateway.post(AUTHORIZE, ask(300))
    response = gateway.post(AUTHORIZE, ask(301))
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert counter(user).held == 300


def test_authorize_refuses_over_remaining_with_402(gateway, user):
    gateway.post(AUTHORIZE, ask(900, "a"))
    response = gateway.post(AUTHORIZE, ask(101, "b"))
    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "insufficient_tokens"
    assert body["remaining"] == 100
    assert "100" in body["detail"]
    assert counter(user).held == 900
    assert Hold.objects.count() == 1


def test_authorize_exactly_the_remaining_is_granted(gateway, user):
    assert gateway.post(AUTHORIZE, ask(1_000)).status_code == 200


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        (
            lambda u: u.__class__.objects.filter(pk=u.pk).update(is_banned=True),
            403,
            "user_banned",
        ),
        (
            lambda u: u.__class__.objects.filter(pk=u.pk).update(is_paid=False),
            403,
            "user_not_paid",
        ),
    ],
)
def test_authorize_refuses_user_status(gateway, user, setup, status, code):
    setup(user)
    response = gateway.post(AUTHORIZE, ask())
    assert response.status_code == status
    assert response.json()["error"] == code
    assert not Hold.objects.exists()


def test_authorize_unknown_user_404(gateway, user):
    response = gateway.post(AUTHORIZE, ask(user="nobody@acme.example"))
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_user"


def test_authorize_unknown_and_inactive_model_404(gateway, user, models):
    assert gateway.post(AUTHORIZE, ask(model="nope")).json()["error"] == "unknown_model"
    models["gpt"].is_active = False
    models["gpt"].save()
    response = gateway.post(AUTHORIZE, ask())
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_model"


def test_authorize_model_not_allowed_for_org_403(gateway, user, org, models):
    models["embed"].allowed_for.add(org)  # the org now allows only "embed"
    response = gateway.post(AUTHORIZE, ask())
    assert response.status_code == 403
    assert response.json()["error"] == "model_not_allowed"


def test_authorize_user_of_suspended_org_forbidden(gateway, user, org):
    org.status = "suspended"
    org.save()
    response = gateway.post(AUTHORIZE, ask())
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"tokens": 0}, "tokens"),
        ({"tokens": -5}, "tokens"),
        ({"tokens": "100"}, "tokens"),
        ({"tokens": True}, "tokens"),
        ({"tokens": 1.5}, "tokens"),
        ({"token_type": "training"}, "token_type"),
        ({"user": ""}, "user"),
        ({"user": 7}, "user"),
        ({"model": None}, "model"),
        ({"request_id": "x" * 129}, "request_id"),
        ({"request_id": ""}, "request_id"),
    ],
)
def test_authorize_invalid_fields_400(gateway, user, over, field):
    response = gateway.post(AUTHORIZE, ask(**over))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in body["fields"]
    assert not Hold.objects.exists()


def test_authorize_missing_fields_400(gateway, user):
    response = gateway.post(AUTHORIZE, {})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {
        "user",
        "model",
        "token_type",
        "tokens",
        "request_id",
    }


def test_invalid_json_and_wrong_shape_400(gateway, user):
    raw = Client().post(
        AUTHORIZE,
        data="{not json",
        content_type="application/json",
        headers=gateway.headers,
    )
    assert raw.status_code == 400
    assert raw.json()["error"] == "invalid_request"
    assert gateway.post(AUTHORIZE, [1, 2]).status_code == 400


def test_wrong_content_type_415(gateway, user):
    response = Client().post(AUTHORIZE, data=ask(), headers=gateway.headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_get_on_authorize_is_405_json(gateway):
    response = gateway.get(AUTHORIZE)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_unknown_api_path_is_json_404(gateway):
    response = gateway.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- authentication --------------------------------------------------------------


def test_no_key_wrong_key_and_revoked_key_401(user):
    assert (
        Client().post(AUTHORIZE, ask(), content_type="application/json").status_code
        == 401
    )
    wrong = ApiClient("eak_000000000000_not-a-real-secret")
    assert wrong.post(AUTHORIZE, ask()).json()["error"] == "unauthorized"
    key, secret = service_key_create(actor=None, name="old")
    service_key_revoke(actor=None, key=key)
    assert ApiClient(secret).post(AUTHORIZE, ask()).status_code == 401
    assert not Hold.objects.exists()


def test_cookie_session_is_not_accepted(admin_client, user):
    response = admin_client.post(AUTHORIZE, ask(), content_type="application/json")
    assert response.status_code == 401


def test_key_bound_to_another_org_does_not_know_the_user(user, other_org):
    _key, secret = service_key_create(actor=None, name="globex", organization=other_org)
    client = ApiClient(secret)
    assert client.post(AUTHORIZE, ask()).json()["error"] == "unknown_user"
    assert (
        client.get(
            BALANCE, {"user": "ava@acme.example", "token_type": "inference"}
        ).status_code
        == 404
    )
    result = client.post(USAGE, {"events": [event()]}).json()
    assert result["results"][0]["error"] == "unknown_user"
    assert not UsageEvent.objects.exists()


def test_key_bound_to_own_org_works(user, org):
    _key, secret = service_key_create(actor=None, name="acme", organization=org)
    assert ApiClient(secret).post(AUTHORIZE, ask()).status_code == 200


def test_service_key_secret_is_stored_only_hashed(db):
    key, secret = service_key_create(actor=None, name="k")
    key.refresh_from_db()
    assert secret not in (key.digest, key.prefix)
    assert len(key.digest) == 64


# --- usage -----------------------------------------------------------------------


def test_usage_records_charges_at_model_rates_rounded_up(gateway, user, models):
    models["gpt"].input_rate = "0.15"
    models["gpt"].output_rate = "0.6"
    models["gpt"].save()
    response = gateway.post(
        USAGE, {"events": [event(prompt_tokens=101, completion_tokens=7)]}
    )
    assert response.status_code == 200
    assert response.json() == {
        "results": [{"event_id": "ev-1", "status": "recorded"}],
        "recorded": 1,
        "duplicates": 0,
        "rejected": 0,
    }
    recorded = UsageEvent.objects.get()
    # 101 × 0.15 + 7 × 0.6 = 19.35 → 20
    assert recorded.tokens == 20
    assert str(recorded.input_rate) == "0.1500"
    assert counter(user).used == 20


def test_usage_duplicate_and_conflict(gateway, user):
    gateway.post(USAGE, {"events": [event()]})
    again = gateway.post(USAGE, {"events": [event(), event(prompt_tokens=11)]}).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "rejected"]
    assert again["results"][1]["error"] == "conflict"
    assert UsageEvent.objects.count() == 1
    assert counter(user).used == 25


def test_usage_replay_is_a_duplicate_even_after_the_user_was_banned(gateway, user):
    assert gateway.post(USAGE, {"events": [event()]}).json()["recorded"] == 1
    user.is_banned = True
    user.save(update_fields=["is_banned"])
    again = gateway.post(USAGE, {"events": [event(), event("ev-2")]}).json()
    assert again["results"][0] == {"event_id": "ev-1", "status": "duplicate"}
    # A new event of the banned user is still recorded (docs/gateway-api.md, Rules).
    assert again["results"][1]["status"] == "recorded"
    assert UsageEvent.objects.count() == 2
    assert counter(user).used == 50


def test_usage_replay_naming_a_model_since_removed_is_a_duplicate(
    gateway, user, models
):
    gateway.post(USAGE, {"events": [event()]})
    models["gpt"].key = "gpt-renamed"
    models["gpt"].save()
    body = gateway.post(USAGE, {"events": [event()]}).json()
    assert body["results"] == [{"event_id": "ev-1", "status": "duplicate"}]
    assert counter(user).used == 25


def test_usage_event_id_of_another_org_is_refused_without_revealing_it(
    gateway, user, other_org
):
    gateway.post(USAGE, {"events": [event()]})
    _key, secret = service_key_create(actor=None, name="globex", organization=other_org)
    body = ApiClient(secret).post(USAGE, {"events": [event()]}).json()
    assert body["results"][0]["status"] == "rejected"
    assert body["results"][0]["error"] == "unknown_user"
    assert UsageEvent.objects.count() == 1


def test_usage_duplicate_costs_one_more_query_than_a_fresh_batch(gateway, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    gateway.post(USAGE, {"events": [event("warm")]})
    with CaptureQueriesContext(connection) as fresh:
        gateway.post(USAGE, {"events": [event("ev-1")]})
    with CaptureQueriesContext(connection) as replay:
        body = gateway.post(USAGE, {"events": [event("ev-1")]}).json()
    assert body["duplicates"] == 1
    sql = [q["sql"] for q in fresh.captured_queries]
    # The fresh batch never looks events up before inserting them.
    assert not any(
        s.startswith("SELECT") and "payload_digest" in s.split("FROM")[0] for s in sql
    )
    assert any(
        "payload_digest" in q["sql"].split("FROM")[0]
        for q in replay.captured_queries
        if q["sql"].startswith("SELECT")
    )


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        # escapes of a NUL and of a lone surrogate (either case)
        (b'"ava\\u0000"', False),
        (b'"\\uD800x"', False),
        # the same text arriving unescaped: UTF-8 of a surrogate (which Python's
        # JSON decoder lets through) and UTF-16
        ('"\ud800"'.encode("utf-8", "surrogatepass"), False),
        # a literal backslash before "u0000" is plain text, and so is non-ASCII
        (b'"back\\\\u0000slash"', True),
        ('"caf\u00e9 \u00fc"'.encode(), True),
    ],
)
def test_usage_body_text_a_database_cannot_store_is_refused(gateway, user, raw, ok):
    body = (
        b'{"events": [{"event_id": "ev-1", "user": "ava@acme.example", '
        b'"model": "gpt", "token_type": "inference", "prompt_tokens": 1, '
        b'"completion_tokens": 1, "occurred_at": "' + WHEN.encode() + b'", '
        b'"application": ' + raw + b"}]}"
    )
    response = gateway.client.post(
        USAGE, body, content_type="application/json", headers=gateway.headers
    )
    if ok:
        assert response.json()["recorded"] == 1
        stored = UsageEvent.objects.get().application
        assert stored == json.loads(raw)
    else:
        assert response.status_code == 400
        assert "NUL characters or unpaired surrogates" in response.json()["detail"]
        assert not UsageEvent.objects.exists()


def test_usage_body_in_utf16_with_a_lone_surrogate_is_refused(gateway, user):
    text = json.dumps({"events": [event(application="\ud800")]})
    body = text.replace("\\ud800", "\ud800").encode("utf-16", "surrogatepass")
    response = gateway.client.post(
        USAGE, body, content_type="application/json", headers=gateway.headers
    )
    assert response.status_code == 400
    assert not UsageEvent.objects.exists()


def test_usage_repeat_inside_one_batch(gateway, user):
    body = gateway.post(
        USAGE, {"events": [event(), event(), event(prompt_tokens=1)]}
    ).json()
    assert [r["status"] for r in body["results"]] == [
        "recorded",
        "duplicate",
        "rejected",
    ]
    assert counter(user).used == 25


def test_usage_settles_hold_for_less_than_reserved(gateway, user):
    hold = gateway.post(AUTHORIZE, ask(500)).json()["hold_id"]
    gateway.post(USAGE, {"events": [event(hold_id=hold)]})
    c = counter(user)
    assert (c.used, c.held) == (25, 0)
    assert Hold.objects.get().status == "settled"
    assert (
        gateway.get(
            BALANCE, {"user": "ava@acme.example", "token_type": "inference"}
        ).json()["remaining"]
        == 975
    )


def test_usage_settles_hold_for_more_than_reserved(gateway, user):
    hold = gateway.post(AUTHORIZE, ask(10)).json()["hold_id"]
    gateway.post(
        USAGE,
        {"events": [event(hold_id=hold, prompt_tokens=100, completion_tokens=100)]},
    )
    c = counter(user)
    assert (c.used, c.held) == (400, 0)


def test_usage_without_hold_may_exceed_limit_then_authorize_refused(gateway, user):
    gateway.post(USAGE, {"events": [event(prompt_tokens=1_000, completion_tokens=100)]})
    balance = gateway.get(
        BALANCE, {"user": "ava@acme.example", "token_type": "inference"}
    ).json()
    assert balance["used"] == 1_300
    assert balance["remaining"] == 0
    assert balance["overage"] == 300
    response = gateway.post(AUTHORIZE, ask(1))
    assert response.status_code == 402
    assert response.json()["remaining"] == 0


def test_usage_against_expired_hold_records_and_releases(gateway, user):
    hold_id = gateway.post(AUTHORIZE, ask(500)).json()["hold_id"]
    Hold.objects.filter(pk=hold_id).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    # The next authorization expires it lazily.
    assert gateway.post(AUTHORIZE, ask(900, "req-2")).status_code == 200
    assert Hold.objects.get(pk=hold_id).status == "expired"
    gateway.post(USAGE, {"events": [event(hold_id=hold_id)]})
    c = counter(user)
    assert (c.used, c.held) == (25, 900)


def test_usage_rejections_per_event(gateway, user):
    events = [
        event("a", user="nobody@acme.example"),
        event("b", model="nope"),
        event("c", token_type="training"),
        event("d", prompt_tokens=-1),
        event("e", occurred_at="yesterday"),
        event("f", occurred_at=(timezone.now() + dt.timedelta(hours=1)).isoformat()),
        event("g", hold_id="not-a-uuid"),
        event("h", hold_id=str(uuid.uuid4())),
        event("i", model="embed", token_type="embedding", completion_tokens=3),
        event("x" * 129),
        event("j", application="a" * 101),
        "not an object",
        event("ok"),
    ]
    body = gateway.post(USAGE, {"events": events}).json()
    errors = [r.get("error") for r in body["results"]]
    assert errors == [
        "unknown_user",
        "unknown_model",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_hold",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        None,
    ]
    assert body["recorded"] == 1
    assert body["rejected"] == 12
    assert UsageEvent.objects.count() == 1


def test_usage_records_banned_users_usage(gateway, user):
    """What happened is always recorded, even for a user banned meanwhile."""
    user.__class__.objects.filter(pk=user.pk).update(is_banned=True)
    assert gateway.post(USAGE, {"events": [event()]}).json()["recorded"] == 1


def test_usage_batch_over_1000_is_400(gateway, user):
    events = [event(f"e{i}") for i in range(1_001)]
    response = gateway.post(USAGE, {"events": events})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": "x"}])
def test_usage_wrong_body_shape_400(gateway, user, body):
    response = gateway.post(USAGE, body)
    assert response.status_code == 400
    assert "events" in response.json()["fields"]


def test_usage_excerpts_stored_only_when_org_allows(gateway, user, org):
    gateway.post(USAGE, {"events": [event("a", prompt_excerpt="secret prompt")]})
    assert UsageEvent.objects.get(event_id="a").prompt_excerpt == ""
    org.store_prompt_excerpts = True
    org.save()
    gateway.post(
        USAGE, {"events": [event("b", prompt_excerpt="p" * 3000, response_excerpt="r")]}
    )
    stored = UsageEvent.objects.get(event_id="b")
    assert len(stored.prompt_excerpt) == 2000
    assert stored.response_excerpt == "r"


def test_usage_query_count_is_constant_in_batch_size(
    gateway, user, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def run(n, start):
        events = [
            event(
                f"q{start + i}",
                occurred_at=(timezone.now() - dt.timedelta(minutes=i)).isoformat(),
            )
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            assert gateway.post(USAGE, {"events": events}).json()["recorded"] == n
        return len(ctx.captured_queries)

    # Alerts off: the larger batch would reach a threshold, and firing an alert
    # is one INSERT more, once per threshold and month (docs/forecasts.md); the
    # read that decides it still runs in every batch.
    AlertSettings.objects.create(
        organization_id=user.organization_id, org_enabled=False, user_enabled=False
    )
    run(1, 0)  # warm the counters and rollups
    assert run(10, 100) == run(500, 1_000)


# --- balance and release ------------------------------------------------------------


def test_balance_reports_limit_used_held(gateway, user):
    gateway.post(AUTHORIZE, ask(100))
    gateway.post(USAGE, {"events": [event()]})
    body = gateway.get(
        BALANCE, {"user": "AVA@acme.example", "token_type": "inference"}
    ).json()
    assert body == {
        "period": timezone.now().strftime("%Y-%m"),
        "limit": 1_000,
        "used": 25,
        "held": 100,
        "remaining": 875,
        "overage": 0,
        "org_remaining": 10_000_000 - 125,
    }


def test_balance_invalid_and_unknown(gateway, user):
    assert gateway.get(BALANCE, {"user": "ava@acme.example"}).json()["fields"] == {
        "token_type": "required"
    }
    assert gateway.get(
        BALANCE, {"user": "ava@acme.example", "token_type": "training"}
    ).json()["fields"] == {"token_type": "one of: embedding, inference"}
    assert (
        gateway.get(BALANCE, {"user": "x@y.z", "token_type": "inference"}).status_code
        == 404
    )


def test_release_returns_tokens_once(gateway, user):
    hold = gateway.post(AUTHORIZE, ask(300)).json()["hold_id"]
    first = gateway.post(f"/api/v1/holds/{hold}/release")
    assert first.status_code == 200
    assert first.json() == {"released": 300}
    assert counter(user).held == 0
    assert gateway.post(f"/api/v1/holds/{hold}/release").json() == {"released": 0}


def test_release_unknown_or_foreign_hold_404(gateway, user, other_org):
    assert gateway.post(f"/api/v1/holds/{uuid.uuid4()}/release").status_code == 404
    hold = gateway.post(AUTHORIZE, ask(300)).json()["hold_id"]
    _key, secret = service_key_create(actor=None, name="globex", organization=other_org)
    response = ApiClient(secret).post(f"/api/v1/holds/{hold}/release")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_hold"
    assert counter(user).held == 300


# --- faults --------------------------------------------------------------------------


def test_database_down_is_503_json_and_nothing_recorded(gateway, user):
    with mock.patch(
        "tokens.services.metering.usage._insert_events",
        side_effect=OperationalError("server closed the connection unexpectedly"),
    ):
        response = gateway.post(USAGE, {"events": [event()]})
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    assert not UsageEvent.objects.exists()


def test_transaction_failing_three_times_is_503(gateway, user):
    class Deadlock(Exception):
        sqlstate = "40P01"

    error = OperationalError("deadlock detected")
    error.__cause__ = Deadlock()
    with mock.patch(
        "tokens.services.metering.holds._ensure_counters", side_effect=error
    ) as m:
        response = gateway.post(AUTHORIZE, ask())
    assert response.status_code == 503
    assert m.call_count == 3
    assert not Hold.objects.exists()


def test_unreachable_database_at_authentication_is_503(gateway, user):
    with mock.patch(
        "api.gateway.service_key_authenticate",
        side_effect=OperationalError("could not connect to server"),
    ):
        response = gateway.post(AUTHORIZE, ask())
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"


@pytest.mark.parametrize(
    ("call", "fields"),
    [
        (
            lambda gw: gw.post(AUTHORIZE, {}),
            {
                "user": "required",
                "model": "required",
                "token_type": "required",
                "tokens": "required",
                "request_id": "required",
            },
        ),
        (lambda gw: gw.post(AUTHORIZE, ask(tokens=0)), {"tokens": "at least 1"}),
        (
            lambda gw: gw.post(AUTHORIZE, ask(tokens=10**12 + 1)),
            {"tokens": "at most 1000000000000"},
        ),
        (lambda gw: gw.post(AUTHORIZE, ask(tokens="5")), {"tokens": "an integer"}),
        (lambda gw: gw.post(AUTHORIZE, ask(tokens=True)), {"tokens": "an integer"}),
        (lambda gw: gw.post(AUTHORIZE, ask(user=7)), {"user": "a string"}),
        (
            lambda gw: gw.post(AUTHORIZE, ask(user=" \t")),
            {"user": "required: a non-empty string"},
        ),
        (
            lambda gw: gw.post(AUTHORIZE, ask(model="m" * 101)),
            {"model": "at most 100 characters"},
        ),
        (
            lambda gw: gw.post(AUTHORIZE, ask(token_type="training")),
            {"token_type": "one of: embedding, inference"},
        ),
        (lambda gw: gw.post(USAGE, {"events": "x"}), {"events": "a list"}),
        (lambda gw: gw.post(USAGE, {"events": []}), {"events": "at least 1 (got 0)"}),
        (
            lambda gw: gw.post(
                USAGE, {"events": [event(str(i)) for i in range(1_001)]}
            ),
            {"events": "at most 1000 (got 1001)"},
        ),
        (
            lambda gw: gw.get(BALANCE, {"user": "a\x00", "token_type": "inference"}),
            {"user": "text without NUL characters"},
        ),
    ],
)
def test_invalid_fields_are_named_in_words(gateway, user, call, fields):
    """A request that does not fit its schema: 400, every bad field named with what
    it must be (api/errors.py, PHRASES), nothing saved."""
    response = call(gateway)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "Some fields are missing or invalid.",
        "fields": fields,
    }
    assert not Hold.objects.exists()
    assert not UsageEvent.objects.exists()
