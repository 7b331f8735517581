"""The gateway API (SPEC §10): JSON in, JSON out, service-key authentication.

Every answer is JSON: errors are ``{"error": code, "detail": text, …}``, never an
HTML page or a stack trace. Cookie sessions are not accepted (the views never look
at ``request.user``) and CSRF does not apply (no cookie authenticates here).
"""

import json
import logging
import uuid
from functools import wraps
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from accounts.services import service_key_authenticate
from tokens.services import metering
from tokens.services.metering import MeteringError, ServiceUnavailable

logger = logging.getLogger(__name__)

TYPES = sorted(metering.TYPES)
MAX_TOKENS = 10**12


def error(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)


def invalid(fields: dict[str, str]) -> MeteringError:
    return MeteringError(
        400, "invalid_request", "Some fields are missing or invalid.", fields=fields
    )


def api_view(*methods: str, json_body: bool = False):
    """Method check, service-key authentication, JSON parsing and error mapping."""

    def decorator(view):
        @csrf_exempt
        @never_cache
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                response = error(
                    405,
                    "method_not_allowed",
                    f"Use {' or '.join(methods)} for this endpoint.",
                )
                response["Allow"] = ", ".join(methods)
                return response
            header = request.headers.get("Authorization", "")
            scheme, _sep, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return error(
                    401,
                    "unauthorized",
                    "Send a service key: Authorization: Bearer <key>.",
                )
            try:
                key = service_key_authenticate(secret.strip())
                if key is None:
                    return error(
                        401, "unauthorized", "The service key is unknown or revoked."
                    )
                if json_body:
                    if request.content_type != "application/json":
                        return error(
                            415,
                            "unsupported_media_type",
                            "Send the body as Content-Type: application/json.",
                        )
                    try:
                        body = json.loads(request.body)
                    except (ValueError, UnicodeDecodeError):
                        return error(
                            400, "invalid_request", "The body is not valid JSON."
                        )
                    if not isinstance(body, dict):
                        return error(
                            400, "invalid_request", "The body must be a JSON object."
                        )
                    kwargs["body"] = body
                return view(request, key, *args, **kwargs)
            except MeteringError as refusal:
                return JsonResponse(refusal.as_dict(), status=refusal.status)
            except (ServiceUnavailable, DatabaseError):
                logger.exception("API request failed on the database")
                return error(
                    503,
                    "service_unavailable",
                    "The service cannot record this now; nothing was changed. Retry.",
                )

        return wrapper

    return decorator


def _string(body: dict, name: str, fields: dict, max_length: int = 254) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        fields[name] = "required: a non-empty string"
    elif len(value) > max_length:
        fields[name] = f"at most {max_length} characters"
    return value if isinstance(value, str) else ""


def _token_type(value: Any, fields: dict) -> str:
    if value not in TYPES:
        fields["token_type"] = "one of: " + ", ".join(TYPES)
    return value


@api_view("POST", json_body=True)
def authorize(request: HttpRequest, key, body: dict) -> JsonResponse:
    fields: dict[str, str] = {}
    user = _string(body, "user", fields)
    model = _string(body, "model", fields, 100)
    token_type = _token_type(body.get("token_type"), fields)
    request_id = _string(body, "request_id", fields, 128)
    tokens = body.get("tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
        fields["tokens"] = "an integer greater than 0"
    elif tokens > MAX_TOKENS:
        fields["tokens"] = f"at most {MAX_TOKENS}"
    if fields:
        raise invalid(fields)
    result = metering.authorize(
        key=key,
        user_email=user,
        model_key=model,
        token_type=token_type,
        tokens=tokens,
        request_id=request_id,
    )
    return JsonResponse(result.as_dict())


@api_view("POST", json_body=True)
def usage(request: HttpRequest, key, body: dict) -> JsonResponse:
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise invalid({"events": "a non-empty list of usage events"})
    result = metering.usage_record(key=key, events=events)
    return JsonResponse(result.as_dict())


@api_view("GET")
def balance(request: HttpRequest, key) -> JsonResponse:
    fields: dict[str, str] = {}
    user = _string(request.GET, "user", fields)
    token_type = _token_type(request.GET.get("token_type"), fields)
    if fields:
        raise invalid(fields)
    return JsonResponse(
        metering.balance(key=key, user_email=user, token_type=token_type)
    )


@api_view("POST")
def hold_release(request: HttpRequest, key, hold_id: uuid.UUID) -> JsonResponse:
    return JsonResponse({"released": metering.hold_release(key=key, hold_id=hold_id)})


def not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    return error(404, "not_found", "No such API endpoint.")
