"""The gateway API (docs/gateway-api.md): JSON in, JSON out, service-key authentication.

Every answer is JSON: errors are ``{"error": code, "detail": text, …}``, never an
HTML page or a stack trace. Cookie sessions are not accepted (the views never look
at ``request.user``) and CSRF does not apply (no cookie authenticates here).
"""

import json
import logging
import re
import uuid
from functools import cache, wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from accounts.services import service_key_authenticate
from asksage_admin.lib.errors import DomainError, InvalidInput, http_status
from tokens.models import TOKEN_TYPES
from tokens.services import metering
from tokens.services.metering import ServiceUnavailable

logger = logging.getLogger(__name__)

TYPES = sorted(TOKEN_TYPES)
MAX_TOKENS = 10**12


def error(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)


def invalid(fields: dict[str, str]) -> InvalidInput:
    return InvalidInput("Some fields are missing or invalid.", fields=fields)


# The one mapping of the services' domain errors to HTTP (docs/gateway-api.md,
# The contract): the class decides the status, the body is the documented
# {"error": code, "detail": message, …extra}. An unlisted refusal is a 400.
def refusal_response(refusal: DomainError) -> JsonResponse:
    """A refusal as the gateway answers it (the status from the one table,
    ``asksage_admin/lib/errors.py`` ``HTTP_STATUS``)."""
    return error(http_status(refusal), refusal.code, refusal.detail, **refusal.extra)


def _unstorable(text: str) -> bool:
    """A NUL or an unpaired surrogate: text no database column can store."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# A JSON escape that decodes to NUL or to a surrogate. (An escaped backslash before
# "u0000" matches too: then the parsed strings are checked, which is only slower.)
_RISKY_ESCAPE = re.compile(rb"\\u(?:0000|d[89a-f])", re.IGNORECASE)


def _may_hold_unstorable_text(raw: bytes) -> bool:
    """False when no string parsed from ``raw`` can hold a NUL or a surrogate: an
    ASCII body (no raw surrogates, and a raw NUL is not valid JSON) without escapes
    of either. Saves walking every string of a 1,000-event batch."""
    return not raw.isascii() or _RISKY_ESCAPE.search(raw) is not None


def _has_unstorable_text(value: Any) -> bool:
    """True when any string of a parsed JSON value (keys included) is unstorable."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _unstorable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


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
            secret = secret.strip()
            if scheme.lower() != "bearer" or not secret or _unstorable(secret):
                return error(
                    401,
                    "unauthorized",
                    "Send a service key: Authorization: Bearer <key>.",
                )
            try:
                key = service_key_authenticate(secret)
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
                        raw = request.body
                    except RequestDataTooBig:
                        return error(
                            413,
                            "payload_too_large",
                            f"The body is larger than "
                            f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes: send "
                            f"fewer events per request.",
                        )
                    try:
                        body = json.loads(raw, parse_constant=_not_json)
                    except (ValueError, UnicodeDecodeError, RecursionError):
                        return error(
                            400, "invalid_request", "The body is not valid JSON."
                        )
                    if not isinstance(body, dict):
                        return error(
                            400, "invalid_request", "The body must be a JSON object."
                        )
                    if _may_hold_unstorable_text(raw) and _has_unstorable_text(body):
                        return error(
                            400,
                            "invalid_request",
                            "Text in the body must not contain NUL characters or "
                            "unpaired surrogates.",
                        )
                    kwargs["body"] = body
                return view(request, key, *args, **kwargs)
            except DomainError as refusal:
                return refusal_response(refusal)
            except (DataError, OverflowError):
                # The data, not the service (a token count whose charge passes 64
                # bits): refused, not "retry later", and nothing was saved.
                logger.warning("API request refused: a value is out of range")
                return error(
                    400,
                    "invalid_request",
                    "A value is out of the range this service can store (a token "
                    "count whose charge passes 9,223,372,036,854,775,807). Nothing "
                    "was changed.",
                )
            except (ServiceUnavailable, DatabaseError):
                logger.exception("API request failed on the database")
                return error(
                    503,
                    "service_unavailable",
                    "The service cannot record this now; nothing was changed. Retry.",
                )

        wrapper.api_methods = methods  # read by the OpenAPI contract test
        wrapper.json_body = json_body
        return wrapper

    return decorator


def _string(body: dict, name: str, fields: dict, max_length: int = 254) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        fields[name] = "required: a non-empty string"
    elif len(value) > max_length:
        fields[name] = f"at most {max_length} characters"
    elif _unstorable(value):
        fields[name] = "text without NUL characters"
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


@csrf_exempt  # a POST to an unknown path is a JSON 404, not the CSRF page
def not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    return error(404, "not_found", "No such API endpoint.")


OPENAPI_FILE = Path(__file__).resolve().parent.parent / "openapi.json"


@cache
def _openapi_text() -> str:
    return OPENAPI_FILE.read_text(encoding="utf-8")


@csrf_exempt
def openapi(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 document of this API. Public: it is the contract, no secret."""
    if request.method != "GET":
        response = error(405, "method_not_allowed", "Use GET for this endpoint.")
        response["Allow"] = "GET"
        return response
    return HttpResponse(_openapi_text(), content_type="application/json")


openapi.api_methods = ("GET",)
openapi.json_body = False
