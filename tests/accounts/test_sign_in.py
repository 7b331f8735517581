import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from tests.factories import PASSWORD, AdminFactory, UserFactory

URL = reverse("accounts:login")

pytestmark = pytest.mark.django_db


def _post(client, email, password, ip="10.0.0.1"):
    return client.post(URL, {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_member_signs_in_in_any_case_and_lands_on_me(client):
    user = UserFactory(email="ava@example.com")
    response = _post(client, "AVA@Example.com", PASSWORD)
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 302  # home → /me/
    assert client.get(reverse("tokens:me")).status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert event.actor == user
    assert event.actor_email == "ava@example.com"
    assert event.ip == "10.0.0.1"
    assert event.request_id


def test_banned_user_is_refused_with_a_clear_message(client):
    UserFactory(email="banned@example.com", is_banned=True)
    response = _post(client, "banned@example.com", PASSWORD)
    assert response.status_code == 200
    assert "has been banned" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_banned_user_with_live_session_is_signed_out(member, member_client):
    member.is_banned = True
    member.save(update_fields=["is_banned"])
    response = member_client.get(reverse("tokens:me"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in member_client.session


def test_wrong_password_is_refused_and_audited(client):
    user = UserFactory(email="ava@example.com")
    response = _post(client, "ava@example.com", "wrong-password")
    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert event.actor == user
    assert "wrong-password" not in str(event.before) + str(event.after) + event.message


def test_five_failures_lock_the_user_from_that_ip_and_the_lock_is_audited(client):
    UserFactory(email="ava@example.com")
    for _ in range(4):
        assert _post(client, "ava@example.com", "nope").status_code == 200
    locked = _post(client, "ava@example.com", "nope")
    assert locked.status_code == 429
    assert "temporarily locked" in locked.content.decode()
    # The lock's length in words (AXES_COOLOFF_TIME, 15 minutes), not "PT15M".
    assert "Sign-in is locked for 15 minutes." in locked.content.decode()
    assert "PT15M" not in locked.content.decode()
    # Even the right password is refused while locked.
    assert _post(client, "ava@example.com", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOCKOUT).count() == 1
    # Another IP is not locked for the same user.
    assert _post(client, "ava@example.com", PASSWORD, ip="10.0.0.2").status_code == 302


def test_sign_out_is_post_only_and_audited(member, member_client):
    assert member_client.get(reverse("accounts:logout")).status_code == 405
    response = member_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in member_client.session
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.SIGN_OUT, actor=member
        ).count()
        == 1
    )


def test_admin_sign_in_goes_to_mfa_enrolment_first(client):
    AdminFactory(email="boss@example.com")
    response = _post(client, "boss@example.com", PASSWORD)
    assert response["Location"].startswith(reverse("accounts:mfa_setup"))
