"""What the gateway API (``api/gateway/``) and the admin API (``api/admin/``) share:
one django-ninja base whose every answer is JSON, refusals included.

- A method an operation lacks is a JSON 405 with an ``Allow`` header (ninja's own
  405 is a bare page); the OpenAPI document answers GET only.
- The API's root is a JSON 404 (the pattern stays, for ``reverse()``).
- No answer is cached (``Cache-Control: no-store``: balances and secrets).
- No cookie authenticates here, so CSRF does not apply (``csrf_exempt``).
- JSON is UTF-8 by definition (RFC 8259): ``Content-Type: application/json``.
- ``component()`` adds a schema to a generated document for what ninja cannot see
  (refusals answered by the exception handler, not by an operation).
"""

from functools import wraps
from typing import Any

from django.http import HttpResponseNotAllowed, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from pydantic import BaseModel

REF = "#/components/schemas/{model}"


def json_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


@csrf_exempt  # a POST to an unknown path is a JSON 404, not the CSRF page
def not_found(request, *args, **kwargs) -> JsonResponse:
    """Any path under /api/ that no API answers."""
    return json_error(404, "not_found", "No such API endpoint.")


def _json_405(view, *, get_only: bool = False):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if get_only and request.method != "GET":
            response = HttpResponseNotAllowed(["GET"])
        else:
            response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = json_error(
                405, "method_not_allowed", f"Use {allowed} for this endpoint."
            )
            response["Allow"] = allowed
        return response

    return wrapper


class JsonApi(NinjaAPI):
    """A NinjaAPI that answers as described above."""

    def get_content_type(self) -> str:
        return self.renderer.media_type

    def _get_urls(self):
        patterns = []
        for pattern in super()._get_urls():
            if pattern.name == "api-root":
                pattern.callback = not_found
            else:
                view = _json_405(
                    pattern.callback, get_only=pattern.name == "openapi-json"
                )
                pattern.callback = csrf_exempt(never_cache(view))
            patterns.append(pattern)
        return patterns


def component(document: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Add ``model`` (and the models it uses) to ``document``'s schemas; return a
    reference to it."""
    schema = model.model_json_schema(ref_template=REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}
