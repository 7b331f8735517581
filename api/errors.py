"""One exception handler for both APIs (the gateway's and the admin's): every
refusal is ``{"error": code, "detail": text, …}`` (docs/gateway-api.md and
docs/admin-api.md, Errors), never HTML.

Views raise what the services raise (the domain errors, Django's ``ValidationError``
and ``PermissionDenied``, ``Http404`` from a selector scoped to the organization) or
an ``ApiError``; ``as_api_error`` maps each to its status and code, in one place. A
request that does not fit its schema is a 400 whose ``fields`` name each problem in
words (``PHRASES``), not in the schema library's.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.db import DatabaseError, DataError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaError

from asksage_admin.lib.errors import DomainError, http_status
from tokens.services.metering import ServiceUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with its status, code, text and extra members."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


def _fields_of(error: ValidationError) -> dict[str, str]:
    if hasattr(error, "error_dict"):
        return {
            field: " ".join(ValidationError(errors).messages)
            for field, errors in error.error_dict.items()
        }
    return {}


def _messages(error: DomainError) -> list[str]:
    if isinstance(error, ValidationError):
        return error.messages
    return [str(error.message)]


# A schema error in words (by pydantic's error type; its context fills the blanks).
PHRASES = {
    "missing": "required",
    "string_type": "a string",
    "string_too_short": "required: a non-empty string",
    "string_too_long": "at most {max_length} characters",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "greater_than": "greater than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
    "literal_error": "one of: {expected}",
    "enum": "one of: {expected}",
    "list_type": "a list",
    "too_short": "at least {min_length} (got {actual_length})",
    "too_long": "at most {max_length} (got {actual_length})",
    "uuid_type": "a UUID",
    "uuid_parsing": "a UUID",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "datetime_type": "an ISO-8601 date and time",
    "datetime_parsing": "an ISO-8601 date and time",
    "datetime_from_date_parsing": "an ISO-8601 date and time",
}


def _phrase(item: dict[str, Any]) -> str:
    phrase = PHRASES.get(item.get("type", ""))
    if phrase is None:  # a custom error (PydanticCustomError): its own words
        return str(item.get("msg", "invalid"))
    context = {k: str(v) for k, v in (item.get("ctx") or {}).items()}
    if "expected" in context:  # "'a', 'b' or 'c'" → "a, b, c"
        context["expected"] = context["expected"].replace("'", "").replace(" or ", ", ")
    try:
        return phrase.format(**context)
    except (KeyError, IndexError):
        return str(item.get("msg", "invalid"))


def _schema_fields(error: SchemaError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors:
        # loc is ("body", "payload", "limit") or ("query", "limit"): keep the field.
        loc = [str(part) for part in item.get("loc", ()) if part not in ("body",)]
        name = ".".join(loc[1:] if len(loc) > 1 else loc) or "body"
        fields.setdefault(name, _phrase(item))
    return fields


def as_api_error(exc: Exception) -> ApiError:
    """The refusal an exception stands for."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DomainError):  # the services' refusals, one status table
        extra = {"fields": fields} if (fields := _fields_of(exc)) else {}
        return ApiError(
            http_status(exc), exc.code, " ".join(_messages(exc)), **extra, **exc.extra
        )
    if isinstance(exc, SchemaError):
        return ApiError(
            400,
            "invalid_request",
            "Some fields are missing or invalid.",
            fields=_schema_fields(exc),
        )
    if isinstance(exc, ValidationError):
        extra = {"fields": fields} if (fields := _fields_of(exc)) else {}
        return ApiError(400, "invalid_request", " ".join(exc.messages), **extra)
    if isinstance(exc, PermissionDenied):
        return ApiError(403, "forbidden", str(exc) or "You cannot do this.")
    if isinstance(exc, Http404):
        return ApiError(404, "not_found", "No such object in your organization.")
    if isinstance(exc, AuthenticationError):
        return ApiError(
            401,
            "unauthorized",
            "Send an admin access token: Authorization: Bearer <token>.",
        )
    if isinstance(exc, HttpError):
        return ApiError(exc.status_code, "bad_request", str(exc))
    if isinstance(exc, RequestDataTooBig):
        return ApiError(
            413,
            "payload_too_large",
            f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} "
            "bytes: send less per request.",
        )
    if isinstance(exc, DataError | OverflowError):
        # The data, not the service (a token count whose charge passes 64 bits):
        # refused, not "retry later", and nothing was saved.
        logger.warning("API request refused: a value is out of range")
        return ApiError(
            400,
            "invalid_request",
            "A value is out of the range this service can store (a token count "
            "whose charge passes 9,223,372,036,854,775,807). Nothing was changed.",
        )
    if isinstance(exc, DatabaseError | ServiceUnavailable):
        logger.exception("API request failed on the database")
        return ApiError(
            503,
            "service_unavailable",
            "The service cannot do this now; nothing was changed. Retry.",
        )
    raise exc


def install(api: NinjaAPI) -> None:
    """Route every refusal of ``api`` through ``handle``."""

    def handle(request: HttpRequest, exc: Exception) -> HttpResponse:
        error = as_api_error(exc)
        response = api.create_response(request, error.body(), status=error.status)
        if error.status == 429 and "retry_after" in error.extra:
            response["Retry-After"] = str(error.extra["retry_after"])
        return response

    for kind in (
        ApiError,
        SchemaError,
        ValidationError,
        PermissionDenied,
        Http404,
        HttpError,
        RequestDataTooBig,
        DatabaseError,
        ServiceUnavailable,
        OverflowError,
    ):
        api.add_exception_handler(kind, handle)
