"""Admin API authentication (docs/admin-api.md, Tokens): a personal access token
in ``Authorization: Bearer``, checked against its owner's state on every call;
failed attempts counted per client IP and refused with 429 past a limit.

``READ`` accepts any usable token, ``WRITE`` only a read-write one (a read-only
token gets 403 ``read_only_token``). A successful call names the token as the
means of every audit event it writes (``request_context.via``).
"""

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.security import HttpBearer

from accounts.access_tokens import (
    access_token_authenticate,
    access_token_record_refusal,
)
from accounts.models import AdminAccessToken
from api.errors import ApiError
from asksage_admin.lib import request_context

REASONS = {
    "unknown": "The access token is unknown.",
    "revoked": "The access token is revoked.",
    "expired": "The access token has expired.",
    "owner_not_admin": "The token's owner is no longer an active admin of its "
    "organization.",
    "organization_inactive": "The token's organization is not active.",
}


def _counter_key(request: HttpRequest) -> str:
    return f"admin-api:auth-failures:{request_context.client_ip(request) or '-'}"


def _refuse_if_throttled(request: HttpRequest) -> None:
    if cache.get(_counter_key(request), 0) >= settings.ADMIN_API_AUTH_FAILURES:
        window = settings.ADMIN_API_AUTH_WINDOW_SECONDS
        raise ApiError(
            429,
            "too_many_failed_authentications",
            "Too many failed authentications from this address: try again later.",
            retry_after=window,
        )


def _count_failure(request: HttpRequest) -> None:
    key = _counter_key(request)
    if cache.add(key, 1, settings.ADMIN_API_AUTH_WINDOW_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, settings.ADMIN_API_AUTH_WINDOW_SECONDS)


class AccessTokenAuth(HttpBearer):
    """The bearer token of an org admin; ``write`` requires a read-write token."""

    def __init__(self, *, write: bool):
        super().__init__()
        self.write = write

    def __call__(self, request: HttpRequest):
        _refuse_if_throttled(request)
        token = super().__call__(request)
        if token is None:
            _count_failure(request)
            raise ApiError(
                401,
                "unauthorized",
                "Send an admin access token: Authorization: Bearer <token>.",
            )
        return token

    def authenticate(self, request: HttpRequest, token: str):
        secret = token.strip()
        if not secret or "\x00" in secret or not secret.isascii():
            access_token_record_refusal(token=None, reason="unknown")
            return None
        found, reason = access_token_authenticate(secret)
        if reason:
            access_token_record_refusal(token=found, reason=reason)
            _count_failure(request)
            raise ApiError(401, "unauthorized", REASONS[reason])
        if self.write and found.scope != AdminAccessToken.Scope.WRITE:
            raise ApiError(
                403,
                "read_only_token",
                "This token is read only: create a read-write token to change "
                "anything.",
            )
        request_context.set_via(f"api-token {found.prefix} ({found.name})"[:160])
        return found


READ = AccessTokenAuth(write=False)
WRITE = AccessTokenAuth(write=True)


def actor(request: HttpRequest):
    """The user a call acts as: the token's owner."""
    return request.auth.owner


def organization(request: HttpRequest):
    """The organization a call acts on: the token's."""
    return request.auth.organization
