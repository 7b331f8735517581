"""The authorization matrix (issue 9; docs/security.md, Who sees what and Security
guarantees): every URL of the project, who may use it with which method, and what
everyone else gets.

``ROUTES`` declares, for every named URL outside the Django admin, the expected answer
for each persona (anonymous, member, org admin, admin of another organization, sales
staff, superuser) to a GET and to a POST. URL arguments name OUR organization's
objects, so the other organization's admin must get a 404 for them. The Django admin
(``/staff/``, namespace ``admin``) is declared as one family (``test_staff_site_*``):
staff only, and within it the Sales group only where it has permissions.

Each case also snapshots the data that matters (non-authentication audit events,
allocation changes, token requests, distribution runs, overrides, policies, the
users' flags, …) before and after: a refused request must change nothing at all,
another organization's admin must leave our organization untouched, and an allowed
mutation must change something (which proves the posted data would have had an
effect had a refused request got through).

A URL added without an entry here fails ``test_every_url_has_a_declared_rule``.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.auth.tokens import default_token_generator
from django.db.models import Q
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.access_tokens import access_token_create
from accounts.models import (
    AdminAccessToken,
    AuditEvent,
    EnterpriseAccountRequest,
    Organization,
    ServiceKey,
    User,
)
from accounts.services import email_verification_token, service_key_create
from tests.conftest import sign_in
from tests.factories import PASSWORD, UserFactory, fund, give
from tokens.models import (
    AlertSettings,
    AllocationChange,
    AutoApprovalRule,
    DistributionPolicy,
    DistributionRun,
    TokenRequest,
    UserOverride,
)
from tokens.services.distribution import override_set, policy_ensure
from tokens.services.requests import token_request_submit

pytestmark = pytest.mark.django_db

PERSONAS = ("anon", "member", "admin", "other_admin", "sales", "superuser")
METHODS = ("get", "post")
LOGIN = reverse("accounts:login")
STAFF_LOGIN = reverse("admin:login")


# --- expectations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """One persona's expected answer to one method of one URL.

    ``location``: the redirect must start with it. ``effect``: the request is allowed
    to change our organization and must change something in it (an allowed
    mutation). ``own_org``: the other organization's admin acting on their own
    organization, and ``global_effect``: an allowed change outside any organization
    (registration); both must leave our organization untouched. Anything else is a
    refusal or a read and must change nothing at all.
    """

    status: int
    location: str | None = None
    effect: bool = False
    own_org: bool = False
    global_effect: bool = False
    note: str = ""


SIGN_IN = Expect(302, location=f"{LOGIN}?next=")
FORBIDDEN = Expect(403)
NOT_FOUND = Expect(404)
NOT_ALLOWED = Expect(405)
OK = Expect(200)
REDIRECT = Expect(302)
API_UNAUTHORIZED = Expect(401, note="cookie sessions are not accepted by the API")
CHANGES = Expect(302, effect=True)
CHANGES_OK = Expect(200, effect=True)
OWN_ORG = Expect(302, own_org=True)
OWN_ORG_OK = Expect(200, own_org=True)


def each(expect: Expect) -> dict[str, Expect]:
    return dict.fromkeys(PERSONAS, expect)


def panel(
    *,
    admin: Expect,
    other_admin: Expect,
) -> dict[str, Expect]:
    """The panel gate (PanelAccessMixin): anonymous → sign-in, member and sales staff
    (no org role) → 403; the org admin and the superuser (with ``?org=``) alike."""
    return {
        "anon": SIGN_IN,
        "member": FORBIDDEN,
        "admin": admin,
        "other_admin": other_admin,
        "sales": FORBIDDEN,
        "superuser": admin,
    }


@dataclass(frozen=True)
class Route:
    """One URL: the expectations per method and persona, and how to fill it in.
    ``xfail`` maps (method, persona) to the cause of a known authorization bug; the
    case is then marked xfail(strict=True) until the bug is fixed."""

    get: dict[str, Expect]
    post: dict[str, Expect]
    kwargs: Callable[["World"], dict] = lambda w: {}
    query: Callable[["World"], dict] = lambda w: {}
    data: Callable[["World"], dict] = lambda w: {}
    json: bool = False
    superuser_org: bool = True  # the superuser opens our org's panel with ?org=
    xfail: dict[tuple[str, str], str] = field(default_factory=dict)


# Panel pages (GET-only): POST → 405 once through the gate.
def panel_page(*, object_page: bool = False, **extra) -> Route:
    return Route(
        get=panel(admin=OK, other_admin=NOT_FOUND if object_page else OK),
        post=panel(admin=NOT_ALLOWED, other_admin=NOT_ALLOWED),
        **extra,
    )


# Panel exports (GET-only, audited as data.exported in the exporting organization).
def panel_export(**extra) -> Route:
    return Route(
        get=panel(admin=CHANGES_OK, other_admin=OWN_ORG_OK),
        post=panel(admin=NOT_ALLOWED, other_admin=NOT_ALLOWED),
        **extra,
    )


# Panel mutations (POST-only): GET → 405 once through the gate.
def panel_mutation(*, other_admin: Expect, **extra) -> Route:
    return Route(
        get=panel(admin=NOT_ALLOWED, other_admin=NOT_ALLOWED),
        post=panel(admin=CHANGES, other_admin=other_admin),
        **extra,
    )


def signed_in(anon: Expect, others: Expect) -> dict[str, Expect]:
    return {"anon": anon, **dict.fromkeys(PERSONAS[1:], others)}


def api(method: str) -> Route:
    """The gateway API: the method is checked first (405 JSON), then the service key;
    a browser session is not a credential (401 JSON for every persona)."""
    other = "post" if method == "get" else "get"
    return Route(
        **{method: each(API_UNAUTHORIZED), other: each(NOT_ALLOWED)},
        superuser_org=False,
        json=True,
    )


def admin_api(method: str, **extra) -> Route:
    """The admin API (docs/admin-api.md): a browser session is not a credential
    (401 JSON for every persona); a method the operation lacks is a JSON 405. A
    PUT operation answers both GET and POST with 405."""
    others = {m: each(NOT_ALLOWED) for m in METHODS if m != method}
    mine = {method: each(API_UNAUTHORIZED)} if method in METHODS else {}
    return Route(**mine, **others, superuser_org=False, json=True, **extra)


def user_kwargs(w: "World") -> dict:
    return {"pk": w.target.pk}


# --- the world: our organization's objects --------------------------------------------


@dataclass
class World:
    org: Organization
    other_org: Organization
    admin: User
    member: User
    target: User  # a paid member of our org: the object of row actions
    unpaid: User
    banned: User
    unverified: User
    token_request: TokenRequest
    access_token: AdminAccessToken


@pytest.fixture
def world(org, other_org, admin_user, member, other_admin_user) -> World:
    fund(org)
    fund(other_org)
    target = UserFactory(organization=org, email="target@acme.example")
    give(target, 300_000)
    unpaid = UserFactory(organization=org, email="unpaid@acme.example", is_paid=False)
    banned = UserFactory(organization=org, email="banned@acme.example", is_banned=True)
    unverified = UserFactory(
        organization=org, email="unverified@acme.example", email_verified_at=None
    )
    # The other organization has people and a policy too, so that its admin's
    # allowed actions on their own organization do something there.
    UserFactory(organization=other_org, email="user@globex.example")
    policy_ensure(organization=org)
    policy_ensure(organization=other_org)
    override_set(
        actor=None,
        organization=org,
        user=target,
        floor=250_000,
        ceiling=None,
        exempt_auto_increase=False,
        exempt_reclamation=False,
    )
    token_request = token_request_submit(
        user=target, token_type="inference", amount=50_000, reason="A big project."
    )
    access_token, _secret = access_token_create(
        actor=admin_user, name="automation", scope="write", expires_in_days=30
    )
    return World(
        access_token=access_token,
        org=org,
        other_org=other_org,
        admin=admin_user,
        member=member,
        target=target,
        unpaid=unpaid,
        banned=banned,
        unverified=unverified,
        token_request=token_request,
    )


def _enterprise_request_of_someone_else() -> EnterpriseAccountRequest:
    requester = UserFactory(organization=None, email="ceo@initech.example")
    return EnterpriseAccountRequest.objects.create(
        requested_by=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=["ceo@initech.example", "dev@initech.example"],
        admin_emails=["ceo@initech.example"],
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )


# --- the table ------------------------------------------------------------------------

ROUTES: dict[str, Route] = {
    # -- site --------------------------------------------------------------------------
    # home accepts any method: it only redirects each person to where they work.
    "home": Route(
        get={
            "anon": Expect(302, location=LOGIN),
            "member": Expect(302, location=reverse("tokens:me")),
            "admin": Expect(302, location=reverse("panel")),
            "other_admin": Expect(302, location=reverse("panel")),
            "sales": Expect(302, location=reverse("tokens:me")),
            "superuser": Expect(302, location=reverse("panel")),
        },
        post={
            "anon": Expect(302, location=LOGIN),
            "member": Expect(302, location=reverse("tokens:me")),
            "admin": Expect(302, location=reverse("panel")),
            "other_admin": Expect(302, location=reverse("panel")),
            "sales": Expect(302, location=reverse("tokens:me")),
            "superuser": Expect(302, location=reverse("panel")),
        },
        superuser_org=False,
    ),
    "healthz": Route(get=each(OK), post=each(NOT_ALLOWED), superuser_org=False),
    "favicon": Route(get=each(REDIRECT), post=each(NOT_ALLOWED), superuser_org=False),
    "terms": Route(get=each(OK), post=each(NOT_ALLOWED), superuser_org=False),
    # /panel/ only forwards to User Management, which applies the gate.
    "panel": Route(
        get=each(Expect(302, location=reverse("tokens:user_list"))),
        post=each(Expect(302, location=reverse("tokens:user_list"))),
        superuser_org=False,
    ),
    # -- accounts ----------------------------------------------------------------------
    "accounts:login": Route(
        get=signed_in(OK, REDIRECT),
        post=signed_in(REDIRECT, REDIRECT),
        data=lambda w: {"username": w.member.email, "password": PASSWORD},
        superuser_org=False,
    ),
    "accounts:logout": Route(
        get=each(NOT_ALLOWED), post=each(REDIRECT), superuser_org=False
    ),
    "accounts:register": Route(
        get=signed_in(OK, REDIRECT),
        post=signed_in(Expect(302, global_effect=True), REDIRECT),
        data=lambda w: {
            "email": "newcomer@example.com",
            "first_name": "New",
            "last_name": "Comer",
            "password1": "a-long-passphrase-42",
            "password2": "a-long-passphrase-42",
            "accept_terms": "on",
        },
        superuser_org=False,
    ),
    # The signed link is the credential: whoever holds it verifies that address.
    "accounts:verify_email": Route(
        get=each(Expect(302, effect=True)),
        post=each(NOT_ALLOWED),
        kwargs=lambda w: {"token": email_verification_token(w.unverified)},
        superuser_org=False,
    ),
    "accounts:verify_resend": Route(
        get=signed_in(SIGN_IN, NOT_ALLOWED),
        post=signed_in(SIGN_IN, REDIRECT),
        superuser_org=False,
    ),
    "accounts:mfa_setup": Route(
        # People with a confirmed device are sent to verify instead.
        get={
            "anon": SIGN_IN,
            "member": OK,
            "admin": Expect(302, location=reverse("accounts:mfa_verify")),
            "other_admin": Expect(302, location=reverse("accounts:mfa_verify")),
            "sales": OK,
            "superuser": Expect(302, location=reverse("accounts:mfa_verify")),
        },
        post={
            "anon": SIGN_IN,
            "member": OK,  # a wrong code: the form again
            "admin": Expect(302, location=reverse("accounts:mfa_verify")),
            "other_admin": Expect(302, location=reverse("accounts:mfa_verify")),
            "sales": OK,
            "superuser": Expect(302, location=reverse("accounts:mfa_verify")),
        },
        data=lambda w: {"code": "000000"},
        superuser_org=False,
    ),
    "accounts:mfa_backup_codes": Route(
        get=signed_in(SIGN_IN, Expect(302, location=reverse("home"))),
        post=signed_in(SIGN_IN, NOT_ALLOWED),
        superuser_org=False,
    ),
    "accounts:mfa_verify": Route(
        get={
            "anon": SIGN_IN,
            "member": Expect(302, location=reverse("accounts:mfa_setup")),
            "admin": OK,
            "other_admin": OK,
            "sales": Expect(302, location=reverse("accounts:mfa_setup")),
            "superuser": OK,
        },
        post={
            "anon": SIGN_IN,
            "member": Expect(302, location=reverse("accounts:mfa_setup")),
            "admin": OK,  # a wrong code: the form again (audited as mfa.failed)
            "other_admin": OK,
            "sales": Expect(302, location=reverse("accounts:mfa_setup")),
            "superuser": OK,
        },
        data=lambda w: {"code": "000000"},
        superuser_org=False,
    ),
    "accounts:password_reset": Route(
        get=each(OK),
        post=each(Expect(302, location=reverse("accounts:password_reset_done"))),
        data=lambda w: {"email": w.target.email},
        superuser_org=False,
    ),
    "accounts:password_reset_done": Route(
        get=each(OK), post=each(NOT_ALLOWED), superuser_org=False
    ),
    # The emailed link (uid + token) is the credential; it leads to the form.
    "accounts:password_reset_confirm": Route(
        get=each(REDIRECT),
        post=each(REDIRECT),
        kwargs=lambda w: {
            "uidb64": urlsafe_base64_encode(force_bytes(w.target.pk)),
            "token": default_token_generator.make_token(w.target),
        },
        superuser_org=False,
    ),
    "accounts:password_reset_complete": Route(
        get=each(OK), post=each(NOT_ALLOWED), superuser_org=False
    ),
    # -- gateway API (service keys only) -----------------------------------------------
    "gateway_api:authorize": api("post"),
    "gateway_api:usage": api("post"),
    "gateway_api:balance": api("get"),
    "gateway_api:hold_release": Route(
        get=each(NOT_ALLOWED),
        post=each(API_UNAUTHORIZED),
        kwargs=lambda w: {"hold_id": uuid.uuid4()},
        json=True,
        superuser_org=False,
    ),
    # The contract is public (no secret in it).
    "gateway_api:api-root": Route(
        get=each(NOT_FOUND), post=each(NOT_FOUND), superuser_org=False, json=True
    ),
    "gateway_api:openapi-json": Route(
        get=each(OK), post=each(NOT_ALLOWED), superuser_org=False, json=True
    ),
    "api_not_found": Route(
        get=each(NOT_FOUND), post=each(NOT_FOUND), superuser_org=False, json=True
    ),
    # -- admin API (personal access tokens only; docs/admin-api.md) -------------------
    "admin_api:api-root": Route(
        get=each(NOT_FOUND), post=each(NOT_FOUND), superuser_org=False, json=True
    ),
    "admin_api:openapi-json": Route(
        get=each(OK), post=each(NOT_ALLOWED), superuser_org=False, json=True
    ),
    "admin_api:token_info": admin_api("get"),
    "admin_api:user_list": admin_api("get"),
    "admin_api:user_detail": admin_api(
        "get", kwargs=lambda w: {"user_id": w.target.pk}
    ),
    "admin_api:user_set_limit": admin_api(
        "put", kwargs=lambda w: {"user_id": w.target.pk, "token_type": "inference"}
    ),
    "admin_api:user_set_paid": admin_api(
        "put", kwargs=lambda w: {"user_id": w.target.pk}
    ),
    "admin_api:user_ban": admin_api("post", kwargs=lambda w: {"user_id": w.target.pk}),
    "admin_api:user_unban": admin_api(
        "post", kwargs=lambda w: {"user_id": w.banned.pk}
    ),
    "admin_api:users_bulk_set_limit": admin_api("post"),
    "admin_api:request_list": admin_api("get"),
    "admin_api:request_approve": admin_api(
        "post", kwargs=lambda w: {"request_id": w.token_request.pk}
    ),
    "admin_api:request_deny": admin_api(
        "post", kwargs=lambda w: {"request_id": w.token_request.pk}
    ),
    "admin_api:policy_read": admin_api("get"),
    # The same path as policy_read (GET); its own method is PATCH.
    "admin_api:policy_update": admin_api("get"),
    "admin_api:preset_apply": admin_api("post"),
    "admin_api:plan_preview": admin_api("get"),
    "admin_api:run_now": admin_api("post"),
    "admin_api:usage_summary": admin_api("get"),
    "admin_api:usage_events_csv": admin_api("get"),
    "admin_api:audit_list": admin_api("get"),
    # -- admin API pages of the panel --------------------------------------------------
    "api_panel:token_list": panel_page(),
    "api_panel:docs": panel_page(),
    # Creating answers the page with the secret (200). Another organization's
    # admin creates a token of their own organization; a superuser cannot (a token
    # acts as an org admin on their organization).
    "api_panel:token_create": Route(
        get=panel(admin=NOT_ALLOWED, other_admin=NOT_ALLOWED),
        post={
            **panel(admin=CHANGES_OK, other_admin=OWN_ORG_OK),
            "superuser": FORBIDDEN,
        },
        data=lambda w: {"name": "ci", "scope": "read", "expires_in_days": 30},
    ),
    "api_panel:token_revoke": panel_mutation(
        other_admin=NOT_FOUND, kwargs=lambda w: {"pk": w.access_token.pk}
    ),
    # -- members -----------------------------------------------------------------------
    "tokens:me": Route(
        get=signed_in(SIGN_IN, OK),
        post=signed_in(SIGN_IN, NOT_ALLOWED),
        superuser_org=False,
    ),
    "tokens:request_submit": Route(
        get=signed_in(SIGN_IN, NOT_ALLOWED),
        post={
            "anon": SIGN_IN,
            "member": CHANGES,
            "admin": CHANGES,  # an org admin is also a member of the organization
            "other_admin": OWN_ORG,
            "sales": Expect(400, note="not in an organization"),
            "superuser": Expect(400, note="not in an organization"),
        },
        data=lambda w: {
            "token_type": "embedding",
            "amount": "1000",
            "reason": "More data to ingest.",
        },
        superuser_org=False,
    ),
    # Members of an organization see why they cannot ask; the bad form re-renders.
    "tokens:enterprise_request": Route(
        get=signed_in(SIGN_IN, OK),
        post=signed_in(SIGN_IN, OK),
        data=lambda w: {
            "organization_name": "Acme Two",
            "billing_address": "1 Road",
            "user_emails": "nobody1@example.com, nobody2@example.com",
            "admin_emails": "nobody1@example.com",
            "inference_tokens": "2000000",
            "embedding_tokens": "2000000",
        },
        superuser_org=False,
    ),
    # Withdrawing a pending request: only its requester (the world's requests belong
    # to other people, so everyone here gets a 404; tests/tokens/test_withdrawal.py
    # proves the requester's own withdrawal).
    "tokens:request_withdraw": Route(
        get=signed_in(SIGN_IN, NOT_ALLOWED),
        post=signed_in(SIGN_IN, NOT_FOUND),
        kwargs=lambda w: {"pk": w.token_request.pk},
        superuser_org=False,
    ),
    "tokens:enterprise_request_withdraw": Route(
        get=signed_in(SIGN_IN, NOT_ALLOWED),
        post=signed_in(SIGN_IN, NOT_FOUND),
        kwargs=lambda w: {"pk": _enterprise_request_of_someone_else().pk},
        superuser_org=False,
    ),
    # -- Management → User Management --------------------------------------------------
    "tokens:user_list": panel_page(),
    "tokens:user_export": panel_export(),
    # The other admin's selection of our ids matches none of their users: refused
    # with "select at least one user", nothing changed.
    "tokens:user_bulk": panel_mutation(
        other_admin=Expect(302),
        data=lambda w: {"action": "ban", "pk": [w.target.pk], "confirmed": "1"},
    ),
    # The admin's own choice of columns (a display preference: it changes nothing
    # the snapshot covers; tests/tokens/test_user_columns.py checks it is kept).
    "tokens:user_columns": Route(
        get=panel(admin=NOT_ALLOWED, other_admin=NOT_ALLOWED),
        post=panel(admin=REDIRECT, other_admin=REDIRECT),
        data=lambda w: {"columns": ["id", "total_usage"]},
    ),
    "tokens:user_detail": panel_page(object_page=True, kwargs=user_kwargs),
    "tokens:user_limit_edit": Route(
        get=panel(admin=OK, other_admin=NOT_FOUND),
        post=panel(admin=CHANGES, other_admin=NOT_FOUND),
        kwargs=lambda w: {"pk": w.target.pk, "token_type": "inference"},
        data=lambda w: {"limit": "400000"},
    ),
    "tokens:user_deactivate_confirm": panel_page(object_page=True, kwargs=user_kwargs),
    "tokens:user_deactivate": panel_mutation(other_admin=NOT_FOUND, kwargs=user_kwargs),
    "tokens:user_reactivate": panel_mutation(
        other_admin=NOT_FOUND, kwargs=lambda w: {"pk": w.unpaid.pk}
    ),
    "tokens:user_ban_confirm": panel_page(object_page=True, kwargs=user_kwargs),
    "tokens:user_ban": panel_mutation(other_admin=NOT_FOUND, kwargs=user_kwargs),
    "tokens:user_unban": panel_mutation(
        other_admin=NOT_FOUND, kwargs=lambda w: {"pk": w.banned.pk}
    ),
    "tokens:user_verify": panel_mutation(
        other_admin=NOT_FOUND, kwargs=lambda w: {"pk": w.unverified.pk}
    ),
    # -- Management → Token Distribution -----------------------------------------------
    # ?override=<our user> opens the override editor: another org's user is a 404.
    "tokens:distribution": panel_page(
        object_page=True, query=lambda w: {"override": w.target.pk}
    ),
    "tokens:distribution_preset_apply": panel_mutation(
        other_admin=OWN_ORG, data=lambda w: {"preset": "aggressive"}
    ),
    "tokens:distribution_limits_update": panel_mutation(
        other_admin=OWN_ORG,
        data=lambda w: {
            "floor_inference": "600000",
            "floor_embedding": "500000",
            "ceiling": "5000000",
        },
    ),
    "tokens:distribution_auto_increase_update": panel_mutation(
        other_admin=OWN_ORG,
        data=lambda w: {
            "auto_increase_enabled": "on",
            "triggers": "70, 90",
            "cooldown_minutes": "120",
            "bump_mode": "tiers",
            "bump_value": "25",
            "tier_bumps": "10, 20",
        },
    ),
    "tokens:distribution_reclamation_update": panel_mutation(
        other_admin=OWN_ORG,
        data=lambda w: {
            "reclamation_enabled": "on",
            "lookback_days": "60",
            "headroom_percent": "10",
        },
    ),
    "tokens:distribution_schedule_update": panel_mutation(
        other_admin=OWN_ORG,
        data=lambda w: {
            "schedule": "weekly",
            "schedule_hour": "3",
            "schedule_weekday": "4",
            "schedule_day": "1",
        },
    ),
    "tokens:distribution_preview": panel_page(),
    "tokens:distribution_run": panel_mutation(other_admin=OWN_ORG),
    # Our user's email is not a user of the other organization: the form says so.
    "tokens:distribution_override_set": panel_mutation(
        other_admin=Expect(400),
        data=lambda w: {"email": w.target.email, "floor": "900000"},
    ),
    "tokens:distribution_override_remove": panel_mutation(
        other_admin=NOT_FOUND, kwargs=lambda w: {"user_id": w.target.pk}
    ),
    # -- Management → Token Requests ---------------------------------------------------
    "tokens:request_list": panel_page(),
    "tokens:request_approve": Route(
        get=panel(admin=OK, other_admin=NOT_FOUND),
        post=panel(admin=CHANGES, other_admin=NOT_FOUND),
        kwargs=lambda w: {"pk": w.token_request.pk},
        data=lambda w: {"amount": "50000", "note": "Go ahead."},
    ),
    "tokens:request_deny": Route(
        get=panel(admin=OK, other_admin=NOT_FOUND),
        post=panel(admin=CHANGES, other_admin=NOT_FOUND),
        kwargs=lambda w: {"pk": w.token_request.pk},
        data=lambda w: {"note": "Not this month."},
    ),
    "tokens:request_auto_approval": panel_mutation(
        other_admin=OWN_ORG,
        data=lambda w: {
            "enabled": "on",
            "max_amount": "10000",
            "max_consumption_percent": "50",
            "max_per_user_month": "500000",
            "max_approvals_per_day": "3",
        },
    ),
    # -- Management → Alerts (docs/forecasts.md) ---------------------------------------
    "tokens:alerts": panel_page(),
    "tokens:alert_settings_update": panel_mutation(
        other_admin=OWN_ORG,
        data=lambda w: {
            "org_enabled": "on",
            "org_thresholds": "60, 90",
            "user_thresholds": "80, 100",
            "webhook_url": "",
        },
    ),
    # Sends a test message (none saved here: the message says so); changes nothing.
    "tokens:alert_webhook_test": Route(
        get=panel(admin=NOT_ALLOWED, other_admin=NOT_ALLOWED),
        post=panel(admin=REDIRECT, other_admin=REDIRECT),
    ),
    # -- Analytics ---------------------------------------------------------------------
    "analytics:statistics": panel_page(),
    "analytics:statistics_export_monthly": panel_export(),
    "analytics:statistics_export_users": panel_export(),
    "analytics:statistics_export_models": panel_export(),
    "analytics:statistics_export_events": panel_export(),
    "analytics:activity": panel_page(),
    "analytics:activity_export": panel_export(kwargs=lambda w: {"tab": "audit"}),
    "analytics:activity_excerpts": panel_mutation(
        other_admin=OWN_ORG, data=lambda w: {"store_prompt_excerpts": "on"}
    ),
}


# --- walking the resolver -------------------------------------------------------------


def resolved_routes(patterns=None, namespace: str = "", prefix: str = ""):
    """(name with namespace, route) for every URL pattern of the project."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from resolved_routes(pattern.url_patterns, ns, route)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else None
            yield name, route


def project_url_names() -> tuple[set[str], list[str]]:
    """The named URLs outside the admin family, and the routes without a name."""
    names, unnamed = set(), []
    for name, route in resolved_routes():
        if name is not None and name.startswith("admin:"):
            continue
        if route.startswith("staff/"):
            continue  # the admin family, named or not
        if name is None:
            unnamed.append(route)
        else:
            names.add(name)
    return names, unnamed


def test_every_url_has_a_declared_rule():
    names, unnamed = project_url_names()
    missing = sorted(names - ROUTES.keys())
    assert not missing, (
        "URLs without an entry in the authorization matrix (declare who may use "
        f"them in tests/test_authorization_matrix.py ROUTES): {missing}"
    )
    assert not unnamed, f"URL patterns without a name cannot be declared: {unnamed}"


def test_no_rule_names_a_url_that_does_not_exist():
    names, _unnamed = project_url_names()
    assert not sorted(ROUTES.keys() - names)


def test_every_rule_declares_every_persona_for_both_methods():
    for name, route in ROUTES.items():
        for method in METHODS:
            assert set(getattr(route, method)) == set(PERSONAS), (name, method)


def test_the_admin_family_is_mounted_under_staff():
    routes = [route for name, route in resolved_routes() if name == "admin:index"]
    assert routes == ["staff/"]


# --- the snapshot ---------------------------------------------------------------------

AUTH_ACTIONS = Q(action__startswith="auth.") | Q(action__startswith="mfa.")


def snapshot(org=None) -> dict:
    """What a request may not change: counts and values, for one organization or
    (``org=None``) for the whole database."""

    def scoped(queryset, path="organization"):
        return queryset if org is None else queryset.filter(**{path: org.pk})

    users = scoped(User.objects.all()).order_by("pk")
    state = {
        "audit": scoped(AuditEvent.objects.exclude(AUTH_ACTIONS)).count(),
        "allocation_changes": scoped(AllocationChange.objects.all()).count(),
        "token_requests": list(
            scoped(TokenRequest.objects.order_by("pk")).values_list(
                "pk", "status", "amount"
            )
        ),
        "runs": scoped(DistributionRun.objects.all()).count(),
        "overrides": list(
            scoped(UserOverride.objects.order_by("pk")).values_list(
                "user_id", "floor", "ceiling"
            )
        ),
        "policies": list(
            scoped(DistributionPolicy.objects.order_by("pk")).values(
                "preset",
                "floor_inference",
                "floor_embedding",
                "ceiling",
                "auto_increase_enabled",
                "triggers",
                "reclamation_enabled",
                "lookback_days",
                "schedule",
            )
        ),
        "rules": list(
            scoped(AutoApprovalRule.objects.order_by("pk")).values(
                "enabled", "max_amount"
            )
        ),
        "alert_settings": list(
            scoped(AlertSettings.objects.order_by("pk")).values(
                "org_enabled", "org_thresholds", "user_thresholds", "webhook_url"
            )
        ),
        "users": list(
            users.values_list(
                "pk",
                "is_paid",
                "is_banned",
                "email_verified_at",
                "role",
                "organization_id",
                "is_active",
                "password",
            )
        ),
        "organizations": list(
            scoped(Organization.objects.order_by("pk"), "pk").values_list(
                "pk", "status", "store_prompt_excerpts"
            )
        ),
    }
    if org is None:
        state["enterprise_requests"] = EnterpriseAccountRequest.objects.count()
        state["service_keys"] = list(
            ServiceKey.objects.order_by("pk").values_list("pk", "revoked_at")
        )
    return state


def changed(before: dict, after: dict) -> list[str]:
    return [key for key in before if before[key] != after[key]]


# --- exercising the table -------------------------------------------------------------


def cases():
    for name, route in ROUTES.items():
        for method in METHODS:
            for persona in PERSONAS:
                marks = []
                reason = route.xfail.get((method, persona))
                if reason:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                yield pytest.param(
                    name, method, persona, id=f"{name}-{method}-{persona}", marks=marks
                )


def url_for(name: str, route: Route, world: World, persona: str) -> tuple[str, dict]:
    url = reverse(name, kwargs=route.kwargs(world) or None)
    query = dict(route.query(world))
    if persona == "superuser" and route.superuser_org:
        query["org"] = world.org.pk
    return url, query


def send(client, method: str, url: str, query: dict, route: Route, world: World):
    if method == "get":
        return client.get(url, query)
    if query:
        from urllib.parse import urlencode

        url = f"{url}?{urlencode(query)}"
    data = route.data(world)
    if route.json:
        return client.post(url, json.dumps(data), content_type="application/json")
    return client.post(url, data)


@pytest.mark.parametrize(("name", "method", "persona"), list(cases()))
def test_authorization_matrix(request, world, name, method, persona):
    route = ROUTES[name]
    expect: Expect = getattr(route, method)[persona]
    client = request.getfixturevalue(f"{persona}_client")
    url, query = url_for(name, route, world, persona)
    # A refusal or a read may change nothing anywhere; the other cases are judged
    # on our organization alone.
    judged_on_ours = expect.effect or expect.own_org or expect.global_effect
    scope = world.org if judged_on_ours else None
    before = snapshot(scope)

    response = send(client, method, url, query, route, world)

    assert response.status_code == expect.status, (
        f"{method.upper()} {url} {query} as {persona}: expected {expect.status}, "
        f"got {response.status_code} {response.get('Location', '')}"
    )
    if expect.location is not None:
        assert response["Location"].startswith(expect.location), response["Location"]
    if url.startswith("/api/"):
        assert response["Content-Type"].startswith("application/json")
        if response.status_code >= 400:
            assert "error" in response.json()
    differences = changed(before, snapshot(scope))
    if expect.effect:
        assert differences, (
            "an allowed mutation changed nothing: the test data is not effective"
        )
    elif scope is not None:
        assert not differences, f"our organization changed: {differences}"
    else:
        assert not differences, f"a refused or read-only request changed {differences}"


# --- the Django admin (/staff/): one declared family ----------------------------------

# What the "Sales" group may open (data migrations accounts 0002 and tokens 0002).
SALES_CHANGELISTS = {
    "accounts.enterpriseaccountrequest",
    "accounts.organization",
    "accounts.user",
    "tokens.purchase",
    "tokens.aimodel",
    "tokens.allocation",
    "tokens.usageevent",
}
NOT_STAFF = ("anon", "member", "admin", "other_admin")


def registered_models() -> list[str]:
    return sorted(model._meta.label_lower for model in admin.site._registry)


def changelist_url(label: str) -> str:
    app_label, model = label.split(".")
    return reverse(f"admin:{app_label}_{model}_changelist")


def staff_expect(persona: str, *, sales_allowed: bool) -> int:
    if persona in NOT_STAFF:
        return 302
    if persona == "sales" and not sales_allowed:
        return 403
    return 200


STAFF_PAGES = [
    ("index", lambda w: reverse("admin:index"), True),
    ("purchase-add", lambda w: reverse("admin:tokens_purchase_add"), True),
    (
        "organization-add-member",
        lambda w: reverse("admin:accounts_organization_add_member", args=[w.org.pk]),
        True,
    ),
    (
        "user-change",
        lambda w: reverse("admin:accounts_user_change", args=[w.target.pk]),
        True,
    ),
    (
        "servicekey-add",
        lambda w: reverse("admin:accounts_servicekey_add"),
        False,
    ),
    # A request's Activate…/Reject… confirmation pages (GET shows, changes nothing).
    (
        "enterprise-request-activate",
        lambda w: reverse(
            "admin:accounts_enterpriseaccountrequest_activate",
            args=[_enterprise_request_of_someone_else().pk],
        ),
        True,
    ),
    (
        "enterprise-request-reject",
        lambda w: reverse(
            "admin:accounts_enterpriseaccountrequest_reject",
            args=[_enterprise_request_of_someone_else().pk],
        ),
        True,
    ),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("page", "url_of", "sales_allowed"),
    STAFF_PAGES,
    ids=[page for page, _url, _sales in STAFF_PAGES],
)
def test_staff_site_pages(request, world, persona, page, url_of, sales_allowed):
    client = request.getfixturevalue(f"{persona}_client")
    url = url_of(world)
    before = snapshot()
    response = client.get(url)
    expected = staff_expect(persona, sales_allowed=sales_allowed)
    assert response.status_code == expected, (page, persona)
    if expected == 302:
        assert response["Location"].startswith(STAFF_LOGIN)
    assert not changed(before, snapshot())


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("label", registered_models())
def test_staff_site_changelists(request, world, persona, label):
    client = request.getfixturevalue(f"{persona}_client")
    response = client.get(changelist_url(label))
    expected = staff_expect(persona, sales_allowed=label in SALES_CHANGELISTS)
    assert response.status_code == expected, (label, persona)
    if expected == 302:
        assert response["Location"].startswith(STAFF_LOGIN)


@pytest.mark.parametrize("persona", PERSONAS)
def test_staff_site_action_post(request, world, persona):
    """Revoking a service key (a changelist action): superusers only."""
    key, _secret = service_key_create(actor=None, name="gateway")
    client = request.getfixturevalue(f"{persona}_client")
    before = snapshot()
    response = client.post(
        changelist_url("accounts.servicekey"),
        {"action": "revoke_keys", "_selected_action": [key.pk], "index": 0},
    )
    key.refresh_from_db()
    if persona == "superuser":
        assert response.status_code == 302
        assert key.revoked_at is not None
        return
    expected = 403 if persona == "sales" else 302
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith(STAFF_LOGIN)
    assert key.revoked_at is None
    assert not changed(before, snapshot())


def test_staff_site_family_covers_every_registered_model():
    """A model registered in /staff/ later is exercised by the changelist test (it is
    parametrized from the registry) with the Sales group refused unless listed."""
    assert set(registered_models()) >= SALES_CHANGELISTS


# --- MFA gate: every panel URL, for an admin or superuser without MFA passed ----------

PANEL_NAMES = sorted(
    name
    for name, route in resolved_routes()
    if name and name != "panel" and route.startswith("panel/")
)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", PANEL_NAMES)
@pytest.mark.parametrize("who", ["admin", "superuser"])
def test_panel_urls_require_mfa_first(world, superuser, who, name, method):
    person = world.admin if who == "admin" else superuser
    client = sign_in(person)  # signed in with a password, MFA not passed
    route = ROUTES[name]
    url, query = url_for(name, route, world, who)
    before = snapshot()
    response = send(client, method, url, query, route, world)
    assert response.status_code == 302, (name, method, who)
    assert response["Location"].startswith("/accounts/mfa/"), response["Location"]
    assert not changed(before, snapshot())


def test_panel_urls_are_all_in_the_mfa_gate_test():
    assert len(PANEL_NAMES) > 30
    assert "tokens:user_ban" in PANEL_NAMES


# --- the staff site refuses sales staff what their group does not grant -------------


def test_sales_staff_cannot_edit_a_user_or_grant_staff_rights(world, sales_client):
    before = snapshot()
    url = reverse("admin:accounts_user_change", args=[world.target.pk])
    response = sales_client.post(
        url,
        {
            "email": world.target.email,
            "first_name": "X",
            "last_name": "Y",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
        },
    )
    assert response.status_code == 403
    password = reverse("admin:auth_user_password_change", args=[world.target.pk])
    assert sales_client.get(password).status_code == 403
    response = sales_client.post(
        password,
        {"password1": "x-new-passphrase-42", "password2": "x-new-passphrase-42"},
    )
    assert response.status_code == 403
    assert not changed(before, snapshot())


def test_sales_staff_cannot_reset_mfa(world, sales_client, admin_user, admin_client):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    # admin_client signed the admin in with a confirmed device.
    devices = TOTPDevice.objects.filter(user=admin_user).count()
    assert devices
    response = sales_client.post(
        changelist_url("accounts.user"),
        {"action": "reset_mfa", "_selected_action": [admin_user.pk], "index": 0},
    )
    assert response.status_code in (200, 302)
    assert TOTPDevice.objects.filter(user=admin_user).count() == devices


# --- URL arguments outside the declared values ---------------------------------------


@pytest.mark.parametrize("persona", ["admin", "superuser"])
def test_activity_export_of_an_unknown_tab_is_a_404(request, world, persona):
    client = request.getfixturevalue(f"{persona}_client")
    client.raise_request_exception = False
    url = reverse("analytics:activity_export", kwargs={"tab": "nope"})
    before = snapshot()
    response = client.get(url, {"org": world.org.pk} if persona == "superuser" else {})
    assert response.status_code == 404
    assert not changed(before, snapshot())


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("tokens:user_detail", {"pk": 10**22}),
        ("tokens:user_limit_edit", {"pk": 1, "token_type": "bogus"}),
        ("tokens:request_approve", {"pk": 10**22}),
        ("tokens:distribution_override_remove", {"user_id": 10**22}),
    ],
)
def test_unknown_object_ids_are_404_not_500(admin_client, world, name, kwargs):
    admin_client.raise_request_exception = False
    if "token_type" in kwargs:
        kwargs = {**kwargs, "pk": world.target.pk}
    url = reverse(name, kwargs=kwargs)
    method = "post" if name.endswith("_remove") else "get"
    assert getattr(admin_client, method)(url).status_code == 404
