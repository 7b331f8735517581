"""Session rules (issue 9): a new key at sign-in, sign-out deletes the server session,
banning / deactivating / removing a user ends all their sessions, the panel's idle
timeout, the absolute lifetime, and a password change ending the other sessions.

Time is controlled without freezegun: the session's own timestamps are rewritten, or
``django.utils.timezone.now`` is patched."""

import datetime as dt
import re
from importlib import import_module
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import sessions
from accounts.models import AuditEvent
from tests.conftest import sign_in
from tests.factories import PASSWORD, AdminFactory, UserFactory, fund
from tokens.services import (
    organization_remove_member,
    user_deactivate,
    user_reactivate,
    users_set_banned,
    users_set_paid,
)

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
LOGOUT = reverse("accounts:logout")
ME = reverse("tokens:me")
PANEL = reverse("tokens:user_list")
IDLE = 30 * 60
ABSOLUTE = 12 * 60 * 60


def session_exists(key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


def key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def shift(client: Client, **seconds_ago: int) -> None:
    """Move the session's start and/or last use into the past."""
    session = client.session
    now = sessions.now_seconds()
    if "started" in seconds_ago:
        session[sessions.STARTED_AT] = now - seconds_ago["started"]
    if "seen" in seconds_ago:
        session[sessions.LAST_SEEN_AT] = now - seconds_ago["seen"]
    session.save()


def is_signed_out(client: Client) -> bool:
    response = client.get(ME)
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


@pytest.fixture
def funded(org):
    fund(org)
    return org


# --- sign-in and sign-out -------------------------------------------------------------


def test_sign_in_issues_a_new_session_key_and_drops_the_old_one(client, member):
    # A visitor's session exists before signing in (e.g. planted by an attacker).
    before = client.session
    before["visited"] = True
    before.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = before.session_key
    old_key = before.session_key
    assert session_exists(old_key)

    response = client.post(LOGIN, {"username": member.email, "password": PASSWORD})

    assert response.status_code == 302
    new_key = key_of(client)
    assert new_key != old_key
    assert not session_exists(old_key)
    assert client.session[SESSION_KEY] == str(member.pk)
    assert client.session[sessions.STARTED_AT] == pytest.approx(
        sessions.now_seconds(), abs=5
    )


def test_sign_out_deletes_the_server_session(member):
    client = Client()
    client.post(LOGIN, {"username": member.email, "password": PASSWORD})
    key = key_of(client)
    assert session_exists(key)

    response = client.post(LOGOUT)

    assert response.status_code == 302
    assert not session_exists(key)
    assert not Session.objects.filter(session_key=key).exists()
    # Replaying the old cookie gets nobody in.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert is_signed_out(replay)


# --- ending every session of a user ---------------------------------------------------


def test_banning_ends_every_session_of_that_user_only(
    funded, member, admin_client, django_capture_on_commit_callbacks
):
    laptop, phone = sign_in(member), sign_in(member)
    bystander = sign_in(UserFactory(organization=funded, email="by@acme.example"))
    keys = [laptop.session.session_key, phone.session.session_key]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("tokens:user_ban", args=[member.pk]))

    assert response.status_code == 302
    assert not any(session_exists(key) for key in keys)
    assert session_exists(bystander.session.session_key)
    assert is_signed_out(laptop) and is_signed_out(phone)
    assert bystander.get(ME).status_code == 200
    assert admin_client.get(PANEL).status_code == 200


def test_bulk_ban_ends_the_sessions_of_every_banned_user(
    funded, admin_user, django_capture_on_commit_callbacks
):
    ava = UserFactory(organization=funded, email="ava@acme.example")
    bob = UserFactory(organization=funded, email="bob@acme.example")
    ava_client, bob_client = sign_in(ava), sign_in(bob)

    with django_capture_on_commit_callbacks(execute=True):
        users_set_banned(
            actor=admin_user, organization=funded, users=[ava, bob], banned=True
        )

    assert not session_exists(ava_client.session.session_key)
    assert not session_exists(bob_client.session.session_key)


def test_deactivating_ends_the_users_sessions(
    funded, member, admin_user, django_capture_on_commit_callbacks
):
    client = sign_in(member)
    key = client.session.session_key

    with django_capture_on_commit_callbacks(execute=True):
        user_deactivate(actor=admin_user, user=member)

    assert not session_exists(key)
    assert is_signed_out(client)


def test_bulk_deactivation_ends_sessions(
    funded, member, admin_user, django_capture_on_commit_callbacks
):
    client = sign_in(member)
    with django_capture_on_commit_callbacks(execute=True):
        users_set_paid(
            actor=admin_user, organization=funded, users=[member], paid=False
        )
    assert not session_exists(client.session.session_key)


def test_removing_an_admin_from_the_organization_ends_their_sessions(
    funded, admin_user, superuser, django_capture_on_commit_callbacks
):
    AdminFactory(organization=funded, email="second@acme.example")
    panel = sign_in(admin_user, mfa=True)
    assert panel.get(PANEL).status_code == 200
    key = panel.session.session_key

    with django_capture_on_commit_callbacks(execute=True):
        organization_remove_member(actor=superuser, user=admin_user)

    assert not session_exists(key)
    assert is_signed_out(panel)


def test_reactivating_and_unbanning_keep_sessions(
    funded, member, admin_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        user_deactivate(actor=admin_user, user=member)
        users_set_banned(
            actor=admin_user, organization=funded, users=[member], banned=True
        )
    client = sign_in(member)  # a session opened after both, then both undone
    with django_capture_on_commit_callbacks(execute=True):
        user_reactivate(actor=admin_user, user=member)
        users_set_banned(
            actor=admin_user, organization=funded, users=[member], banned=False
        )
    assert session_exists(client.session.session_key)
    assert client.get(ME).status_code == 200


def test_a_refused_ban_ends_no_session(
    funded, member, admin_user, other_admin_user, django_capture_on_commit_callbacks
):
    client = sign_in(member)
    # A user of another organization in the selection: the whole ban is refused.
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(ValidationError, match="not in this organization"),
    ):
        users_set_banned(
            actor=admin_user,
            organization=funded,
            users=[member, other_admin_user],
            banned=True,
        )
    assert callbacks == []
    assert session_exists(client.session.session_key)


def test_sessions_end_only_after_the_change_commits(
    funded, member, admin_user, django_capture_on_commit_callbacks
):
    client = sign_in(member)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        users_set_banned(
            actor=admin_user, organization=funded, users=[member], banned=True
        )
        assert session_exists(client.session.session_key)
    assert len(callbacks) == 1
    callbacks[0]()
    assert not session_exists(client.session.session_key)


def test_user_session_keys_ignores_other_users_anonymous_and_expired_sessions(member):
    mine = sign_in(member).session.session_key
    expired = sign_in(member).session.session_key
    Session.objects.filter(session_key=expired).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    other = sign_in(UserFactory()).session.session_key
    anonymous = import_module(settings.SESSION_ENGINE).SessionStore()
    anonymous["visited"] = True
    anonymous.save()

    assert sessions.user_session_keys([member.pk]) == [mine]
    assert sessions.end_user_sessions(user_ids=[member.pk]) == 1
    assert session_exists(other) and session_exists(anonymous.session_key)


# --- idle timeout (panel sessions) ----------------------------------------------------


def test_idle_panel_session_ends_with_a_message(admin_client):
    assert admin_client.get(PANEL).status_code == 200
    key = admin_client.session.session_key
    shift(admin_client, seen=IDLE + 1)

    response = admin_client.get(PANEL)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={PANEL}"
    assert not session_exists(key)
    page = admin_client.get(response["Location"])
    assert "signed out after 30 minutes without activity" in page.content.decode()
    assert is_signed_out(admin_client)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_OUT).count() == 1


def test_panel_session_used_within_the_timeout_stays_and_is_refreshed(admin_client):
    admin_client.get(PANEL)
    shift(admin_client, seen=IDLE - 60)
    assert admin_client.get(PANEL).status_code == 200
    seen = admin_client.session[sessions.LAST_SEEN_AT]
    assert seen == pytest.approx(sessions.now_seconds(), abs=5)


def test_idle_timeout_follows_the_clock(admin_client):
    admin_client.get(PANEL)
    later = timezone.now() + dt.timedelta(seconds=IDLE + 5)
    with mock.patch("django.utils.timezone.now", return_value=later):
        response = admin_client.get(PANEL)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_idle_timeout_applies_to_superusers_anywhere(superuser_client, org):
    superuser_client.get(PANEL, {"org": org.pk})
    shift(superuser_client, seen=IDLE)
    response = superuser_client.get(ME)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={ME}"


def test_idle_timeout_does_not_apply_to_members(member_client):
    member_client.get(ME)
    shift(member_client, seen=10 * IDLE)
    assert member_client.get(ME).status_code == 200


def test_idle_timeout_is_a_setting(admin_client, settings):
    settings.ADMIN_SESSION_IDLE_SECONDS = 120
    admin_client.get(PANEL)
    shift(admin_client, seen=100)
    assert admin_client.get(PANEL).status_code == 200
    shift(admin_client, seen=121)
    response = admin_client.get(PANEL)
    assert response.status_code == 302
    assert any("after 2 minutes" in m for m in messages_of(response))


def test_an_idle_post_is_refused_and_changes_nothing(admin_client, member, funded):
    admin_client.get(PANEL)
    shift(admin_client, seen=IDLE + 1)
    response = admin_client.post(reverse("tokens:user_ban", args=[member.pk]))
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    member.refresh_from_db()
    assert not member.is_banned


def test_the_api_is_not_touched_by_session_rules(admin_client):
    admin_client.get(PANEL)
    shift(admin_client, seen=IDLE + 1)
    response = admin_client.get(reverse("gateway_api:balance"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"


# --- absolute lifetime ----------------------------------------------------------------


def test_every_session_ends_twelve_hours_after_sign_in(member_client):
    member_client.get(ME)
    shift(member_client, started=ABSOLUTE - 60)
    assert member_client.get(ME).status_code == 200
    shift(member_client, started=ABSOLUTE)
    response = member_client.get(ME)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={ME}"
    assert any("ended after 12 hours" in m for m in messages_of(response))
    assert is_signed_out(member_client)


def test_activity_does_not_extend_the_absolute_lifetime(admin_client):
    admin_client.get(PANEL)
    shift(admin_client, started=ABSOLUTE + 1, seen=0)
    assert admin_client.get(PANEL).status_code == 302


def test_absolute_lifetime_is_a_setting(member_client, settings):
    settings.SESSION_ABSOLUTE_SECONDS = 3600
    member_client.get(ME)
    shift(member_client, started=3600)
    assert member_client.get(ME).status_code == 302


def test_a_fresh_sign_in_starts_a_fresh_lifetime(member):
    client = Client()
    client.post(LOGIN, {"username": member.email, "password": PASSWORD})
    shift(client, started=ABSOLUTE)
    assert is_signed_out(client)
    client.post(LOGIN, {"username": member.email, "password": PASSWORD})
    assert client.get(ME).status_code == 200


# --- password change ------------------------------------------------------------------


def reset_password(client: Client, email: str, password: str):
    client.post(reverse("accounts:password_reset"), {"email": email})
    body = mail.outbox[-1].body
    link = re.search(r"http://\S+/accounts/password-reset/\S+/\S+/", body)
    response = client.get(link.group(0), follow=True)
    return client.post(
        response.redirect_chain[-1][0],
        {"new_password1": password, "new_password2": password},
    )


def test_a_password_reset_ends_the_users_other_sessions(member):
    laptop, phone = sign_in(member), sign_in(member)
    bystander = sign_in(UserFactory())
    keys = [laptop.session.session_key, phone.session.session_key]

    response = reset_password(Client(), member.email, "brand-new-passphrase-42")

    assert response.status_code == 302
    assert not any(session_exists(key) for key in keys)
    assert is_signed_out(laptop) and is_signed_out(phone)
    assert bystander.get(ME).status_code == 200


def test_a_password_change_voids_other_sessions_at_their_next_request(member):
    # Even without the server-side deletion, Django's session-auth-hash check
    # refuses a session signed in with the old password.
    other = sign_in(member)
    member.set_password("brand-new-passphrase-42")
    member.save()
    assert session_exists(other.session.session_key)
    assert is_signed_out(other)
    assert not session_exists(other.session.session_key)


def test_changing_ones_own_password_keeps_the_current_session(superuser):
    current, other = sign_in(superuser, mfa=True), sign_in(superuser, mfa=True)
    url = reverse("admin:auth_user_password_change", args=[superuser.pk])
    response = current.post(
        url,
        {
            "password1": "brand-new-passphrase-42",
            "password2": "brand-new-passphrase-42",
        },
    )
    assert response.status_code == 302
    assert current.get(ME).status_code == 200
    assert is_signed_out(other)
