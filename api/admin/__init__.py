"""The admin API (docs/admin-api.md): /api/v1/admin/, one django-ninja API whose
routers are by subject. Every operation acts on the token's organization as the
token's owner, through the panel's selectors and services."""

import datetime as dt

from django.http import HttpRequest
from ninja import Schema

from api import auth, errors
from api.admin import audit, distribution, requests, usage, users
from api.base import JsonApi

ERRORS = {
    "400": "Invalid input (fields name each problem) or a refusal of the service.",
    "401": "No token, or an unknown, revoked or expired one, or its owner is no "
    "longer an active admin of its organization.",
    "403": "A read-only token on a write (read_only_token), or the service refused.",
    "404": "No such object in the token's organization.",
    "429": "Too many failed authentications from this address (Retry-After).",
}


class AdminApi(JsonApi):
    """Documents the refusals every operation may answer: {error, detail, …}."""

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
