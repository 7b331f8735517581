"""The gateway API (docs/gateway-api.md): /api/v1/, JSON in, JSON out, service-key
authentication. The GenAI gateway asks here whether a user may spend tokens and
reports what was spent; the rules are the metering services' (tokens/services/
metering/), this module only reads requests and writes answers.

Its OpenAPI document is generated from ``api/gateway/schemas.py`` and served at
GET /api/v1/openapi.json. Every refusal is ``{"error": code, "detail": text, …}``
(api/errors.py); cookie sessions are not accepted (no view looks at
``request.user``).
"""

import json
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query
from ninja.responses import NinjaJSONEncoder
from ninja.security import HttpBearer

from accounts.services import service_key_authenticate
from api import errors
from api.base import JsonApi, component
from api.gateway import schemas as s
from api.gateway.body import JsonBody, storable
from tokens.services import metering

SEND_A_KEY = "Send a service key: Authorization: Bearer <key>."


class ServiceKeyAuth(HttpBearer):
    """``Authorization: Bearer <service key>``: the key, or a 401 that says why."""

    def __call__(self, request: HttpRequest):
        scheme, _sep, secret = request.headers.get("Authorization", "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or not storable(secret):
            raise errors.ApiError(401, "unauthorized", SEND_A_KEY)
        return self.authenticate(request, secret)

    def authenticate(self, request: HttpRequest, token: str):
        key = service_key_authenticate(token)
        if key is None:
            raise errors.ApiError(
                401, "unauthorized", "The service key is unknown or revoked."
            )
        return key


# Refusals every operation may answer, and those of operations that take a body:
# in components.responses, so each is described once.
SHARED = {"401": s.Unauthorized, "503": s.ServiceUnavailable}
WITH_A_BODY = {"413": s.PayloadTooLarge, "415": s.UnsupportedMediaType}
RESPONSES = {
    "InvalidRequest": "Invalid request.",
    "Unauthorized": "No valid service key.",
    "UnsupportedMediaType": "Not sent as application/json.",
    "PayloadTooLarge": "The body is too large.",
    "ServiceUnavailable": "The service cannot answer now; nothing was changed.",
    "MethodNotAllowed": "Any other method on a documented path (not listed per "
    "operation: an operation is its method).",
    "NotFound": "Any path under /api/ that is not documented here.",
}
DESCRIPTION = """\
JSON in, JSON out. Authenticate with `Authorization: Bearer <service key>` (created \
in /staff/ or with `manage.py create_service_key`; the secret is shown once and \
stored only hashed). A key bound to an organization acts only for that \
organization's users, and any other user (of another organization or of none) is \
answered exactly as an email without an account (404 `unknown_user`, same body), so \
such a key cannot tell which emails have an account; an unbound key (the platform \
gateway) acts for any user. Cookie sessions are not accepted.

Every error body is `{"error": code, "detail": text, …}`, never an HTML page or a \
stack trace. Besides the responses listed per operation, any other HTTP method on a \
documented path answers 405 (`components.responses.MethodNotAllowed`, with an Allow \
header) and any other path under /api/ answers 404 \
(`components.responses.NotFound`). With the database down the API answers 503, \
never a success.

This document is generated from the typed schemas of the code (api/gateway/\
schemas.py); tests/tokens/test_openapi.py calls every operation for every documented \
status and tests/tokens/test_api_fuzz.py runs schemathesis against it."""


class GatewayApi(JsonApi):
    def get_openapi_schema(self, *args, **kwargs) -> dict[str, Any]:
        document = super().get_openapi_schema(*args, **kwargs)
        document["jsonSchemaDialect"] = "https://spec.openapis.org/oas/3.1/dialect/base"
        document["info"]["summary"] = (
            "Authorize, record and query token usage for the GenAI gateway."
        )
        document["servers"] = [{"url": "/"}]
        document["security"] = [{"serviceKey": []}]
        document["components"]["securitySchemes"] = {
            "serviceKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "A service key: `eak_<prefix>_<secret>`.",
            }
        }
        events = document["components"]["schemas"]["UsageRequest"]["properties"]
        events["events"]["items"] = component(document, s.UsageEvent)
        responses = document["components"].setdefault("responses", {})
        for name, description in RESPONSES.items():
            ref = component(document, getattr(s, name))
            responses[name] = {
                "description": description,
                "content": {"application/json": {"schema": ref}},
            }
        responses["MethodNotAllowed"]["headers"] = {
            "Allow": {
                "description": "The method this path accepts.",
                "schema": {"type": "string"},
            }
        }
        for item in document["paths"].values():
            for operation in item.values():
                _describe(operation)
        document["paths"][self.root_path + "openapi.json"] = {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "description": "Public: it is the contract, no secret.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document of this API.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        }
        return document

    @property
    def root_path(self) -> str:
        return self.get_root_path({})


def openapi_document() -> dict[str, Any]:
    """The document GET /api/v1/openapi.json serves, as JSON data."""
    return json.loads(
        json.dumps(gateway_api.get_openapi_schema(), cls=NinjaJSONEncoder)
    )


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _describe(operation: dict[str, Any]) -> None:
    """The shared refusals by reference; the others described by their schema's
    text; no per-operation security (the document's applies)."""
    operation.pop("security", None)
    responses = operation["responses"] = {
        str(k): v for k, v in operation["responses"].items()
    }
    for status, answer in responses.items():
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        name = (schema or {}).get("$ref", "").rsplit("/", 1)[-1]
        if name in RESPONSES:
            responses[status] = _ref(name)
        elif (model := getattr(s, name, None)) and model.__doc__:
            answer["description"] = " ".join(model.__doc__.split())
    shared = SHARED | (WITH_A_BODY if "requestBody" in operation else {})
    for status, model in shared.items():
        responses[status] = _ref(model.__name__)


gateway_api = GatewayApi(
    title="Enterprise Account gateway API",
    version="1.0.0",
    description=DESCRIPTION,
    urls_namespace="gateway_api",
    docs_url=None,
    openapi_url="/openapi.json",
    auth=ServiceKeyAuth(),
)
errors.install(gateway_api)


@gateway_api.post(
    "/authorize",
    response={
        200: s.Authorization,
        400: s.InvalidRequest,
        402: s.InsufficientTokens,
        403: s.AuthorizeForbidden,
        404: s.AuthorizeNotFound,
        409: s.Conflict,
    },
    operation_id="authorize",
    url_name="authorize",
    summary="Reserve tokens for a user before a model call",
)
def authorize(request: HttpRequest, body: JsonBody[s.AuthorizeRequest]):
    """Grants a hold when used + held + tokens ≤ the user's limit this month;
    concurrent requests can never together exceed it. The same request_id returns
    the same hold."""
    return metering.authorize(
        key=request.auth,
        user_email=body.user,
        model_key=body.model,
        token_type=body.token_type,
        tokens=body.tokens,
        request_id=body.request_id,
    ).as_dict()


@gateway_api.post(
    "/usage",
    response={200: s.UsageResult, 400: s.InvalidRequest},
    operation_id="usage",
    url_name="usage",
    summary="Record what model calls actually used",
)
def usage(request: HttpRequest, body: JsonBody[s.UsageRequest]):
    """At most 1,000 events per request, each recorded exactly once in its scope
    (see event_id), in one transaction. Usage with a hold_id settles the hold and is
    charged to the organization that opened it; usage without a hold is charged to
    the user's organization and recorded even past the limit (overage)."""
    return metering.usage_record(key=request.auth, events=body.events).as_dict()


@gateway_api.get(
    "/balance",
    response={
        200: s.Balance,
        400: s.InvalidRequest,
        403: s.UserForbidden,
        404: s.UnknownUser,
    },
    operation_id="balance",
    url_name="balance",
    summary="A user's tokens this month",
)
def balance(
    request: HttpRequest,
    user: Annotated[
        s.Email,
        Query(example="ava@acme.example", description="The user's email (any case)."),
    ],
    token_type: Annotated[
        s.TokenTypeName,
        Query(example="inference", description="Inference or embedding tokens."),
    ],
):
    return metering.balance(key=request.auth, user_email=user, token_type=token_type)


@gateway_api.post(
    "/holds/{uuid:hold_id}/release",
    response={200: s.Released, 404: s.HoldNotFound},
    operation_id="holdRelease",
    url_name="hold_release",
    summary="Give a hold's tokens back without recording usage",
)
def hold_release(
    request: HttpRequest,
    hold_id: Annotated[
        s.HoldId, Path(example=s.A_HOLD, description="Lowercase, with hyphens.")
    ],
):
    """No body. Releasing a hold that is no longer open returns 0."""
    return {"released": metering.hold_release(key=request.auth, hold_id=hold_id)}
