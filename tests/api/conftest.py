"""The admin API's world: our organization with users, a pending token request and
usage; tokens of its admin (read-write and read-only) and of another
organization's admin (docs/admin-api.md)."""

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from accounts.access_tokens import access_token_create
from accounts.models import User
from tests.factories import UserFactory, fund, give
from tokens.models import TokenRequest
from tokens.services.requests import token_request_submit

BASE = "/api/v1/admin"


class TokenClient:
    """Speaks JSON to the admin API with one bearer token (or none)."""

    def __init__(self, secret: str | None = None, **extra):
        self.client = Client(**extra)
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def call(self, method: str, path: str, body=None, params=None):
        url = BASE + path
        if method == "get":
            return self.client.get(url, params or {}, headers=self.headers)
        return getattr(self.client, method)(
            url,
            data=json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self.headers,
        )


@dataclass
class ApiWorld:
    admin: User
    target: User
    banned: User
    other_target: User
    token_request: TokenRequest
    write: TokenClient
    read: TokenClient
    other: TokenClient
    write_secret: str


@pytest.fixture
def api_world(org, other_org, admin_user, other_admin_user) -> ApiWorld:
    fund(org)
    fund(other_org)
    target = UserFactory(organization=org, email="target@acme.example")
    give(target, 300_000)
    banned = UserFactory(organization=org, email="zed@acme.example", is_banned=True)
    other_target = UserFactory(organization=other_org, email="user@globex.example")
    request = token_request_submit(
        user=target, token_type="inference", amount=50_000, reason="A big project."
    )
    _w, write_secret = access_token_create(
        actor=admin_user, name="automation", scope="write", expires_in_days=30
    )
    _r, read_secret = access_token_create(
        actor=admin_user, name="reports", scope="read", expires_in_days=30
    )
    _o, other_secret = access_token_create(
        actor=other_admin_user, name="globex", scope="write", expires_in_days=30
    )
    return ApiWorld(
        admin=admin_user,
        target=target,
        banned=banned,
        other_target=other_target,
        token_request=request,
        write=TokenClient(write_secret),
        read=TokenClient(read_secret),
        other=TokenClient(other_secret),
        write_secret=write_secret,
    )
