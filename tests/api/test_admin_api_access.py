"""Who may call the admin API (docs/admin-api.md, Tokens; docs/security.md): every
operation × persona × scope, tenant isolation, the owner's state checked on every
call, and the rate limit on failed authentications."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

from accounts.access_tokens import access_token_create, access_token_revoke
from accounts.models import AdminAccessToken, AuditEvent, User
from tests.api.conftest import TokenClient
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db

# (method, path with {user}/{request} placeholders, body, writes?)
OPERATIONS = [
    ("get", "/token", None, False),
    ("get", "/users", None, False),
    ("get", "/users/{user}", None, False),
    ("put", "/users/{user}/limits/inference", {"limit": 400_000}, True),
    ("put", "/users/{user}/paid", {"paid": False}, True),
    ("post", "/users/{user}/ban", {}, True),
    ("post", "/users/{banned}/unban", {}, True),
    (
        "post",
        "/users/bulk/limit",
        {"user_ids": ["{user}"], "token_type": "inference", "limit": 350_000},
        True,
    ),
    ("get", "/token-requests", None, False),
    ("post", "/token-requests/{request}/approve", {"amount": 10_000}, True),
    ("post", "/token-requests/{request}/deny", {"note": "no"}, True),
    ("get", "/distribution/policy", None, False),
    ("patch", "/distribution/policy", {"cooldown_minutes": 30}, True),
    ("post", "/distribution/preset", {"preset": "conservative"}, True),
    ("get", "/distribution/preview", None, False),
    ("post", "/distribution/run", {}, True),
    ("get", "/usage/summary", None, False),
    ("get", "/usage/events.csv", None, False),
    ("get", "/audit-events", None, False),
]
OBJECT_OPERATIONS = [
    op for op in OPERATIONS if "{" in op[1] or (op[2] and "{" in str(op[2]))
]


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


def fill(value, world, *, user=None):
    user = user or world.target
    if isinstance(value, str):
        return (
            value.replace("{user}", str(user.pk))
            .replace("{banned}", str(world.banned.pk))
            .replace("{request}", str(world.token_request.pk))
        )
    if isinstance(value, dict):
        return {k: fill(v, world, user=user) for k, v in value.items()}
    if isinstance(value, list):
        return [int(fill(v, world, user=user)) if v == "{user}" else v for v in value]
    return value


def call(client, op, world, *, user=None):
    method, path, body, _writes = op
    return client.call(
        method, fill(path, world, user=user), fill(body, world, user=user)
    )


def test_every_documented_operation_is_in_the_matrix(api_world):
    from api.admin import admin_api

    document = admin_api.get_openapi_schema(path_prefix="")
    documented = {
        (
            method,
            path.replace("{user_id}", "{user}").replace("{request_id}", "{request}"),
        )
        for path, item in document["paths"].items()
        for method in item
    }
    declared = {
        (
            m,
            p.replace("/limits/inference", "/limits/{token_type}").replace(
                "{banned}", "{user}"
            ),
        )
        for m, p, *_ in OPERATIONS
    }
    assert documented == declared


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_no_token_is_401_and_changes_nothing(api_world, op):
    before = AuditEvent.objects.exclude(action="access_token.refused").count()
    response = call(TokenClient(), op, api_world)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert AuditEvent.objects.exclude(action="access_token.refused").count() == before


@pytest.mark.parametrize("persona", ["member", "admin", "sales", "superuser"])
@pytest.mark.parametrize("op", OPERATIONS[:3], ids=lambda op: f"{op[0]} {op[1]}")
def test_a_panel_session_is_not_a_credential(request, api_world, persona, op):
    user = request.getfixturevalue(
        {"member": "member", "admin": "admin_user", "sales": "sales_user"}.get(
            persona, persona
        )
    )
    client = TokenClient()
    client.client = sign_in(user, mfa=persona in ("admin", "superuser"))
    assert call(client, op, api_world).status_code == 401


@pytest.mark.parametrize("persona", ["member", "sales_user", "superuser"])
def test_only_an_org_admin_can_make_a_token(request, persona):
    user = request.getfixturevalue(persona)
    with pytest.raises(PermissionDenied):
        access_token_create(actor=user, name="x", scope="write", expires_in_days=30)
    assert not AdminAccessToken.objects.exists()


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_read_only_token_reads_and_is_refused_writes(api_world, op):
    before = AuditEvent.objects.count()
    response = call(api_world.read, op, api_world)
    if op[3]:
        assert response.status_code == 403
        assert response.json()["error"] == "read_only_token"
        assert AuditEvent.objects.count() == before
    else:
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_the_admins_read_write_token_may_call_everything(api_world, op):
    response = call(api_world.write, op, api_world)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "op",
    [op for op in OPERATIONS if "{" in op[1] or "{user}" in str(op[2])],
    ids=lambda op: f"{op[0]} {op[1]}",
)
def test_another_organizations_admin_gets_404_on_our_ids(api_world, op):
    before = AuditEvent.objects.count()
    response = call(api_world.other, op, api_world)
    assert response.status_code == 404, response.content
    assert response.json()["error"] == "not_found"
    assert AuditEvent.objects.count() == before


def test_lists_show_only_the_tokens_organization(api_world):
    emails = {
        u["email"] for u in api_world.other.call("get", "/users").json()["results"]
    }
    assert emails == {"admin@globex.example", "user@globex.example"}
    assert api_world.other.call("get", "/token-requests").json()["results"] == []
    ours = {u["email"] for u in api_world.write.call("get", "/users").json()["results"]}
    assert "user@globex.example" not in ours and "target@acme.example" in ours


@pytest.mark.parametrize(
    "change",
    [
        {"is_banned": True},
        {"is_active": False},
        {"role": User.Role.USER},
    ],
    ids=["banned", "deactivated", "demoted"],
)
def test_the_owner_losing_admin_rights_stops_their_tokens_at_once(api_world, change):
    assert api_world.write.call("get", "/users").status_code == 200
    User.objects.filter(pk=api_world.admin.pk).update(**change)
    response = api_world.write.call("get", "/users")
    assert response.status_code == 401
    assert "no longer an active admin" in response.json()["detail"]
    refusal = AuditEvent.objects.filter(action="access_token.refused").latest("id")
    assert refusal.after == {"reason": "owner_not_admin"}


def test_revoked_and_expired_tokens_are_refused(api_world, time_machine):
    token = AdminAccessToken.objects.get(name="automation")
    access_token_revoke(actor=api_world.admin, token=token)
    response = api_world.write.call("get", "/users")
    assert (response.status_code, response.json()["detail"]) == (
        401,
        "The access token is revoked.",
    )
    reports = AdminAccessToken.objects.get(name="reports")
    time_machine.move_to(reports.expires_at + dt.timedelta(seconds=1), tick=False)
    response = api_world.read.call("get", "/users")
    assert response.json()["detail"] == "The access token has expired."


def test_use_is_recorded_as_last_used(api_world):
    assert AdminAccessToken.objects.get(name="reports").last_used_at is None
    api_world.read.call("get", "/users")
    assert AdminAccessToken.objects.get(name="reports").last_used_at is not None


def test_failed_authentications_are_rate_limited_per_ip(api_world, settings):
    settings.ADMIN_API_AUTH_FAILURES = 3
    bad = TokenClient("eat_000000000000_nope", REMOTE_ADDR="10.0.0.9")
    for _ in range(3):
        assert bad.call("get", "/users").status_code == 401
    refused = bad.call("get", "/users")
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_failed_authentications"
    assert refused["Retry-After"] == str(settings.ADMIN_API_AUTH_WINDOW_SECONDS)
    # Even a good token from that address waits; another address is not affected.
    good_same_ip = TokenClient(api_world.write_secret, REMOTE_ADDR="10.0.0.9")
    assert good_same_ip.call("get", "/users").status_code == 429
    assert api_world.write.call("get", "/users").status_code == 200
    assert AuditEvent.objects.filter(action="access_token.refused").count() == 3


def test_a_refused_use_is_audited_in_the_tokens_organization(api_world, org):
    token = AdminAccessToken.objects.get(name="automation")
    access_token_revoke(actor=api_world.admin, token=token)
    api_world.write.call("get", "/users")
    event = AuditEvent.objects.filter(action="access_token.refused").get()
    assert event.organization_id == org.pk
    assert event.target_id == str(token.pk)
