"""Audit completeness (docs/product.md, Activity Logs; issue 8): every action the audit
trail must record, driven from the outside (web forms, /staff/, the gateway API), writes
exactly one audit event of its kind, with the actor, the actor's email frozen, the
organization, the target, before → after where state changes, and the client IP and
request id of the request that caused it.

Each test notes the id of the newest event, performs one action as a person (or
the gateway) would, and accounts for every event written since: the expected
action exactly once (once per user for per-user limit changes), nothing else.
"""

import logging
import re
from base64 import b32encode
from collections import Counter

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, EnterpriseAccountRequest, ServiceKey, User
from accounts.services import email_verification_token, service_key_create
from tests.conftest import ApiClient, sign_in
from tests.factories import (
    PASSWORD,
    AdminFactory,
    AIModelFactory,
    UserFactory,
    fund,
    give,
)
from tokens.models import (
    Allocation,
    AllocationChange,
    DistributionRun,
    Purchase,
    TokenRequest,
    UserOverride,
)
from tokens.services import enterprise_request_submit
from tokens.services.distribution import policy_ensure, policy_update
from tokens.services.requests import auto_approval_rule_update, token_request_submit

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
IP = "203.0.113.7"
MIN = 200_000


# --- helpers -------------------------------------------------------------------------


def last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def new_events(since_id: int):
    return AuditEvent.objects.filter(id__gt=since_id).order_by("id")


def one_new_event(action: str, since_id: int, **lookups) -> AuditEvent:
    """The one event of ``action`` written since ``since_id`` (narrowed by
    ``lookups``, e.g. a target); fails on zero or several."""
    events = list(new_events(since_id).filter(action=action, **lookups))
    assert len(events) == 1, (
        f"expected exactly one {action} event{f' for {lookups}' if lookups else ''},"
        f" got {len(events)}: {[(e.action, e.target_repr) for e in events]}"
    )
    return events[0]


def assert_only(since_id: int, expected: dict[str, int]) -> None:
    """Every event written since ``since_id``, counted by action, is ``expected``:
    no action is missing, doubled, or accompanied by a stray event."""
    written = Counter(new_events(since_id).values_list("action", flat=True))
    assert dict(written) == expected


def web(name: str) -> dict:
    """The request headers of a web/API action: client IP and request id."""
    return {"REMOTE_ADDR": IP, "HTTP_X_REQUEST_ID": f"req-{name}"}


def assert_event(
    event: AuditEvent,
    *,
    actor: User | None,
    organization,
    target=None,
    request_id: str,
    actor_email: str | None = None,
    ip: str | None = IP,
) -> None:
    """Actor (and the frozen email), organization, target, IP and request id."""
    assert event.actor_id == (actor.pk if actor else None)
    expected_email = actor_email if actor_email is not None else actor.email
    assert event.actor_email == expected_email
    assert event.organization_id == (organization.pk if organization else None)
    if target is not None:
        assert event.target_type == target._meta.label_lower
        assert event.target_id == str(target.pk)
        assert event.target_repr
    assert event.ip == ip
    assert event.request_id == f"req-{request_id}"


def limit_of(user, token_type="inference") -> int:
    row = Allocation.objects.filter(user=user, token_type=token_type).first()
    return row.limit if row else 0


def totp_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


# --- the organization ----------------------------------------------------------------


@pytest.fixture
def team(org, admin_user):
    """Acme funded with 4M of each type. The admin (who has passed MFA in
    ``admin_client``) and Ava have 500,000 of each; Bob 300,000."""
    fund(org, inference=4_000_000, embedding=4_000_000)
    ava = UserFactory(organization=org, email="ava@acme.example", first_name="Ava")
    bob = UserFactory(organization=org, email="bob@acme.example", first_name="Bob")
    for user, amount in ((admin_user, 500_000), (ava, 500_000), (bob, 300_000)):
        give(user, amount)
        give(user, amount, "embedding")
    policy_ensure(organization=org)
    return {"ava": ava, "bob": bob}


@pytest.fixture
def pending(db):
    """An enterprise account request of two registered users without organization."""
    requester = UserFactory(organization=None, email="ceo@initech.example")
    UserFactory(organization=None, email="dev@initech.example")
    return enterprise_request_submit(
        requester=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails="ceo@initech.example, dev@initech.example",
        admin_emails="ceo@initech.example",
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )


# --- authentication ------------------------------------------------------------------

LOGIN = reverse("accounts:login")


def test_sign_in_records_the_user_their_organization_ip_and_request_id(client, member):
    since = last_id()
    response = client.post(
        LOGIN, {"username": member.email, "password": PASSWORD}, **web("sign-in")
    )
    assert response.status_code == 302
    assert response["X-Request-ID"] == "req-sign-in"
    event = one_new_event(Action.SIGN_IN, since)
    assert_event(
        event,
        actor=member,
        organization=member.organization,
        target=member,
        request_id="sign-in",
    )
    assert_only(since, {Action.SIGN_IN: 1})


def test_sign_out_is_recorded_for_the_user_who_leaves(member, member_client):
    since = last_id()
    response = member_client.post(reverse("accounts:logout"), **web("sign-out"))
    assert response.status_code == 302
    event = one_new_event(Action.SIGN_OUT, since)
    assert_event(
        event,
        actor=member,
        organization=member.organization,
        target=member,
        request_id="sign-out",
    )
    assert_only(since, {Action.SIGN_OUT: 1})


def test_failed_sign_in_of_a_known_user_names_them(client, member):
    since = last_id()
    response = client.post(
        LOGIN,
        {"username": member.email, "password": "not-the-password"},
        **web("sign-in-failed"),
    )
    assert response.status_code == 200
    event = one_new_event(Action.SIGN_IN_FAILED, since)
    assert_event(
        event,
        actor=member,
        organization=member.organization,
        target=member,
        request_id="sign-in-failed",
    )
    assert_only(since, {Action.SIGN_IN_FAILED: 1})


def test_failed_sign_in_with_an_unknown_email_keeps_the_typed_email(client, db):
    since = last_id()
    client.post(
        LOGIN,
        {"username": "ghost@nowhere.example", "password": "guess"},
        **web("sign-in-unknown"),
    )
    event = one_new_event(Action.SIGN_IN_FAILED, since)
    assert_event(
        event,
        actor=None,
        actor_email="ghost@nowhere.example",
        organization=None,
        request_id="sign-in-unknown",
    )
    assert event.target_type == ""
    assert_only(since, {Action.SIGN_IN_FAILED: 1})


def test_lockout_is_recorded_once_with_the_typed_email(client, member):
    for attempt in range(4):
        client.post(
            LOGIN,
            {"username": member.email, "password": "nope"},
            **web(f"attempt-{attempt}"),
        )
    since = last_id()
    response = client.post(
        LOGIN, {"username": member.email, "password": "nope"}, **web("lockout")
    )
    assert response.status_code == 429
    event = one_new_event(Action.LOCKOUT, since)
    assert_event(
        event,
        actor=member,
        actor_email=member.email,
        organization=member.organization,
        target=member,
        request_id="lockout",
    )
    # The fifth attempt is itself a failed sign-in; the lockout is one event more.
    assert_only(since, {Action.SIGN_IN_FAILED: 1, Action.LOCKOUT: 1})

    since = last_id()
    again = client.post(
        LOGIN, {"username": member.email, "password": PASSWORD}, **web("locked")
    )
    assert again.status_code == 429
    assert not new_events(since).filter(action=Action.LOCKOUT).exists()


def test_mfa_enrolment_is_recorded(admin_user):
    client = Client()
    client.force_login(admin_user)
    setup = reverse("accounts:mfa_setup")
    assert client.get(setup, **web("mfa-page")).status_code == 200
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)
    since = last_id()
    response = client.post(setup, {"code": totp_code(device)}, **web("mfa-enrol"))
    assert response.status_code == 302
    event = one_new_event(Action.MFA_ENROLLED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=admin_user.organization,
        target=admin_user,
        request_id="mfa-enrol",
    )
    assert event.after == {"devices": ["totp", "backup_codes"]}
    assert_only(since, {Action.MFA_ENROLLED: 1})


def test_a_refused_mfa_code_is_recorded(admin_user):
    TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    client = Client()
    client.force_login(admin_user)
    since = last_id()
    response = client.post(
        reverse("accounts:mfa_verify"), {"code": "000000"}, **web("mfa-failed")
    )
    assert response.status_code == 200
    event = one_new_event(Action.MFA_FAILED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=admin_user.organization,
        target=admin_user,
        request_id="mfa-failed",
    )
    assert_only(since, {Action.MFA_FAILED: 1})


def test_mfa_reset_from_the_staff_site_is_recorded(
    admin_user, superuser, superuser_client
):
    TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    since = last_id()
    response = superuser_client.post(
        admin_url("accounts_user_changelist"),
        {"action": "reset_mfa", "_selected_action": [admin_user.pk]},
        **web("mfa-reset"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.MFA_RESET, since)
    assert_event(
        event,
        actor=superuser,
        organization=admin_user.organization,
        target=admin_user,
        request_id="mfa-reset",
    )
    assert (event.before, event.after) == ({"has_mfa": True}, {"has_mfa": False})
    assert_only(since, {Action.MFA_RESET: 1})


def test_registration_and_email_verification_are_recorded(client, db):
    since = last_id()
    response = client.post(
        reverse("accounts:register"),
        {
            "email": "new@example.com",
            "first_name": "New",
            "last_name": "Person",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "accept_terms": "on",
        },
        **web("register"),
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    event = one_new_event(Action.USER_REGISTERED, since)
    assert_event(
        event, actor=user, organization=None, target=user, request_id="register"
    )
    assert_only(since, {Action.USER_REGISTERED: 1})

    since = last_id()
    link = reverse(
        "accounts:verify_email", kwargs={"token": email_verification_token(user)}
    )
    assert client.get(link, **web("verify-email")).status_code == 302
    event = one_new_event(Action.USER_EMAIL_VERIFIED, since)
    assert_event(
        event, actor=user, organization=None, target=user, request_id="verify-email"
    )
    assert event.after["email_verified_at"]
    assert_only(since, {Action.USER_EMAIL_VERIFIED: 1})


def test_password_reset_is_recorded(client, member):
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    url = reverse(
        "accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token}
    )
    form_url = client.get(url, **web("reset-page"))["Location"]
    since = last_id()
    response = client.post(
        form_url,
        {"new_password1": "a-new-long-pass-42", "new_password2": "a-new-long-pass-42"},
        **web("password-reset"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.PASSWORD_RESET, since)
    assert_event(
        event,
        actor=member,
        organization=member.organization,
        target=member,
        request_id="password-reset",
    )
    assert_only(since, {Action.PASSWORD_RESET: 1})


def test_password_reset_request_is_recorded(client, member):
    since = last_id()
    response = client.post(
        reverse("accounts:password_reset"),
        {"email": member.email},
        **web("reset-request"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.PASSWORD_RESET_REQUESTED, since)
    assert_event(
        event,
        actor=None,
        actor_email=member.email,
        organization=member.organization,
        target=member,
        request_id="reset-request",
    )


# --- limits ------------------------------------------------------------------------


def test_manual_limit_edit_is_recorded_with_before_and_after(
    admin_client, admin_user, org, team
):
    ava = team["ava"]
    since = last_id()
    response = admin_client.post(
        reverse(
            "tokens:user_limit_edit", kwargs={"pk": ava.pk, "token_type": "inference"}
        ),
        {"limit": "800000"},
        **web("limit-manual"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.LIMIT_CHANGED, since)
    assert_event(
        event, actor=admin_user, organization=org, target=ava, request_id="limit-manual"
    )
    assert event.before == {"inference_limit": 500_000}
    assert event.after == {"inference_limit": 800_000}
    change = AllocationChange.objects.get(audit_event=event)
    assert (change.source, change.delta) == (AllocationChange.Source.MANUAL, 300_000)
    assert_only(since, {Action.LIMIT_CHANGED: 1})


def test_bulk_limit_change_records_one_event_per_user(
    admin_client, admin_user, org, team
):
    ava, bob = team["ava"], team["bob"]
    since = last_id()
    response = admin_client.post(
        reverse("tokens:user_bulk"),
        {
            "action": "set_limit",
            "token_type": "embedding",
            "limit": "600000",
            "pk": [ava.pk, bob.pk],
            "confirmed": "1",
        },
        **web("limit-bulk"),
    )
    assert response.status_code == 302
    for user, before in ((ava, 500_000), (bob, 300_000)):
        event = one_new_event(Action.LIMIT_CHANGED, since, target_id=str(user.pk))
        assert_event(
            event,
            actor=admin_user,
            organization=org,
            target=user,
            request_id="limit-bulk",
        )
        assert event.before == {"embedding_limit": before}
        assert event.after == {"embedding_limit": 600_000}
    assert_only(since, {Action.LIMIT_CHANGED: 2})


def test_auto_increase_from_the_gateway_is_recorded_without_actor(org, team, gateway):
    ava = team["ava"]
    policy_update(
        actor=None,
        organization=org,
        changes={
            "auto_increase_enabled": True,
            "triggers": [50],
            "bump_mode": "percent_current",
            "bump_value": 25,
            "tier_bumps": [],
        },
    )
    AIModelFactory(key="gpt", input_rate=1, output_rate=1)
    since = last_id()
    response = gateway.post(
        "/api/v1/usage",
        {
            "events": [
                {
                    "event_id": "ev-auto-1",
                    "user": ava.email,
                    "model": "gpt",
                    "token_type": "inference",
                    "prompt_tokens": 300_000,
                    "completion_tokens": 0,
                    "occurred_at": timezone.now().isoformat(),
                }
            ]
        },
        **web("auto-increase"),
    )
    assert response.status_code == 200, response.content
    event = one_new_event(Action.AUTO_INCREASE, since)
    assert_event(
        event,
        actor=None,
        actor_email="",
        organization=org,
        target=ava,
        request_id="auto-increase",
    )
    assert event.before == {"inference_limit": 500_000}
    assert event.after == {"inference_limit": 625_000}
    assert limit_of(ava) == 625_000
    change = AllocationChange.objects.get(audit_event=event)
    assert change.source == AllocationChange.Source.AUTO_INCREASE
    assert_only(since, {Action.AUTO_INCREASE: 1})


def test_distribution_run_records_the_run_and_one_event_per_user_changed(
    admin_client, admin_user, org, team
):
    bob = team["bob"]  # 300,000: under the Standard floor of 500,000
    since = last_id()
    response = admin_client.post(reverse("tokens:distribution_run"), **web("run"))
    assert response.status_code == 302
    run = DistributionRun.objects.get(organization=org)

    event = one_new_event(Action.LIMIT_CHANGED, since)
    assert_event(
        event, actor=admin_user, organization=org, target=bob, request_id="run"
    )
    assert event.before == {"inference_limit": 300_000, "embedding_limit": 300_000}
    assert event.after == {"inference_limit": 500_000, "embedding_limit": 500_000}
    sources = set(
        AllocationChange.objects.filter(audit_event=event).values_list(
            "source", "distribution_run"
        )
    )
    assert sources == {(AllocationChange.Source.DISTRIBUTION, run.pk)}

    event = one_new_event(Action.DISTRIBUTION_RUN, since)
    assert_event(
        event, actor=admin_user, organization=org, target=run, request_id="run"
    )
    assert event.after["changes"] == 2
    assert event.after["users_changed"] == 1
    assert_only(since, {Action.LIMIT_CHANGED: 1, Action.DISTRIBUTION_RUN: 1})


def test_reclamation_in_a_run_records_the_lowered_limit(
    admin_client, admin_user, org, team
):
    ava, bob = team["ava"], team["bob"]
    give(bob, 500_000)
    give(bob, 500_000, "embedding")
    give(ava, 2_000_000)  # far above her (zero) usage: reclaimed to the floor
    policy_update(
        actor=None,
        organization=org,
        changes={
            "reclamation_enabled": True,
            "lookback_days": 30,
            "headroom_percent": 25,
        },
    )
    since = last_id()
    response = admin_client.post(reverse("tokens:distribution_run"), **web("reclaim"))
    assert response.status_code == 302
    event = one_new_event(Action.LIMIT_CHANGED, since)
    assert_event(
        event, actor=admin_user, organization=org, target=ava, request_id="reclaim"
    )
    assert event.before == {"inference_limit": 2_000_000}
    assert event.after == {"inference_limit": 500_000}
    assert "reclamation" in event.message
    change = AllocationChange.objects.get(audit_event=event)
    assert change.source == AllocationChange.Source.RECLAMATION
    one_new_event(Action.DISTRIBUTION_RUN, since)
    assert_only(since, {Action.LIMIT_CHANGED: 1, Action.DISTRIBUTION_RUN: 1})


@pytest.mark.parametrize(
    ("name", "paid_before", "before_limits", "after_limits"),
    [
        ("deactivate", True, 500_000, 1_000),
        # Reactivation grants the policy's floor (Standard: 500,000), not MIN.
        ("reactivate", False, 1_000, 500_000),
    ],
)
def test_deactivation_and_reactivation_record_paid_and_limits(
    admin_client, admin_user, org, team, name, paid_before, before_limits, after_limits
):
    ava = team["ava"]
    if not paid_before:
        admin_client.post(reverse("tokens:user_deactivate", kwargs={"pk": ava.pk}))
    since = last_id()
    response = admin_client.post(
        reverse(f"tokens:user_{name}", kwargs={"pk": ava.pk}), **web(name)
    )
    assert response.status_code == 302
    event = one_new_event(Action.USER_PAID_CHANGED, since)
    assert_event(event, actor=admin_user, organization=org, target=ava, request_id=name)
    assert event.before == {
        "is_paid": paid_before,
        "inference_limit": before_limits,
        "embedding_limit": before_limits,
    }
    assert event.after == {
        "is_paid": not paid_before,
        "inference_limit": after_limits,
        "embedding_limit": after_limits,
    }
    sources = set(
        AllocationChange.objects.filter(audit_event=event).values_list(
            "source", flat=True
        )
    )
    assert sources == {
        AllocationChange.Source.DEACTIVATION
        if paid_before
        else AllocationChange.Source.REACTIVATION
    }
    assert_only(since, {Action.USER_PAID_CHANGED: 1})


def test_bulk_paid_off_records_one_event_per_user(admin_client, admin_user, org, team):
    ava, bob = team["ava"], team["bob"]
    since = last_id()
    response = admin_client.post(
        reverse("tokens:user_bulk"),
        {"action": "paid_off", "pk": [ava.pk, bob.pk], "confirmed": "1"},
        **web("bulk-paid-off"),
    )
    assert response.status_code == 302
    for user in (ava, bob):
        event = one_new_event(Action.USER_PAID_CHANGED, since, target_id=str(user.pk))
        assert_event(
            event,
            actor=admin_user,
            organization=org,
            target=user,
            request_id="bulk-paid-off",
        )
        assert (event.before["is_paid"], event.after["is_paid"]) == (True, False)
    assert_only(since, {Action.USER_PAID_CHANGED: 2})


# --- banned and verified -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "action", "banned_before"),
    [("ban", Action.USER_BANNED, False), ("unban", Action.USER_UNBANNED, True)],
)
def test_ban_and_unban_are_recorded(
    admin_client, admin_user, org, team, name, action, banned_before
):
    ava = team["ava"]
    if banned_before:
        User.objects.filter(pk=ava.pk).update(is_banned=True)
    since = last_id()
    response = admin_client.post(
        reverse(f"tokens:user_{name}", kwargs={"pk": ava.pk}), **web(name)
    )
    assert response.status_code == 302
    event = one_new_event(action, since)
    assert_event(event, actor=admin_user, organization=org, target=ava, request_id=name)
    assert event.before == {"is_banned": banned_before}
    assert event.after == {"is_banned": not banned_before}
    assert_only(since, {action: 1})


def test_bulk_ban_records_one_event_per_user(admin_client, admin_user, org, team):
    ava, bob = team["ava"], team["bob"]
    since = last_id()
    admin_client.post(
        reverse("tokens:user_bulk"),
        {"action": "ban", "pk": [ava.pk, bob.pk], "confirmed": "1"},
        **web("bulk-ban"),
    )
    for user in (ava, bob):
        event = one_new_event(Action.USER_BANNED, since, target_id=str(user.pk))
        assert_event(
            event,
            actor=admin_user,
            organization=org,
            target=user,
            request_id="bulk-ban",
        )
    assert_only(since, {Action.USER_BANNED: 2})


def test_marking_a_user_verified_is_recorded(admin_client, admin_user, org, team):
    ava = team["ava"]
    User.objects.filter(pk=ava.pk).update(email_verified_at=None)
    since = last_id()
    response = admin_client.post(
        reverse("tokens:user_verify", kwargs={"pk": ava.pk}), **web("verify")
    )
    assert response.status_code == 302
    event = one_new_event(Action.USER_EMAIL_VERIFIED, since)
    assert_event(
        event, actor=admin_user, organization=org, target=ava, request_id="verify"
    )
    assert event.before == {"email_verified_at": None}
    assert event.after["email_verified_at"]
    assert_only(since, {Action.USER_EMAIL_VERIFIED: 1})


# --- policy and overrides ------------------------------------------------------------

POLICY_FORMS = [
    (
        "distribution_preset_apply",
        {"preset": "conservative"},
        {"preset": "standard", "ceiling": 5_000_000},
        {"preset": "conservative", "ceiling": 1_000_000},
    ),
    (
        "distribution_limits_update",
        {
            "floor_inference": "600000",
            "floor_embedding": "500000",
            "ceiling": "5000000",
        },
        {"preset": "standard", "floor_inference": 500_000},
        {"preset": "custom", "floor_inference": 600_000},
    ),
    (
        "distribution_auto_increase_update",
        {
            "auto_increase_enabled": "on",
            "triggers": "80, 95",
            "cooldown_minutes": "120",
            "bump_mode": "tiers",
            "bump_value": "25",
            "tier_bumps": "25, 50",
        },
        {"preset": "standard", "cooldown_minutes": 60},
        {"preset": "custom", "cooldown_minutes": 120},
    ),
    (
        "distribution_reclamation_update",
        {"reclamation_enabled": "on", "lookback_days": "60", "headroom_percent": "10"},
        {"reclamation_enabled": False, "lookback_days": 30},
        {"reclamation_enabled": True, "lookback_days": 60},
    ),
    (
        "distribution_schedule_update",
        {
            "schedule": "weekly",
            "schedule_hour": "3",
            "schedule_weekday": "4",
            "schedule_day": "1",
        },
        {"schedule": "off"},
        {"schedule": "weekly"},
    ),
]


@pytest.mark.parametrize(
    ("url_name", "data", "before", "after"),
    POLICY_FORMS,
    ids=[row[0].removeprefix("distribution_") for row in POLICY_FORMS],
)
def test_policy_changes_are_recorded_with_the_changed_fields(
    admin_client, admin_user, org, team, url_name, data, before, after
):
    policy = policy_ensure(organization=org)
    since = last_id()
    response = admin_client.post(reverse(f"tokens:{url_name}"), data, **web(url_name))
    assert response.status_code == 302
    event = one_new_event(Action.POLICY_CHANGED, since)
    assert_event(
        event, actor=admin_user, organization=org, target=policy, request_id=url_name
    )
    for field, value in before.items():
        assert event.before[field] == value
    for field, value in after.items():
        assert event.after[field] == value
    assert set(event.before) == set(event.after)
    assert_only(since, {Action.POLICY_CHANGED: 1})


def test_override_set_and_removed_are_recorded(admin_client, admin_user, org, team):
    ava = team["ava"]
    since = last_id()
    response = admin_client.post(
        reverse("tokens:distribution_override_set"),
        {"email": ava.email, "floor": "900000", "ceiling": "", "note": "Lead"},
        **web("override-set"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.OVERRIDE_SET, since)
    assert_event(
        event, actor=admin_user, organization=org, target=ava, request_id="override-set"
    )
    assert event.before is None
    assert event.after["floor"] == 900_000
    assert event.after["note"] == "Lead"
    assert_only(since, {Action.OVERRIDE_SET: 1})

    since = last_id()
    response = admin_client.post(
        reverse("tokens:distribution_override_remove", kwargs={"user_id": ava.pk}),
        **web("override-remove"),
    )
    assert response.status_code == 302
    assert not UserOverride.objects.filter(user=ava).exists()
    event = one_new_event(Action.OVERRIDE_REMOVED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=ava,
        request_id="override-remove",
    )
    assert event.before["floor"] == 900_000
    assert event.after is None
    assert_only(since, {Action.OVERRIDE_REMOVED: 1})


# --- token requests ------------------------------------------------------------------


def test_a_member_submitting_a_request_is_recorded(org, team):
    ava = team["ava"]
    client = sign_in(ava)
    since = last_id()
    response = client.post(
        reverse("tokens:request_submit"),
        {"token_type": "inference", "amount": "100000", "reason": "Quarter end"},
        **web("request-submit"),
    )
    assert response.status_code == 302
    token_request = TokenRequest.objects.get(user=ava)
    event = one_new_event(Action.REQUEST_SUBMITTED, since)
    assert_event(
        event,
        actor=ava,
        organization=org,
        target=token_request,
        request_id="request-submit",
    )
    assert event.after == {
        "token_type": "inference",
        "amount": 100_000,
        "inference_limit": 500_000,
        "reason": "Quarter end",
    }
    assert_only(since, {Action.REQUEST_SUBMITTED: 1})


def test_a_member_withdrawing_their_request_is_recorded(org, team):
    ava = team["ava"]
    token_request = token_request_submit(
        user=ava, token_type="inference", amount=100_000, reason="Quarter end"
    )
    client = sign_in(ava)
    since = last_id()
    response = client.post(
        reverse("tokens:request_withdraw", kwargs={"pk": token_request.pk}),
        **web("request-withdraw"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.REQUEST_WITHDRAWN, since)
    assert_event(
        event,
        actor=ava,
        organization=org,
        target=token_request,
        request_id="request-withdraw",
    )
    assert (event.before, event.after) == (
        {"status": "pending"},
        {"status": "withdrawn"},
    )
    assert_only(since, {Action.REQUEST_WITHDRAWN: 1})


def test_approving_a_request_records_the_decision_and_the_limit_once(
    admin_client, admin_user, org, team
):
    ava = team["ava"]
    token_request = token_request_submit(
        user=ava, token_type="inference", amount=100_000, reason="Quarter end"
    )
    since = last_id()
    response = admin_client.post(
        reverse("tokens:request_approve", kwargs={"pk": token_request.pk}),
        {"amount": "80000", "note": "Most of it"},
        **web("request-approve"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.REQUEST_APPROVED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=token_request,
        request_id="request-approve",
    )
    assert event.before == {"status": "pending", "inference_limit": 500_000}
    assert event.after["status"] == "approved"
    assert event.after["approved_amount"] == 80_000
    assert event.after["inference_limit"] == 580_000
    change = AllocationChange.objects.get(audit_event=event)
    assert change.source == AllocationChange.Source.REQUEST
    # The limit change is the approval's event: no separate LIMIT_CHANGED.
    assert_only(since, {Action.REQUEST_APPROVED: 1})


def test_denying_a_request_is_recorded(admin_client, admin_user, org, team):
    ava = team["ava"]
    token_request = token_request_submit(
        user=ava, token_type="embedding", amount=100_000, reason="Indexing"
    )
    since = last_id()
    response = admin_client.post(
        reverse("tokens:request_deny", kwargs={"pk": token_request.pk}),
        {"note": "Not this month"},
        **web("request-deny"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.REQUEST_DENIED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=token_request,
        request_id="request-deny",
    )
    assert (event.before, event.after) == (
        {"status": "pending"},
        {"status": "denied"},
    )
    assert_only(since, {Action.REQUEST_DENIED: 1})


def test_an_auto_approved_request_records_the_submission_and_a_system_approval(
    admin_user, org, team
):
    ava = team["ava"]
    auto_approval_rule_update(
        actor=admin_user,
        organization=org,
        enabled=True,
        max_amount=200_000,
        max_consumption_percent=90,
    )
    client = sign_in(ava)
    since = last_id()
    client.post(
        reverse("tokens:request_submit"),
        {"token_type": "inference", "amount": "50000", "reason": "Small"},
        **web("request-auto"),
    )
    token_request = TokenRequest.objects.get(user=ava)
    assert token_request.status == TokenRequest.Status.APPROVED
    submitted = one_new_event(Action.REQUEST_SUBMITTED, since)
    assert_event(
        submitted,
        actor=ava,
        organization=org,
        target=token_request,
        request_id="request-auto",
    )
    approved = one_new_event(Action.REQUEST_APPROVED, since)
    assert_event(
        approved,
        actor=None,
        actor_email="",
        organization=org,
        target=token_request,
        request_id="request-auto",
    )
    assert approved.after["auto_approved"] is True
    assert approved.after["inference_limit"] == 550_000
    assert_only(since, {Action.REQUEST_SUBMITTED: 1, Action.REQUEST_APPROVED: 1})


def test_auto_approval_rule_change_is_recorded(admin_client, admin_user, org, team):
    since = last_id()
    response = admin_client.post(
        reverse("tokens:request_auto_approval"),
        {
            "enabled": "on",
            "max_amount": "150000",
            "max_consumption_percent": "62.5",
            "max_per_user_month": "400000",
            "max_approvals_per_day": "3",
        },
        **web("auto-approval"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.AUTO_APPROVAL_CHANGED, since)
    rule = org.auto_approval_rule
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=rule,
        request_id="auto-approval",
    )
    assert event.before == {
        "enabled": False,
        "max_amount": 100_000,
        "max_consumption_percent": 50.0,
        "max_per_user_month": 1_000_000,
    }
    assert event.after == {
        "enabled": True,
        "max_amount": 150_000,
        "max_consumption_percent": 62.5,
        "max_per_user_month": 400_000,
    }
    assert_only(since, {Action.AUTO_APPROVAL_CHANGED: 1})


def test_alert_settings_change_is_recorded_with_the_changed_fields(
    admin_client, admin_user, org, team
):
    since = last_id()
    response = admin_client.post(
        reverse("tokens:alert_settings_update"),
        {
            "org_enabled": "on",
            "org_thresholds": "50, 80, 100",
            "runout_enabled": "",
            "user_enabled": "on",
            "user_thresholds": "90, 100",
            "webhook_url": "",
        },
        **web("alerts"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.ORG_SETTINGS_CHANGED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=org.alert_settings,
        request_id="alerts",
    )
    assert event.before == {"runout_enabled": True, "user_thresholds": [80, 100]}
    assert event.after == {"runout_enabled": False, "user_thresholds": [90, 100]}
    assert_only(since, {Action.ORG_SETTINGS_CHANGED: 1})


# --- exports and settings --------------------------------------------------------

EXPORTS = [
    ("tokens:user_export", {}, {"role": "user"}, "users", {"role": "user"}),
    (
        "analytics:statistics_export_monthly",
        {},
        {"month": "2026-01"},
        "statistics-monthly",
        {"from": "2026-01-01", "to": "2026-01-31"},
    ),
    (
        "analytics:statistics_export_users",
        {},
        {"start": "2026-01-05", "end": "2026-01-20"},
        "statistics-users",
        {"from": "2026-01-05", "to": "2026-01-20"},
    ),
    ("analytics:statistics_export_models", {}, {}, "statistics-models", {}),
    ("analytics:statistics_export_events", {}, {}, "usage-events", {}),
    (
        "analytics:activity_export",
        {"tab": "usage"},
        {"tab": "usage"},
        "activity-usage",
        {},
    ),
    (
        "analytics:activity_export",
        {"tab": "audit"},
        {"action": Action.SIGN_IN},
        "activity-audit",
        {"action": Action.SIGN_IN},
    ),
]


@pytest.mark.parametrize(
    ("url_name", "kwargs", "params", "what", "filters"),
    EXPORTS,
    ids=[f"{row[0]}-{row[3]}" for row in EXPORTS],
)
def test_csv_exports_record_who_exported_what(
    admin_client, admin_user, org, team, url_name, kwargs, params, what, filters
):
    since = last_id()
    response = admin_client.get(
        reverse(url_name, kwargs=kwargs or None), params, **web("export")
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    b"".join(response.streaming_content)
    event = one_new_event(Action.DATA_EXPORTED, since)
    assert_event(event, actor=admin_user, organization=org, request_id="export")
    assert event.after["export"] == what
    for key, value in filters.items():
        assert event.after["filters"][key] == value
    assert_only(since, {Action.DATA_EXPORTED: 1})


def test_turning_prompt_excerpts_on_is_recorded(admin_client, admin_user, org, team):
    since = last_id()
    response = admin_client.post(
        reverse("analytics:activity_excerpts"),
        {"store_prompt_excerpts": "on"},
        **web("excerpts"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.ORG_SETTINGS_CHANGED, since)
    assert_event(
        event, actor=admin_user, organization=org, target=org, request_id="excerpts"
    )
    assert (event.before, event.after) == (
        {"store_prompt_excerpts": False},
        {"store_prompt_excerpts": True},
    )
    assert_only(since, {Action.ORG_SETTINGS_CHANGED: 1})


# --- the staff site: keys, organizations, purchases, members ------------------------


def test_creating_a_service_key_is_recorded_without_its_secret(
    superuser, superuser_client, org
):
    since = last_id()
    response = superuser_client.post(
        admin_url("accounts_servicekey_add"),
        {"name": "Acme gateway", "organization": org.pk},
        **web("key-create"),
    )
    assert response.status_code == 302
    key = ServiceKey.objects.get(name="Acme gateway")
    event = one_new_event(Action.SERVICE_KEY_CREATED, since)
    assert_event(
        event, actor=superuser, organization=org, target=key, request_id="key-create"
    )
    assert event.after == {"name": "Acme gateway", "prefix": key.prefix}
    assert_only(since, {Action.SERVICE_KEY_CREATED: 1})


def test_revoking_a_service_key_is_recorded(superuser, superuser_client, org):
    key, _secret = service_key_create(actor=None, name="Old gateway", organization=org)
    since = last_id()
    superuser_client.post(
        admin_url("accounts_servicekey_changelist"),
        {"action": "revoke_keys", "_selected_action": [key.pk]},
        **web("key-revoke"),
    )
    event = one_new_event(Action.SERVICE_KEY_REVOKED, since)
    assert_event(
        event, actor=superuser, organization=org, target=key, request_id="key-revoke"
    )
    assert (event.before, event.after) == ({"revoked": False}, {"revoked": True})
    assert_only(since, {Action.SERVICE_KEY_REVOKED: 1})


def test_an_enterprise_account_request_is_recorded(db):
    requester = UserFactory(organization=None, email="ceo@initech.example")
    UserFactory(organization=None, email="dev@initech.example")
    client = sign_in(requester)
    since = last_id()
    response = client.post(
        reverse("tokens:enterprise_request"),
        {
            "organization_name": "Initech",
            "billing_address": "1 Initech Way",
            "user_emails": "ceo@initech.example, dev@initech.example",
            "admin_emails": "ceo@initech.example",
            "inference_tokens": "2000000",
            "embedding_tokens": "2000000",
            "other_information": "",
        },
        **web("enterprise-request"),
    )
    assert response.status_code == 302
    enterprise = EnterpriseAccountRequest.objects.get()
    event = one_new_event(Action.ORG_REQUESTED, since)
    assert_event(
        event,
        actor=requester,
        organization=None,
        target=enterprise,
        request_id="enterprise-request",
    )
    assert event.after["organization_name"] == "Initech"
    assert_only(since, {Action.ORG_REQUESTED: 1})


def test_activating_an_organization_records_it_its_purchase_and_each_share(
    sales_client, sales_user, pending
):
    since = last_id()
    response = sales_client.post(
        admin_url("accounts_enterpriseaccountrequest_changelist"),
        {
            "action": "activate_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
        },
        **web("activate"),
    )
    assert response.status_code == 302
    pending.refresh_from_db()
    organization = pending.organization
    assert organization is not None

    event = one_new_event(Action.ORG_ACTIVATED, since)
    assert_event(
        event,
        actor=sales_user,
        organization=organization,
        target=organization,
        request_id="activate",
    )
    assert event.before == {"request": pending.pk, "status": "pending"}
    assert event.after["users"] == 2
    assert event.after["inference_share"] == 1_000_000

    purchase = Purchase.objects.get(organization=organization)
    event = one_new_event(Action.PURCHASE_RECORDED, since)
    assert_event(
        event,
        actor=sales_user,
        organization=organization,
        target=purchase,
        request_id="activate",
    )

    for user in organization.members.all():
        event = one_new_event(Action.LIMIT_CHANGED, since, target_id=str(user.pk))
        assert_event(
            event,
            actor=sales_user,
            organization=organization,
            target=user,
            request_id="activate",
        )
        assert event.before == {"inference_limit": 0, "embedding_limit": 0}
        assert event.after == {
            "inference_limit": 1_000_000,
            "embedding_limit": 1_000_000,
        }
        sources = set(
            AllocationChange.objects.filter(audit_event=event).values_list(
                "source", flat=True
            )
        )
        assert sources == {AllocationChange.Source.ACTIVATION}
    assert_only(
        since,
        {Action.ORG_ACTIVATED: 1, Action.PURCHASE_RECORDED: 1, Action.LIMIT_CHANGED: 2},
    )


def test_rejecting_an_enterprise_request_is_recorded(sales_client, sales_user, pending):
    since = last_id()
    sales_client.post(
        admin_url("accounts_enterpriseaccountrequest_changelist"),
        {
            "action": "reject_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
            "reason": "Payment not received.",
        },
        **web("reject"),
    )
    event = one_new_event(Action.ORG_REQUEST_REJECTED, since)
    assert_event(
        event, actor=sales_user, organization=None, target=pending, request_id="reject"
    )
    assert event.after == {"status": "rejected", "reason": "Payment not received."}
    assert_only(since, {Action.ORG_REQUEST_REJECTED: 1})


def test_withdrawing_an_enterprise_request_is_recorded(pending):
    requester = pending.requested_by
    client = sign_in(requester)
    since = last_id()
    client.post(
        reverse("tokens:enterprise_request_withdraw", kwargs={"pk": pending.pk}),
        **web("enterprise-withdraw"),
    )
    event = one_new_event(Action.ORG_REQUEST_WITHDRAWN, since)
    assert_event(
        event,
        actor=requester,
        organization=None,
        target=pending,
        request_id="enterprise-withdraw",
    )
    assert event.after == {"status": "withdrawn"}
    assert_only(since, {Action.ORG_REQUEST_WITHDRAWN: 1})


def test_a_purchase_added_on_the_staff_site_is_recorded_once(
    sales_client, sales_user, org
):
    since = last_id()
    response = sales_client.post(
        admin_url("tokens_purchase_add"),
        {
            "organization": org.pk,
            "payer_email": "billing@acme.example",
            "inference_tokens": "4000000",
            "embedding_tokens": "2000000",
            "purchased_on": "2026-01-15",
            "starts_on": "2026-01-15",
            "expires_on": "",
            "comment": "Top-up",
        },
        **web("purchase"),
    )
    assert response.status_code == 302
    purchase = Purchase.objects.get(organization=org)
    event = one_new_event(Action.PURCHASE_RECORDED, since)
    assert_event(
        event,
        actor=sales_user,
        organization=org,
        target=purchase,
        request_id="purchase",
    )
    assert event.after["inference_tokens"] == 4_000_000
    assert event.after["embedding_tokens"] == 2_000_000
    # The form's trial run of the service (rolled back) leaves no event behind.
    assert_only(since, {Action.PURCHASE_RECORDED: 1})


def test_adding_and_removing_a_member_on_the_staff_site_are_recorded(
    sales_client, sales_user, org
):
    fund(org, inference=2_000_000, embedding=2_000_000)
    AdminFactory(organization=org, email="boss@acme.example")
    newcomer = UserFactory(organization=None, email="new@acme.example")
    since = last_id()
    response = sales_client.post(
        admin_url("accounts_organization_add_member", org.pk),
        {"email": newcomer.email, "role": "user"},
        **web("member-add"),
    )
    assert response.status_code == 302
    event = one_new_event(Action.MEMBER_ADDED, since)
    assert_event(
        event,
        actor=sales_user,
        organization=org,
        target=newcomer,
        request_id="member-add",
    )
    assert event.before["organization"] is None
    assert event.after["organization"] == org.name
    assert event.after["inference_limit"] == MIN
    assert_only(since, {Action.MEMBER_ADDED: 1})

    since = last_id()
    sales_client.post(
        admin_url("accounts_user_changelist"),
        {
            "action": "remove_from_organization",
            "_selected_action": [newcomer.pk],
            "apply": "1",
        },
        **web("member-remove"),
    )
    newcomer.refresh_from_db()
    assert newcomer.organization is None
    event = one_new_event(Action.MEMBER_REMOVED, since)
    assert_event(
        event,
        actor=sales_user,
        organization=org,
        target=newcomer,
        request_id="member-remove",
    )
    assert event.before["inference_limit"] == MIN
    assert event.after["organization"] is None
    assert_only(since, {Action.MEMBER_REMOVED: 1})


# --- secrets never reach the logs or the trail --------------------------------------


def test_secrets_never_reach_the_logs_or_the_audit_trail(
    caplog, superuser_client, admin_user, org, team
):
    """A full flow: registration, sign-in with wrong and right passwords, MFA
    enrolment, a service key created on the staff site and used on the API, a
    password reset. Neither the captured logs (DEBUG) nor any event's before,
    after or message holds a password, the key's secret, the TOTP key or the
    Authorization header."""
    caplog.set_level(logging.DEBUG)
    for name in ("axes", "django", "django_otp", "accounts", "tokens", "analytics"):
        caplog.set_level(logging.DEBUG, logger=name)
    secrets: list[str] = []

    # Registration and sign-in, with a wrong password first.
    new_password = "Registration-pass-7781"
    wrong_password = "Wrong-guess-pass-4432"
    anon = Client()
    anon.post(
        reverse("accounts:register"),
        {
            "email": "flow@example.com",
            "first_name": "Flow",
            "last_name": "Test",
            "password1": new_password,
            "password2": new_password,
            "accept_terms": "on",
        },
        **web("flow-register"),
    )
    anon.post(
        LOGIN,
        {"username": "flow@example.com", "password": wrong_password},
        **web("flow-wrong"),
    )
    anon.post(
        LOGIN,
        {"username": "flow@example.com", "password": new_password},
        **web("flow-sign-in"),
    )
    secrets += [new_password, wrong_password, PASSWORD]

    # MFA enrolment of the org admin.
    client = Client()
    client.post(
        LOGIN, {"username": admin_user.email, "password": PASSWORD}, **web("flow-admin")
    )
    client.get(reverse("accounts:mfa_setup"), **web("flow-mfa-page"))
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)
    client.post(
        reverse("accounts:mfa_setup"), {"code": totp_code(device)}, **web("flow-mfa")
    )
    secrets += [device.key, b32encode(device.bin_key).decode().rstrip("=")]

    # A service key created on the staff site, its secret used on the API.
    created = superuser_client.post(
        admin_url("accounts_servicekey_add"),
        {"name": "Flow gateway", "organization": org.pk},
        follow=True,
        **web("flow-key"),
    )
    match = re.search(r"\beak_[0-9a-f]{12}_[A-Za-z0-9_-]+", created.content.decode())
    assert match, "the secret is shown once"
    secret = match.group(0)
    secrets.append(secret)
    api = ApiClient(secret)
    AIModelFactory(key="gpt")
    api.post(
        "/api/v1/usage",
        {
            "events": [
                {
                    "event_id": "flow-1",
                    "user": team["ava"].email,
                    "model": "gpt",
                    "token_type": "inference",
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "occurred_at": timezone.now().isoformat(),
                }
            ]
        },
        **web("flow-api"),
    )
    # A refused key: the API logs nothing of the header either.
    ApiClient("eak_000000000000_not-a-real-secret-value").get(
        "/api/v1/balance", {"user": team["ava"].email, "token_type": "inference"}
    )
    secrets += ["not-a-real-secret-value", f"Bearer {secret}"]

    # A password reset through the emailed link.
    member = team["bob"]
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    reset = Client()
    form_url = reset.get(
        reverse(
            "accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token}
        )
    )["Location"]
    reset_password = "Reset-pass-new-9090"
    reset.post(
        form_url,
        {"new_password1": reset_password, "new_password2": reset_password},
        **web("flow-reset"),
    )
    secrets.append(reset_password)

    events = list(AuditEvent.objects.all())
    actions = {e.action for e in events}
    assert {
        Action.USER_REGISTERED,
        Action.SIGN_IN_FAILED,
        Action.SIGN_IN,
        Action.MFA_ENROLLED,
        Action.SERVICE_KEY_CREATED,
        Action.PASSWORD_RESET,
    } <= actions
    trail = "\n".join(
        f"{e.before!r} {e.after!r} {e.message} {e.target_repr}" for e in events
    )
    logs = caplog.text + "\n".join(
        str(record.args) for record in caplog.records if record.args
    )
    assert caplog.records, "the flow logs something (the check is not vacuous)"
    for value in secrets:
        assert value not in trail, f"a secret reached the audit trail: {value[:6]}…"
        assert value not in logs, f"a secret reached the logs: {value[:6]}…"


# --- admin API access tokens (docs/admin-api.md) --------------------------------------


def test_creating_an_access_token_is_recorded_without_its_secret(
    admin_user, admin_client, org
):
    from accounts.models import AdminAccessToken

    since = last_id()
    response = admin_client.post(
        reverse("api_panel:token_create"),
        {"name": "CI", "scope": "write", "expires_in_days": 30},
        **web("token-create"),
    )
    assert response.status_code == 200
    token = AdminAccessToken.objects.get(name="CI")
    event = one_new_event(Action.ACCESS_TOKEN_CREATED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=token,
        request_id="token-create",
    )
    assert event.after["prefix"] == token.prefix
    assert response.context["secret"] not in str(event.after)
    assert_only(since, {Action.ACCESS_TOKEN_CREATED: 1})


def test_revoking_an_access_token_is_recorded(admin_user, admin_client, org):
    from accounts.access_tokens import access_token_create

    token, _secret = access_token_create(
        actor=admin_user, name="Old", scope="read", expires_in_days=7
    )
    since = last_id()
    admin_client.post(
        reverse("api_panel:token_revoke", args=[token.pk]), **web("token-revoke")
    )
    event = one_new_event(Action.ACCESS_TOKEN_REVOKED, since)
    assert_event(
        event,
        actor=admin_user,
        organization=org,
        target=token,
        request_id="token-revoke",
    )
    assert (event.before, event.after) == ({"revoked": False}, {"revoked": True})
    assert_only(since, {Action.ACCESS_TOKEN_REVOKED: 1})


def test_a_refused_access_token_is_recorded(db):
    from django.core.cache import cache

    cache.clear()
    since = last_id()
    response = Client().get(
        "/api/v1/admin/users",
        headers={"Authorization": "Bearer eat_000000000000_nope"},
        **web("token-refused"),
    )
    assert response.status_code == 401
    event = one_new_event(Action.ACCESS_TOKEN_REFUSED, since)
    assert_event(
        event, actor=None, organization=None, request_id="token-refused", actor_email=""
    )
    assert event.after == {"reason": "unknown"}
    assert_only(since, {Action.ACCESS_TOKEN_REFUSED: 1})
