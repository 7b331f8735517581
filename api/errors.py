"""One exception handler for the admin API: every refusal is
``{"error": code, "detail": text, …}`` (docs/admin-api.md, Errors), never HTML.

Views raise what the services raise (Django's ``ValidationError`` and
``PermissionDenied``, ``Http404`` from a selector scoped to the organization) or an
``ApiError``; ``handle`` maps each to its status and code, in one place.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, DataError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaError

from asksage_admin.lib.errors import DomainError, http_status

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


def _schema_fields(error: SchemaError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors:
        # loc is ("body", "payload", "limit") or ("query", "limit"): keep the field.
        loc = [str(part) for part in item.get("loc", ()) if part not in ("body",)]
        name = ".".join(loc[1:] if len(loc) > 1 else loc) or "body"
        fields.setdefault(name, str(item.get("msg", "invalid")))
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
    if isinstance(exc, DataError | OverflowError):
        return ApiError(
            400,
            "invalid_request",
            "A value is out of the range this service can store. Nothing was changed.",
        )
    if isinstance(exc, DatabaseError):
        logger.exception("Admin API request failed on the database")
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
        DatabaseError,
        OverflowError,
    ):
        api.add_exception_handler(kind, handle)
