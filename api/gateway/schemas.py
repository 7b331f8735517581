"""The gateway API's typed schemas: what a request must be and what each answer is.
The OpenAPI document (GET /api/v1/openapi.json) is generated from these classes;
docs/gateway-api.md explains them in prose.

Request text is checked in Python (``_storable_text``): not blank as ``str.strip()``
sees it, no NUL, no unpaired surrogate. The documented ``pattern`` says the same for
clients and is not run again here.
"""

import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from pydantic_core import PydanticCustomError

from tokens.models import TOKEN_TYPES
from tokens.services.metering import FUTURE_SKEW, MAX_BATCH, MAX_ID

MAX_TOKENS = 10**12
NOTHING_BUT_NUL = r"^[^\u0000]*$"
# Some character that is neither NUL nor whitespace (as Python's str.strip() sees it).
NOT_BLANK = (
    r"^[^\u0000]*[^\u0000\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029"
    r"\u202f\u205f\u3000][^\u0000]*$"
)
TokenTypeName = Annotated[
    Literal[tuple(sorted(TOKEN_TYPES))],
    Field(description="The kind of tokens: each has its own pool and limits."),
]


def _storable_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "required: a non-empty string")
    if "\x00" in value:
        raise PydanticCustomError("nul", "text without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "surrogate", "text without unpaired surrogates"
        ) from None
    return value


def Text(max_length: int, description: str) -> Any:
    """A non-blank string of at most ``max_length`` characters."""
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=max_length,
            description=description,
            json_schema_extra={"pattern": NOT_BLANK},
        ),
        AfterValidator(_storable_text),
    ]


Email = Text(254, "The user's email (any case).")
HoldId = Annotated[
    uuid.UUID,
    Field(
        description="Lowercase, with hyphens.",
        json_schema_extra={
            "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        },
    ),
]
A_HOLD = "0b9a3c5e-6f1d-4e2a-9c47-5d8e2f1a7b36"


# --- requests -------------------------------------------------------------------------


class AuthorizeRequest(BaseModel):
    """Other members are ignored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": "ava@acme.example",
                    "model": "gpt",
                    "token_type": "inference",
                    "tokens": 100,
                    "request_id": "req-0001",
                }
            ]
        }
    )

    user: Email
    model: Text(100, "The key of an active model.")
    token_type: TokenTypeName
    tokens: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=MAX_TOKENS,
            description="Tokens to reserve: a JSON integer literal (not 1.0, not a "
            "string, not a boolean).",
        ),
    ]
    request_id: Text(
        MAX_ID,
        "The caller's id for this request: the same id (with the same user, type "
        "and tokens) returns the same hold; with other values it is a 409.",
    )


def _text(description: str = "", *, format: str = "", **constraints) -> Any:
    """A documented string field without NUL (and of ``format``)."""
    extra = {"pattern": NOTHING_BUT_NUL} | ({"format": format} if format else {})
    return Field(
        description=description or None, json_schema_extra=extra, **constraints
    )


class UsageEvent(BaseModel):
    """One model call. An event that does not fit this schema is rejected on its own
    (status `rejected`, error `invalid_event`) and the others in the batch are still
    recorded; except text with a NUL character or a token count whose charge does not
    fit 64 bits: those refuse the whole request with 400 and nothing is recorded.
    Other members are ignored (but are part of the payload compared for
    duplicates)."""

    # Each event is checked by the service on its own (tokens/services/metering/
    # events.py), so that one bad event does not refuse its batch; this class
    # documents that check, and tests/tokens/test_openapi.py proves both agree.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "required": ["token_type"],
                "properties": {"token_type": {"const": "embedding"}},
            },
            "then": {"properties": {"completion_tokens": {"const": 0}}},
        }
    )

    event_id: str = _text(
        "Recorded exactly once within its scope: the organization the event is "
        "charged to (its hold's, else the user's), and who reports it (a key bound "
        "to that organization, or the platform gateway). In the same scope the same "
        "id with the same payload is a `duplicate`, with another payload a "
        "`conflict`; another organization's or the gateway's events never collide "
        "with it.",
        min_length=1,
        max_length=MAX_ID,
    )
    user: str = Field(
        min_length=1,
        description="The user's email (any case).",
        json_schema_extra={"pattern": NOT_BLANK},
    )
    model: str = _text("A model key; the charge uses its current rates.", min_length=1)
    token_type: TokenTypeName
    prompt_tokens: StrictInt = Field(ge=0)
    completion_tokens: StrictInt = Field(
        0, ge=0, description="Must be 0 for embedding usage."
    )
    occurred_at: str = _text(
        "An RFC 3339 date and time, in years 1 to 9999 once converted to UTC, at "
        f"most {FUTURE_SKEW.seconds // 60} minutes ahead of the server's clock. The "
        "server also reads other ISO-8601 forms (a space for the T; without an "
        "offset the time is taken as UTC).",
        format="date-time",
    )
    hold_id: str | None = Field(
        None,
        description="The hold this usage settles (it must belong to the same user "
        "and token type); an open hold is closed and its tokens released, whatever "
        "the actual charge.",
        json_schema_extra={"type": ["string", "null"], "format": "uuid"},
    )
    application: str = _text(max_length=100, default="")
    prompt_excerpt: str | None = Field(
        None,
        description="Stored (first 2,000 characters) only when the organization "
        "allows excerpts.",
        json_schema_extra={"type": ["string", "null"], "pattern": NOTHING_BUT_NUL},
    )
    response_excerpt: str | None = Field(
        None,
        description="As prompt_excerpt.",
        json_schema_extra={"type": ["string", "null"], "pattern": NOTHING_BUT_NUL},
    )


class UsageRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "event_id": "ev-0001",
                            "user": "ava@acme.example",
                            "model": "gpt",
                            "token_type": "inference",
                            "prompt_tokens": 120,
                            "completion_tokens": 30,
                            "occurred_at": "2026-01-15T09:30:00Z",
                            "application": "chat",
                        }
                    ]
                }
            ]
        }
    )

    # Items are checked one by one by the service (see UsageEvent), not here; the
    # document says they are UsageEvents (GatewayApi.get_openapi_schema).
    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


# --- answers --------------------------------------------------------------------------


class Answer(BaseModel):
    # Plain pydantic models, not ninja's Schema: they validate dicts, not ORM
    # objects, so they skip its per-model Python wrapper (the gateway's hot path).
    model_config = ConfigDict(extra="forbid")


class Authorization(Answer):
    """The hold granted; for a repeated request_id, the hold as it is now."""

    hold_id: str = Field(json_schema_extra={"format": "uuid"})
    tokens: int = Field(ge=1, le=MAX_TOKENS)
    remaining: int = Field(
        ge=0, description="The user's tokens left this month after this hold."
    )
    expires_at: str = Field(
        description="When the hold lapses unless settled or released "
        "(HOLD_TTL_SECONDS after it was granted).",
        json_schema_extra={"format": "date-time"},
    )
    status: Literal["open", "settled", "released", "expired"] = Field(
        description="`open` for a new hold; a repeated request_id returns the hold "
        "as it is now."
    )


class Accepted(Answer):
    event_id: str
    status: Literal["recorded", "duplicate"]


class Rejected(Answer):
    event_id: str = Field(description="Empty when the event had no string event_id.")
    status: Literal["rejected"]
    error: Literal[
        "invalid_event",
        "unknown_user",
        "unknown_model",
        "forbidden",
        "invalid_hold",
        "conflict",
    ]
    detail: str


class UsageResult(Answer):
    """What became of each event."""

    results: list[Annotated[Accepted | Rejected, Field(discriminator="status")]] = (
        Field(
            min_length=1,
            max_length=MAX_BATCH,
            description="One result per event, in the order sent.",
        )
    )
    recorded: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: int = Field(ge=0)


class Balance(Answer):
    """The user's month and the organization's pool."""

    period: str = Field(
        pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
        description="The current month, YYYY-MM (UTC).",
    )
    limit: int = Field(ge=0)
    used: int = Field(ge=0)
    held: int = Field(ge=0)
    remaining: int = Field(ge=0, description="max(0, limit − used − held).")
    overage: int = Field(
        ge=0,
        description="max(0, used + held − limit): usage recorded without a hold may "
        "pass the limit.",
    )
    org_remaining: int = Field(
        ge=0, description="The organization's pool left this month."
    )


class Released(Answer):
    """The hold's tokens are back in the user's month."""

    released: int = Field(
        ge=0,
        description="Tokens given back; 0 when the hold was no longer open "
        "(settled, released or expired).",
    )


# --- refusals: {"error": code, "detail": text, …} -------------------------------------

Detail = Annotated[
    str,
    Field(
        min_length=1,
        description="A sentence for people: what is wrong and what is allowed.",
    ),
]


class InvalidRequest(Answer):
    """The body is not JSON, not a JSON object, not of the documented shape, contains
    text the service cannot store (a NUL character or an unpaired surrogate) or an
    integer whose use does not fit 64 bits, or a field is invalid (then `fields` says
    which and why)."""

    error: Literal["invalid_request"]
    detail: Detail
    fields: dict[str, str] = Field(
        default_factory=dict,
        min_length=1,
        description="Each invalid field and what it must be.",
    )


class Unauthorized(Answer):
    """No `Authorization: Bearer <service key>` header, or the key is unknown or
    revoked. Cookie sessions are not accepted."""

    error: Literal["unauthorized"]
    detail: Detail


class InsufficientTokens(Answer):
    """The user's remaining tokens this month are fewer than asked for."""

    error: Literal["insufficient_tokens"]
    detail: Detail
    remaining: int = Field(ge=0)


class AuthorizeForbidden(Answer):
    """`forbidden`: the user is not in an active organization (a key bound to an
    organization gets 404 `unknown_user` for any user outside it); `user_banned`;
    `user_not_paid` (deactivated); `model_not_allowed` for the user's
    organization."""

    error: Literal["forbidden", "user_banned", "user_not_paid", "model_not_allowed"]
    detail: Detail


class UserForbidden(Answer):
    """As for authorize, without the model check."""

    error: Literal["forbidden", "user_banned", "user_not_paid"]
    detail: Detail


class AuthorizeNotFound(Answer):
    """No user with this email (also, for a key bound to an organization, a user
    outside it: the same body), or no active model with this key."""

    error: Literal["unknown_user", "unknown_model"]
    detail: Detail


class UnknownUser(Answer):
    """No user with this email (also, for a key bound to an organization, a user
    outside it: the same body)."""

    error: Literal["unknown_user"]
    detail: Detail


class HoldNotFound(Answer):
    """`unknown_hold`: no such hold for this key (a key bound to an organization sees
    only its holds); `not_found`: the path is not a lowercase UUID."""

    error: Literal["unknown_hold", "not_found"]
    detail: Detail


class Conflict(Answer):
    """The request_id was already used for a different authorization."""

    error: Literal["conflict"]
    detail: Detail


class UnsupportedMediaType(Answer):
    """The body must be sent with Content-Type: application/json."""

    error: Literal["unsupported_media_type"]
    detail: Detail


class PayloadTooLarge(Answer):
    """The body is larger than the server accepts (DATA_UPLOAD_MAX_MEMORY_SIZE, 10 MB
    by default): send fewer events per request."""

    error: Literal["payload_too_large"]
    detail: Detail


class MethodNotAllowed(Answer):
    """Another HTTP method than the documented one; the Allow header lists it."""

    error: Literal["method_not_allowed"]
    detail: Detail


class NotFound(Answer):
    """No such API endpoint."""

    error: Literal["not_found"]
    detail: Detail


class ServiceUnavailable(Answer):
    """The database is unreachable, or a transaction kept failing on conflicts
    (retried 3 times): nothing was changed; retry later."""

    error: Literal["service_unavailable"]
    detail: Detail
