"""Service-level authorization (issue 14, defect 12): every mutating service × every
persona. The views check access too, but a service is the last line: a caller that
forgets (a staff action, a command, a future API) must not open a tenant's pool.

Rules: an organization's pool, users and settings are managed by its own admins,
superusers and the system (``actor=None``: scheduled jobs, the gateway); staff
status alone grants nothing there. Staff-site actions (purchases, enterprise
requests, members, service keys) need the permission (the Sales group has some),
or a superuser; MFA reset is for superusers. A refused call raises
PermissionDenied and changes nothing: no audit event, no allocation change, no
row anywhere.

``SERVICES`` must name every public function of the service modules that takes an
``actor`` (the house style: a service is told who acts): a new one fails
``test_every_service_with_an_actor_is_in_the_matrix`` until it is added here, or
to ``READS_ONLY`` when it changes nothing (a plan)."""

import importlib
import inspect
import pkgutil

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from accounts import access_tokens
from accounts import services as account_services
from tests.factories import AdminFactory, UserFactory, fund, give
from tokens import services
from tokens.models import TokenRequest
from tokens.services import alerts, distribution, requests, withdrawal

pytestmark = pytest.mark.django_db

PERSONAS = ["system", "member", "admin", "other_admin", "sales", "superuser"]
ORG = {"system", "admin", "superuser"}
# Sales holds these permissions (accounts 0002, tokens 0002).
SALES_REVIEW = {"system", "sales", "superuser"}
SUPERUSER = {"system", "superuser"}


@pytest.fixture
def world(org, other_org):
    fund(org)
    admin = AdminFactory(organization=org, email="admin@acme.example")
    target = UserFactory(
        organization=org, email="target@acme.example", email_verified_at=None
    )
    give(target, 300_000)
    give(target, 300_000, "embedding")
    sales = UserFactory(organization=None, email="sales@vendor.example", is_staff=True)
    sales.groups.add(Group.objects.get(name="Sales"))
    return {
        "org": org,
        "target": target,
        "outsider": UserFactory(organization=None, email="new@example.com"),
        "actors": {
            "system": None,
            "member": UserFactory(organization=org, email="member@acme.example"),
            "admin": admin,
            "other_admin": AdminFactory(
                organization=other_org, email="admin@globex.example"
            ),
            "sales": sales,
            "superuser": UserFactory(
                organization=None,
                email="root@vendor.example",
                is_staff=True,
                is_superuser=True,
            ),
        },
    }


def _pending_request(world):
    target = world["target"]
    return TokenRequest.objects.create(
        organization=world["org"],
        user=target,
        token_type="inference",
        amount=10_000,
        reason="Needed",
        limit_at_request=300_000,
    )


def _enterprise_request(world):
    from tokens.services import enterprise_request_submit

    requester = UserFactory(organization=None, email="ceo@initech.example")
    UserFactory(organization=None, email="ops@initech.example")
    return enterprise_request_submit(
        requester=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=["ceo@initech.example", "ops@initech.example"],
        admin_emails=["ceo@initech.example"],
        inference_tokens=4_000_000,
        embedding_tokens=2_000_000,
    )


def _expect_no_webhook(call):
    """The webhook test of an organization without a webhook: the actor is
    checked first (PermissionDenied), else the missing URL is the refusal."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Save a webhook URL first"):
        call()


def _key(world):
    return account_services.service_key_create(actor=None, name="old")[0]


def _access_token(world):
    admin = world["actors"]["admin"]
    return access_tokens.access_token_create(
        actor=admin, name="old", scope="write", expires_in_days=30
    )[0]


def _target_set(**fields):
    def prepare(world):
        type(world["target"]).objects.filter(pk=world["target"].pk).update(**fields)
        world["target"].refresh_from_db()

    return prepare


def _override(world):
    return distribution.override_set(
        actor=None,
        organization=world["org"],
        user=world["target"],
        floor=None,
        ceiling=None,
        exempt_auto_increase=True,
        exempt_reclamation=False,
    )


# name -> (who may, how to call it with an actor); each call succeeds for an
# allowed persona on the world above.
SERVICES = {
    "allocation_set_limit": (
        ORG,
        lambda w, a: services.allocation_set_limit(
            actor=a, user=w["target"], token_type="inference", limit=400_000
        ),
    ),
    "allocations_bulk_set_limit": (
        ORG,
        lambda w, a: services.allocations_bulk_set_limit(
            actor=a,
            organization=w["org"],
            users=[w["target"]],
            token_type="inference",
            limit=400_000,
        ),
    ),
    "user_deactivate": (
        ORG,
        lambda w, a: services.user_deactivate(actor=a, user=w["target"]),
    ),
    "users_set_paid": (
        ORG,
        lambda w, a: services.users_set_paid(
            actor=a, organization=w["org"], users=[w["target"]], paid=False
        ),
    ),
    "user_ban": (ORG, lambda w, a: services.user_ban(actor=a, user=w["target"])),
    "user_unban": (ORG, lambda w, a: services.user_unban(actor=a, user=w["target"])),
    "user_reactivate": (
        ORG,
        lambda w, a: services.user_reactivate(actor=a, user=w["target"]),
    ),
    "override_remove": (
        ORG,
        lambda w, a: distribution.override_remove(
            actor=a, organization=w["org"], user=w["target"]
        ),
    ),
    "users_set_banned": (
        ORG,
        lambda w, a: services.users_set_banned(
            actor=a, organization=w["org"], users=[w["target"]], banned=True
        ),
    ),
    "user_mark_verified": (
        ORG,
        lambda w, a: account_services.user_mark_verified(actor=a, user=w["target"]),
    ),
    "organization_set_prompt_excerpts": (
        ORG,
        lambda w, a: account_services.organization_set_prompt_excerpts(
            actor=a, organization=w["org"], enabled=True
        ),
    ),
    "token_request_approve": (
        ORG,
        lambda w, a: requests.token_request_approve(
            actor=a, request=w["made"], amount=10_000
        ),
    ),
    "token_request_deny": (
        ORG,
        lambda w, a: requests.token_request_deny(actor=a, request=w["made"]),
    ),
    "auto_approval_rule_update": (
        ORG,
        lambda w, a: requests.auto_approval_rule_update(
            actor=a,
            organization=w["org"],
            enabled=True,
            max_amount=50_000,
            max_consumption_percent=50,
        ),
    ),
    "alert_settings_update": (
        ORG,
        lambda w, a: alerts.alert_settings_update(
            actor=a,
            organization=w["org"],
            org_enabled=True,
            org_thresholds=[60, 90],
            runout_enabled=True,
            user_enabled=False,
            user_thresholds=[80, 100],
            webhook_url="",
        ),
    ),
    # Sends a test message and changes nothing; refused without a saved webhook
    # for the allowed, so the call is checked for the actor first.
    "alert_webhook_test": (
        ORG,
        lambda w, a: _expect_no_webhook(
            lambda: alerts.alert_webhook_test(actor=a, organization=w["org"])
        ),
    ),
    "policy_apply_preset": (
        ORG,
        lambda w, a: distribution.policy_apply_preset(
            actor=a, organization=w["org"], preset="conservative"
        ),
    ),
    "policy_update": (
        ORG,
        lambda w, a: distribution.policy_update(
            actor=a, organization=w["org"], changes={"cooldown_minutes": 90}
        ),
    ),
    "override_set": (
        ORG,
        lambda w, a: distribution.override_set(
            actor=a,
            organization=w["org"],
            user=w["target"],
            floor=None,
            ceiling=None,
            exempt_auto_increase=True,
            exempt_reclamation=False,
        ),
    ),
    "distribution_run": (
        ORG,
        lambda w, a: distribution.distribution_run(actor=a, organization=w["org"]),
    ),
    "purchase_record": (
        SALES_REVIEW,
        lambda w, a: services.purchase_record(
            actor=a,
            organization=w["org"],
            payer_email="billing@acme.example",
            inference_tokens=2_000_000,
            embedding_tokens=0,
        ),
    ),
    "enterprise_request_reject": (
        SALES_REVIEW,
        lambda w, a: services.enterprise_request_reject(
            actor=a, request=w["made"], reason="Not now."
        ),
    ),
    "enterprise_request_activate": (
        SALES_REVIEW,
        lambda w, a: services.enterprise_request_activate(actor=a, request=w["made"]),
    ),
    "organization_add_member": (
        SALES_REVIEW,
        lambda w, a: services.organization_add_member(
            actor=a, organization=w["org"], user=w["outsider"], role="user"
        ),
    ),
    "organization_remove_member": (
        SALES_REVIEW,
        lambda w, a: services.organization_remove_member(actor=a, user=w["target"]),
    ),
    # Only the requester may withdraw (none of these personas asked).
    "token_request_withdraw": (
        set(),
        lambda w, a: withdrawal.token_request_withdraw(actor=a, request=w["made"]),
    ),
    "enterprise_request_withdraw": (
        set(),
        lambda w, a: withdrawal.enterprise_request_withdraw(actor=a, request=w["made"]),
    ),
    "service_key_create": (
        SUPERUSER,
        lambda w, a: account_services.service_key_create(actor=a, name="new"),
    ),
    "service_key_revoke": (
        SUPERUSER,
        lambda w, a: account_services.service_key_revoke(actor=a, key=w["made"]),
    ),
    # Only an org admin makes a token, always for their own organization (it acts
    # as them there: the other admin's is Globex's); the system, superusers and
    # members cannot. Any of the organization's admins, a superuser or the system
    # may revoke one.
    "access_token_create": (
        {"admin", "other_admin"},
        lambda w, a: access_tokens.access_token_create(
            actor=a, name="ci", scope="read", expires_in_days=30
        ),
    ),
    "access_token_revoke": (
        ORG,
        lambda w, a: access_tokens.access_token_revoke(actor=a, token=w["made"]),
    ),
    "mfa_reset": (
        SUPERUSER,
        lambda w, a: account_services.mfa_reset(actor=a, user=w["target"]),
    ),
    "data_export_record": (
        ORG,
        lambda w, a: account_services.data_export_record(
            actor=a, organization=w["org"], what="users", filters={}
        ),
    ),
}

# Functions that take an actor but change nothing: the plans a confirmation page
# shows (tokens/services/pool/plans.py) and the self-action rule.
READS_ONLY = {
    "plan",
    "plan_activation",
    "plan_bulk_set_limit",
    "plan_member_join",
    "plan_member_leave",
    "plan_paid_change",
    "plan_request_approval",
    "plan_set_limit",
    "plan_set_paid",
    "self_action_refusal",
}


def _service_modules():
    yield account_services
    yield importlib.import_module("accounts.access_tokens")  # the admin API's tokens
    for info in pkgutil.walk_packages(services.__path__, "tokens.services."):
        yield importlib.import_module(info.name)


def _functions_with_an_actor() -> set[str]:
    return {
        name
        for module in _service_modules()
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__
        and not name.startswith("_")
        and "actor" in inspect.signature(function).parameters
    }


def test_every_service_with_an_actor_is_in_the_matrix():
    found = _functions_with_an_actor()
    assert found - READS_ONLY == set(SERVICES), (
        "Add every mutating service to SERVICES (who may, and a call that succeeds "
        "for them), or to READS_ONLY when it changes nothing."
    )
    assert found >= READS_ONLY


# Rows a refused call must leave exactly as they were.
_WATCHED = [
    "accounts.AuditEvent",
    "accounts.User",
    "accounts.Organization",
    "accounts.ServiceKey",
    "accounts.AdminAccessToken",
    "accounts.EnterpriseAccountRequest",
    "tokens.Allocation",
    "tokens.AllocationChange",
    "tokens.Purchase",
    "tokens.TokenRequest",
    "tokens.DistributionPolicy",
    "tokens.DistributionRun",
    "tokens.UserOverride",
    "tokens.AutoApprovalRule",
    "tokens.AlertSettings",
    "tokens.Alert",
]


def _snapshot() -> dict:
    return {
        name: sorted(map(repr, apps.get_model(name).objects.values_list()))
        for name in _WATCHED
    }


# Inputs some calls need, made before the call (they are not the change).
PREPARE = {
    "token_request_approve": _pending_request,
    "token_request_deny": _pending_request,
    "enterprise_request_reject": _enterprise_request,
    "enterprise_request_activate": _enterprise_request,
    "token_request_withdraw": _pending_request,
    "enterprise_request_withdraw": _enterprise_request,
    "service_key_revoke": _key,
    "access_token_revoke": _access_token,
    "user_unban": _target_set(is_banned=True),
    "user_reactivate": _target_set(is_paid=False),
    "override_remove": _override,
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_mutating_service_checks_its_actor(world, name, persona):
    allowed, call = SERVICES[name]
    actor = world["actors"][persona]
    if name in PREPARE:
        world["made"] = PREPARE[name](world)
    if persona in allowed:
        call(world, actor)
        return
    before = _snapshot()
    with pytest.raises(PermissionDenied):
        call(world, actor)
    assert _snapshot() == before


def test_staff_status_alone_grants_nothing_on_an_organization(world):
    """The reported hole: a Sales user changing limits and banning through the
    services."""
    sales = world["actors"]["sales"]
    for name in ("allocation_set_limit", "user_ban", "user_deactivate"):
        with pytest.raises(PermissionDenied):
            SERVICES[name][1](world, sales)
    world["target"].refresh_from_db()
    assert world["target"].is_paid and not world["target"].is_banned


def test_a_member_cannot_call_admin_services_of_their_own_organization(world):
    member = world["actors"]["member"]
    for name in ("user_mark_verified", "organization_set_prompt_excerpts"):
        with pytest.raises(PermissionDenied):
            SERVICES[name][1](world, member)
