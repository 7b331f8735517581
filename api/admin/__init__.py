"""The admin API (docs/admin-api.md): /api/v1/admin/, one django-ninja API whose
routers are by subject. Every operation acts on the token's organization as the
token's owner, through the panel's selectors and services."""

import datetime as dt
from functools import wraps

from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Schema

from api import auth, errors
from api.admin import audit, distribution, requests, usage, users

ERRORS = {
    "400": "Invalid input (fields name each problem) or a refusal of the service.",
    "401": "No token, or an unknown, revoked or expired one, or its owner is no "
    "longer an active admin of its organization.",
    "403": "A read-only token on a write (read_only_token), or the service refused.",
    "404": "No such object in the token's organization.",
    "429": "Too many failed authentications from this address (Retry-After).",
}


def _json_405(view):
    """ninja answers a method an operation lacks with a bare 405; answer it as
    every other refusal here (and refuse anything but GET on the document)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if getattr(view, "get_only", False) and request.method != "GET":
            response = HttpResponseNotAllowed(["GET"])
        else:
            response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = JsonResponse(
                {
                    "error": "method_not_allowed",
                    "detail": f"Use {allowed} for this endpoint.",
                },
                status=405,
            )
            response["Allow"] = allowed
        return response

    return wrapper


def _no_root(request, *args, **kwargs):
    return JsonResponse(
        {"error": "not_found", "detail": "No such API endpoint."}, status=404
    )


class AdminApi(NinjaAPI):
    """Documents the refusals every operation may answer: {error, detail, …}, and
    answers them as JSON (405 too); the root is a JSON 404 (the reference is in
    the panel)."""

    def get_content_type(self) -> str:
        # As the gateway: JSON is UTF-8 by definition (RFC 8259), no charset.
        return self.renderer.media_type

    def _get_urls(self):
        patterns = []
        for pattern in super()._get_urls():
            if pattern.name == "api-root":
                # Kept for reverse() (the document's server path); no page.
                pattern.callback = csrf_exempt(_no_root)
                patterns.append(pattern)
                continue
            if pattern.name == "openapi-json":
                pattern.callback.get_only = True
            pattern.callback = csrf_exempt(_json_405(pattern.callback))
            patterns.append(pattern)
        return patterns

    def get_openapi_schema(self, *args, **kwargs):
        document = super().get_openapi_schema(*args, **kwargs)
        document["components"].setdefault("schemas", {})["Error"] = {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string"},
                "detail": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
            },
        }
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for item in document["paths"].values():
            for operation in item.values():
                operation["responses"] = {
                    str(k): v for k, v in operation["responses"].items()
                }
                for status, text in ERRORS.items():
                    operation["responses"].setdefault(
                        status, {"description": text, "content": error}
                    )
        return document


admin_api = AdminApi(
    title="Enterprise Account admin API",
    version="1",
    description=(
        "Automation for organization admins: users and limits, token requests, "
        "usage and the audit trail of the token's organization. Authenticate with "
        "a personal access token (Authorization: Bearer eat_…) created in the "
        "panel under API tokens. Every refusal is {error, detail, …}."
    ),
    urls_namespace="admin_api",
    docs_url=None,
    openapi_url="/openapi.json",
)
errors.install(admin_api)


class TokenInfoOut(Schema):
    name: str
    prefix: str
    scope: str
    expires_at: dt.datetime
    owner_email: str
    organization_id: int
    organization_name: str


@admin_api.get("/token", response=TokenInfoOut, auth=auth.READ, tags=["tokens"])
def token_info(request: HttpRequest):
    """The token this call was made with, its owner and organization."""
    token = request.auth
    return {
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "expires_at": token.expires_at,
        "owner_email": token.owner.email,
        "organization_id": token.organization_id,
        "organization_name": token.organization.name,
    }


admin_api.add_router("", users.router)
admin_api.add_router("", requests.router)
admin_api.add_router("", distribution.router)
admin_api.add_router("", usage.router)
admin_api.add_router("", audit.router)
