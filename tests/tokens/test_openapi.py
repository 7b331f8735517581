"""The gateway's OpenAPI 3.1 document, generated from api/gateway/schemas.py and
served at /api/v1/openapi.json, is checked against the code: it is valid OpenAPI
3.1; its paths and methods are exactly the API's URL patterns and the methods their
operations accept (a route added outside the API fails here); the request schemas
accept exactly what the code accepts (two-way, over boundary values: the usage
events are checked by the service, not by the schema that documents them); and a
series of real calls producing every documented status of every operation answers
bodies that validate against the documented schema of that status."""

import datetime as dt
import json
import re
import uuid
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from accounts.services import service_key_create, service_key_revoke
from api.base import not_found
from api.gateway import gateway_api, openapi_document
from tests.conftest import ApiClient
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund, give
from tokens.models import UsageEvent

DOC = openapi_document()
JSON = "application/json"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

AUTHORIZE = "/api/v1/authorize"
USAGE = "/api/v1/usage"
BALANCE = "/api/v1/balance"
RELEASE = "/api/v1/holds/{hold_id}/release"
OPENAPI = "/api/v1/openapi.json"


# --- the document ---------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1():
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC, cls=OpenAPIV31SpecValidator)


def test_the_document_is_served_publicly_as_json(db):
    response = Client().get(OPENAPI)
    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    assert json.loads(response.content) == DOC
    refused = Client().post(OPENAPI)
    assert refused.status_code == 405
    assert refused.json()["error"] == "method_not_allowed"
    assert refused["Allow"] == "GET"


# --- paths and methods against the URL patterns ---------------------------------------


def _api_routes() -> dict[str, URLPattern]:
    """{OpenAPI path: pattern} for every URL pattern of the project under /api/,
    except the JSON 404 catch-all and the admin API (/api/v1/admin/, its own
    generated document: tests/api/)."""
    routes: dict[str, URLPattern] = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if route.startswith("api/v1/admin/"):
                continue
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif route.lstrip("^").startswith("api/"):
                if pattern.callback is not_found:
                    continue
                assert "(" not in route and "^" not in route, (
                    f"{route}: give API endpoints path() routes so they can be "
                    "documented"
                )
                routes["/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)] = pattern

    walk(get_resolver().url_patterns, "")
    return routes


def _sample(path: str) -> str:
    return path.replace("{hold_id}", str(uuid.uuid4()))


def test_documented_paths_are_exactly_the_api_url_patterns():
    routes = _api_routes()
    assert set(DOC["paths"]) == set(routes), (
        "Every /api/ URL is an operation of the gateway API (api/gateway/): "
        f"undocumented {sorted(set(routes) - set(DOC['paths']))}, "
        f"documented but missing {sorted(set(DOC['paths']) - set(routes))}"
    )
    for path in DOC["paths"]:
        # Each documented path reaches its view, not the JSON 404 catch-all.
        assert resolve(_sample(path)).func is routes[path].callback


def _accepted_methods() -> dict[str, set[str]]:
    """{OpenAPI path: methods} of the gateway API's operations."""
    accepted: dict[str, set[str]] = {"/api/v1/openapi.json": {"GET"}}
    for _prefix, router in gateway_api._routers:
        for route, path_view in router.path_operations.items():
            path = "/api/v1" + re.sub(r"\{(?:\w+:)?(\w+)\}", r"{\1}", route)
            for operation in path_view.operations:
                accepted.setdefault(path, set()).update(operation.methods)
    return accepted


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_documented_operations_are_the_methods_the_api_accepts(path):
    operations = {m: op for m, op in DOC["paths"][path].items() if m in METHODS}
    assert {m.upper() for m in operations} == _accepted_methods()[path]
    for operation in operations.values():
        responses = set(operation["responses"])
        takes_a_body = "requestBody" in operation
        assert ({"413", "415"} & responses) == (
            {"413", "415"} if takes_a_body else set()
        )
        if path != OPENAPI:
            assert {"200", "401", "503"} <= responses
            assert operation.get("security") != []


def test_every_operation_requires_the_bearer_service_key():
    assert DOC["security"] == [{"serviceKey": []}]
    scheme = DOC["components"]["securitySchemes"]["serviceKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    public = [
        path
        for path, item in DOC["paths"].items()
        for op in item.values()
        if isinstance(op, dict) and op.get("security") == []
    ]
    assert public == [OPENAPI]


# --- schema helpers -------------------------------------------------------------------


def _validator(schema: dict, *, formats: bool = True) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator whose #/components/… references resolve in
    the document."""
    return Draft202012Validator(
        {**schema, "components": DOC["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER if formats else None,
    )


def _response(node: dict) -> dict:
    ref = node.get("$ref", "")
    if ref.startswith("#/components/responses/"):
        return DOC["components"]["responses"][ref.rsplit("/", 1)[1]]
    return node


def _operation(method: str, path: str) -> dict:
    return DOC["paths"][path][method.lower()]


def _request_schema(name: str) -> Draft202012Validator:
    return _validator({"$ref": f"#/components/schemas/{name}"})


def _query_schema(method: str, path: str) -> Draft202012Validator:
    parameters = [
        p for p in _operation(method, path)["parameters"] if p["in"] == "query"
    ]
    return _validator(
        {
            "type": "object",
            "properties": {p["name"]: p["schema"] for p in parameters},
            "required": [p["name"] for p in parameters if p.get("required")],
        }
    )


def test_response_formats_are_asserted():
    checkers = Draft202012Validator.FORMAT_CHECKER.checkers
    assert {"date-time", "uuid"} <= set(checkers)


class Contract:
    """Checks each answer against the document and remembers which documented
    (method, path, status) it has seen."""

    def __init__(self):
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, response, method: str, path: str, *, component: str = ""):
        status = str(response.status_code)
        if component:
            documented = DOC["components"]["responses"][component]
        else:
            responses = _operation(method, path)["responses"]
            assert status in responses, (
                f"{method} {path} answered {status}, which is not documented: "
                f"{response.content[:300]!r}"
            )
            documented = _response(responses[status])
            self.seen.add((method, path, status))
        media = response["Content-Type"].split(";")[0]
        assert media in documented["content"], (method, path, status, media)
        body = json.loads(response.content)
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(documented["content"][media]["schema"]).iter_errors(
                body
            )
        ]
        assert not errors, f"{method} {path} {status}: {body}\n" + "\n".join(errors)
        for header in documented.get("headers", {}):
            assert response.has_header(header), (method, path, status, header)
        return body


# --- fixtures -------------------------------------------------------------------------

EMAIL = "ava@acme.example"
MISSING = object()  # a member left out of the body (None is sent as null)


@pytest.fixture
def world(db, org, other_org, service_key):
    fund(org)
    fund(other_org)
    ava = UserFactory(organization=org, email=EMAIL)
    give(ava, 1_000)
    give(ava, 500, "embedding")
    for email, changes in (
        ("banned@acme.example", {"is_banned": True}),
        ("unpaid@acme.example", {"is_paid": False}),
    ):
        UserFactory(organization=org, email=email, **changes)
    suspended = OrganizationFactory(name="Initrode", status="suspended")
    UserFactory(organization=suspended, email="sam@initrode.example")
    gpt = AIModelFactory(key="gpt", input_rate=1, output_rate=3)
    AIModelFactory(key="embed", token_type="embedding")
    AIModelFactory(key="globex-only").allowed_for.add(other_org)
    gpt.allowed_for.add(org)
    AIModelFactory(key="embed").allowed_for.add(org)
    _bound, bound_secret = service_key_create(
        actor=None, name="globex", organization=other_org
    )
    revoked, revoked_secret = service_key_create(actor=None, name="old")
    service_key_revoke(actor=None, key=revoked)
    return {
        "ava": ava,
        "gateway": ApiClient(service_key[1]),
        "bound": ApiClient(bound_secret),
        "revoked": ApiClient(revoked_secret),
        "anonymous": Client(),
    }


def ask(tokens=100, request_id=None, **over):
    return {
        "user": EMAIL,
        "model": "gpt",
        "token_type": "inference",
        "tokens": tokens,
        "request_id": request_id or uuid.uuid4().hex,
        **over,
    }


WHEN = timezone.now().replace(microsecond=0).isoformat()


def event(event_id=None, **over):
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "user": EMAIL,
        "model": "gpt",
        "token_type": "inference",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "occurred_at": WHEN,
        **over,
    }


def raw_post(path, body: str | bytes, *, content_type=JSON, client=None, headers):
    return (client or Client()).post(
        path, data=body, content_type=content_type, headers=headers
    )


def db_down():
    return mock.patch(
        "api.gateway.service_key_authenticate",
        side_effect=OperationalError("could not connect to server"),
    )


# --- every documented status, through the real API ----------------------------------


def test_every_documented_response_is_produced_and_matches_its_schema(world):
    c = Contract()
    gw, bound = world["gateway"], world["bound"]
    headers = gw.headers

    # authorize
    first = c.check(gw.post(AUTHORIZE, ask(300, "req-1")), "POST", AUTHORIZE)
    assert first["status"] == "open"
    again = c.check(gw.post(AUTHORIZE, ask(300, "req-1")), "POST", AUTHORIZE)
    assert again["hold_id"] == first["hold_id"]
    for body, status, code in [
        (ask(301, "req-1"), 409, "conflict"),
        (ask(10_000), 402, "insufficient_tokens"),
        (ask(user="banned@acme.example"), 403, "user_banned"),
        (ask(user="unpaid@acme.example"), 403, "user_not_paid"),
        (ask(user="sam@initrode.example"), 403, "forbidden"),
        (ask(model="globex-only"), 403, "model_not_allowed"),
        (ask(user="nobody@acme.example"), 404, "unknown_user"),
        (ask(model="nope"), 404, "unknown_model"),
        (ask(tokens=0), 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        (ask(user="a\x00b"), 400, "invalid_request"),
        (ask(request_id="\ud800"), 400, "invalid_request"),
    ]:
        response = gw.post(AUTHORIZE, body)
        assert (response.status_code, response.json()["error"]) == (status, code)
        c.check(response, "POST", AUTHORIZE)
    # A key bound to another organization: the user is unknown to it.
    assert bound.post(AUTHORIZE, ask()).json()["error"] == "unknown_user"
    c.check(bound.post(AUTHORIZE, ask()), "POST", AUTHORIZE)

    # errors every body-taking operation shares
    for path in (AUTHORIZE, USAGE):
        for response, status in [
            (raw_post(path, "{nope", headers=headers), 400),
            (raw_post(path, "[1, 2]", headers=headers), 400),
            (raw_post(path, '{"a": NaN}', headers=headers), 400),
            (raw_post(path, "[" * 100_000, headers=headers), 400),
            (world["anonymous"].post(path, {}, content_type=JSON), 401),
            (world["revoked"].post(path, {}), 401),
            (ApiClient("eak_x_not-a-real-secret").post(path, {}), 401),
            (raw_post(path, "{}", content_type="text/plain", headers=headers), 415),
        ]:
            assert response.status_code == status, (path, response.content)
            c.check(response, "POST", path)
        with db_down():
            c.check(gw.post(path, {}), "POST", path)
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100):
            response = gw.post(path, {"events": [event(prompt_excerpt="x" * 200)]})
        assert response.status_code == 413
        c.check(response, "POST", path)

    # usage
    hold = first["hold_id"]
    body = c.check(
        gw.post(
            USAGE,
            {
                "events": [
                    event("u1", hold_id=hold),
                    event("u1", hold_id=hold),
                    event("u1", prompt_tokens=11),
                    event("u2", user="nobody@acme.example"),
                    event("u3", model="nope"),
                    event("u4", hold_id=str(uuid.uuid4())),
                    event("u5", occurred_at="2026-13-01T00:00:00"),
                    "not an object",
                    event("u6", user="banned@acme.example"),
                ]
            },
        ),
        "POST",
        USAGE,
    )
    assert [r["status"] for r in body["results"]] == [
        "recorded",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "recorded",
    ]
    hidden = c.check(bound.post(USAGE, {"events": [event()]}), "POST", USAGE)
    assert hidden["results"][0]["error"] == "unknown_user"
    UserFactory(organization=None, email="solo@nowhere.example")
    forbidden = c.check(
        gw.post(USAGE, {"events": [event("solo", user="solo@nowhere.example")]}),
        "POST",
        USAGE,
    )
    assert forbidden["results"][0]["error"] == "forbidden"
    for events in ([], "x", [event(str(i)) for i in range(1_001)]):
        c.check(gw.post(USAGE, {"events": events}), "POST", USAGE)
    big = gw.post(USAGE, {"events": [event("big", prompt_tokens=2**64)]})
    assert big.status_code == 400
    c.check(big, "POST", USAGE)
    assert not UsageEvent.objects.filter(event_id="big").exists()

    # balance
    query = {"user": EMAIL, "token_type": "inference"}
    c.check(gw.get(BALANCE, query), "GET", BALANCE)
    for params, status in [
        ({"user": EMAIL}, 400),
        ({**query, "user": "a\x00b"}, 400),
        ({**query, "user": "banned@acme.example"}, 403),
        ({**query, "user": "unpaid@acme.example"}, 403),
        ({**query, "user": "sam@initrode.example"}, 403),
        ({**query, "user": "nobody@acme.example"}, 404),
    ]:
        response = gw.get(BALANCE, params)
        assert response.status_code == status, (params, response.content)
        c.check(response, "GET", BALANCE)
    c.check(bound.get(BALANCE, query), "GET", BALANCE)
    c.check(world["anonymous"].get(BALANCE, query), "GET", BALANCE)
    with db_down():
        c.check(gw.get(BALANCE, query), "GET", BALANCE)

    # release
    open_hold = gw.post(AUTHORIZE, ask(50)).json()["hold_id"]
    url = RELEASE.replace("{hold_id}", open_hold)
    assert c.check(gw.post(url), "POST", RELEASE) == {"released": 50}
    assert c.check(gw.post(url), "POST", RELEASE) == {"released": 0}
    for response, code in [
        (gw.post(RELEASE.replace("{hold_id}", str(uuid.uuid4()))), "unknown_hold"),
        (bound.post(url), "unknown_hold"),
        (gw.post(RELEASE.replace("{hold_id}", open_hold.upper())), "not_found"),
    ]:
        assert c.check(response, "POST", RELEASE)["error"] == code
    c.check(world["anonymous"].post(url), "POST", RELEASE)
    with db_down():
        c.check(gw.post(url), "POST", RELEASE)

    # the document itself
    c.check(world["anonymous"].get(OPENAPI), "GET", OPENAPI)

    documented = {
        (method.upper(), path, status)
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        if method in METHODS
        for status in op["responses"]
    }
    assert documented - c.seen == set(), "documented but never produced"


def test_other_methods_and_unknown_paths_answer_the_documented_json(world):
    c = Contract()
    gw = world["gateway"]
    release = RELEASE.replace("{hold_id}", str(uuid.uuid4()))
    for path, method, allowed in [
        (AUTHORIZE, "get", "POST"),
        (USAGE, "put", "POST"),
        (BALANCE, "post", "GET"),
        (release, "get", "POST"),
        (OPENAPI, "delete", "GET"),
    ]:
        response = getattr(gw.client, method)(path, headers=gw.headers)
        assert response.status_code == 405
        assert response["Allow"] == allowed
        c.check(response, method.upper(), path, component="MethodNotAllowed")
    for method in ("get", "post", "delete"):
        response = getattr(Client(), method)("/api/v2/authorize")
        assert response.status_code == 404
        c.check(response, method.upper(), "/api/v2/", component="NotFound")


def test_unhandled_errors_under_api_are_json_too(world):
    """Not documented (it must never happen): the 500 of /api/ is still JSON."""
    client = Client(raise_request_exception=False)
    with mock.patch("api.gateway.metering.balance", side_effect=RuntimeError("bug")):
        response = client.get(
            BALANCE,
            {"user": EMAIL, "token_type": "inference"},
            headers=world["gateway"].headers,
        )
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"


# --- the request schemas accept exactly what the code accepts -------------------------


def _status_and_schema_agree(valid: bool, response, method, path):
    Contract().check(response, method, path)
    assert (response.status_code != 400) == valid, (
        f"the document says {'valid' if valid else 'invalid'}, the API answered "
        f"{response.status_code}: {response.content[:300]!r}"
    )


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"tokens": 1},
        {"tokens": 10**12},
        {"tokens": 10**12 + 1},
        {"tokens": 0},
        {"tokens": -5},
        {"tokens": "100"},
        {"tokens": True},
        {"tokens": 1.5},
        {"tokens": None},
        {"token_type": "embedding", "model": "embed"},
        {"token_type": "training"},
        {"token_type": None},
        {"user": "AVA@ACME.EXAMPLE"},
        {"user": f"  {EMAIL}  "},
        {"user": "a" * 254},
        {"user": "a" * 255},
        {"user": ""},
        {"user": " \t\n"},
        {"user": "\x1c\x85\u3000"},
        {"user": "\ufeff"},
        {"user": 7},
        {"user": "a\x00"},
        {"model": "m" * 100},
        {"model": "m" * 101},
        {"model": ""},
        {"model": None},
        {"request_id": "r" * 128},
        {"request_id": "r" * 129},
        {"request_id": ""},
        {"request_id": " "},
        {"extra": "ignored"},
        {"user": MISSING},
        {"tokens": MISSING},
        {"request_id": MISSING},
        {"user": MISSING, "model": MISSING, "token_type": MISSING, "tokens": MISSING},
    ],
)
def test_authorize_schema_and_code_agree(world, over):
    body = {k: v for k, v in ask(**over).items() if v is not MISSING}
    valid = _request_schema("AuthorizeRequest").is_valid(body)
    response = world["gateway"].post(AUTHORIZE, body)
    _status_and_schema_agree(valid, response, "POST", AUTHORIZE)


@pytest.mark.parametrize(
    "params",
    [
        {"user": EMAIL, "token_type": "inference"},
        {"user": EMAIL.upper(), "token_type": "embedding"},
        {"user": f" {EMAIL} ", "token_type": "inference"},
        {"user": "nobody@acme.example", "token_type": "inference"},
        {"user": "a" * 255, "token_type": "inference"},
        {"user": "", "token_type": "inference"},
        {"user": "   ", "token_type": "inference"},
        {"user": "a\x00", "token_type": "inference"},
        {"user": EMAIL, "token_type": "training"},
        {"user": EMAIL},
        {"token_type": "inference"},
        {},
    ],
)
def test_balance_parameters_and_code_agree(world, params):
    valid = _query_schema("GET", BALANCE).is_valid(params)
    response = world["gateway"].get(BALANCE, params)
    _status_and_schema_agree(valid, response, "GET", BALANCE)


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"event_id": "e" * 128},
        {"event_id": "e" * 129},
        {"event_id": ""},
        {"event_id": " "},
        {"event_id": 5},
        {"user": "nobody@acme.example"},
        {"user": " "},
        {"user": None},
        {"user": MISSING},
        {"model": "nope"},
        {"model": ""},
        {"token_type": "training"},
        {"prompt_tokens": 0},
        {"prompt_tokens": -1},
        {"prompt_tokens": "5"},
        {"prompt_tokens": True},
        {"prompt_tokens": 1.5},
        {"prompt_tokens": None},
        {"prompt_tokens": MISSING},
        {"completion_tokens": None},
        {"completion_tokens": MISSING},
        {"completion_tokens": -1},
        {"completion_tokens": False},
        {"model": "embed", "token_type": "embedding", "completion_tokens": 3},
        {"model": "embed", "token_type": "embedding", "completion_tokens": 0},
        {"model": "embed", "token_type": "embedding", "completion_tokens": MISSING},
        {"occurred_at": "yesterday"},
        {"occurred_at": "2026-13-01T00:00:00Z"},
        {"occurred_at": "2020-01-01T00:00:00-23:59"},
        {"occurred_at": 5},
        {"occurred_at": None},
        {"occurred_at": MISSING},
        {"hold_id": None},
        {"hold_id": str(uuid.uuid4())},
        {"hold_id": "not-a-uuid"},
        {"hold_id": 5},
        {"application": "a" * 100},
        {"application": "a" * 101},
        {"application": 5},
        {"prompt_excerpt": "p", "response_excerpt": None},
        {"application": None},
        {"token_type": MISSING},
        {"event_id": MISSING},
        {"prompt_excerpt": 5},
        {"extra": {"nested": [1]}},
    ],
)
def test_usage_event_schema_and_code_agree(world, over):
    """An event the document calls valid is never rejected as invalid_event (it may
    be refused for its user, model or hold), and the other way round."""
    one = {k: v for k, v in event(**over).items() if v is not MISSING}
    valid = _request_schema("UsageEvent").is_valid(one)
    response = world["gateway"].post(USAGE, {"events": [one]})
    body = Contract().check(response, "POST", USAGE)
    result = body["results"][0]
    assert (result.get("error") != "invalid_event") == valid, result


@pytest.mark.parametrize("item", ["not an object", 5, None, []])
def test_a_usage_item_that_is_not_an_object_is_rejected_alone(world, item):
    assert not _request_schema("UsageEvent").is_valid(item)
    body = world["gateway"].post(USAGE, {"events": [item, event()]}).json()
    assert [r["status"] for r in body["results"]] == ["rejected", "recorded"]
    assert body["results"][0]["error"] == "invalid_event"


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"events": [event(user="nobody@acme.example")]}, True),
        ({"events": [event(str(i), user="x@y.z") for i in range(1_000)]}, True),
        ({"events": [event(str(i), user="x@y.z") for i in range(1_001)]}, False),
        ({"events": []}, False),
        ({"events": "x"}, False),
        ({"events": None}, False),
        ({}, False),
    ],
)
def test_usage_batch_schema_and_code_agree(world, body, valid):
    assert _request_schema("UsageRequest").is_valid(body) == valid
    response = world["gateway"].post(USAGE, body)
    _status_and_schema_agree(valid, response, "POST", USAGE)


def test_occurred_at_offsets_are_stored_in_utc(world):
    """±23:59 is legal ISO-8601 and beyond PostgreSQL's ±15:59: stored as UTC."""
    when = (timezone.now() - dt.timedelta(days=1)).replace(microsecond=0)
    far = when.astimezone(dt.timezone(-dt.timedelta(hours=23, minutes=59)))
    body = world["gateway"].post(
        USAGE, {"events": [event("tz", occurred_at=far.isoformat())]}
    )
    assert body.json()["recorded"] == 1
    assert UsageEvent.objects.get(event_id="tz").occurred_at == when
