"""The gateway's JSON bodies, read strictly before any schema sees them:
``Content-Type: application/json`` (else 415), at most DATA_UPLOAD_MAX_MEMORY_SIZE
bytes (else 413), valid JSON without NaN or Infinity, a JSON object, and no text a
database column cannot store (a NUL or an unpaired surrogate) anywhere in it (else
400). ``JsonBody[Model]`` declares such a body for an operation."""

import json
import re
from typing import Annotated, Any, TypeVar

from django.http import HttpRequest
from ninja.params.models import Body as BodyParam
from ninja.params.models import BodyModel

from api.errors import ApiError

T = TypeVar("T")


def storable(text: str) -> bool:
    """False for a NUL or an unpaired surrogate: text no database column can store."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
            if not storable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def _invalid(detail: str) -> ApiError:
    return ApiError(400, "invalid_request", detail)


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The request's body as a JSON object, or the refusal (an ``ApiError``).
    Django raises ``RequestDataTooBig`` (413, api/errors.py) on reading a body that
    is too large."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as Content-Type: application/json.",
        )
    raw = request.body
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _invalid("The body must be a JSON object.")
    if _may_hold_unstorable_text(raw) and _has_unstorable_text(body):
        raise _invalid(
            "Text in the body must not contain NUL characters or unpaired surrogates."
        )
    return body


class JsonBodyModel(BodyModel):
    @classmethod
    def get_request_data(cls, request, api, path_params) -> dict[str, Any]:
        # Always read (ninja's own skips an empty body): an empty body is not JSON.
        return {cls.__read_from_single_attr__: json_object(request)}


class JsonBodyParam(BodyParam):
    _model = JsonBodyModel

    @classmethod
    def _param_source(cls) -> str:
        return "body"


class _JsonBody:
    def __getitem__(self, model: type[T]) -> Any:
        return Annotated[model, JsonBodyParam(...)]


JsonBody = _JsonBody()
