import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent
from accounts.services import mfa_reset

PANEL = reverse("tokens:user_list")

pytestmark = pytest.mark.django_db


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"


def _admin_session(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_without_device_is_sent_to_enrolment(admin_user):
    client = _admin_session(admin_user)
    response = client.get(PANEL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:mfa_setup"))


def test_enrolment_shows_qr_refuses_wrong_code_then_accepts_right_one(admin_user):
    client = _admin_session(admin_user)
    page = client.get(reverse("accounts:mfa_setup"), {"next": PANEL})
    assert page.status_code == 200
    assert b"data:image/svg+xml" in page.content
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)

    wrong = client.post(
        reverse("accounts:mfa_setup"), {"code": "000000", "next": PANEL}
    )
    assert wrong.status_code == 200
    assert "not right" in wrong.content.decode()
    assert client.get(PANEL).status_code == 302

    right = client.post(
        reverse("accounts:mfa_setup"), {"code": _code(device), "next": PANEL}
    )
    assert right["Location"] == reverse("accounts:mfa_backup_codes")
    codes_page = client.get(right["Location"])
    assert codes_page.status_code == 200
    assert len(codes_page.context["codes"]) == 10
    assert client.get(reverse("accounts:mfa_backup_codes")).status_code == 302  # once
    assert client.get(PANEL).status_code == 200
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.MFA_ENROLLED, actor=admin_user
        ).count()
        == 1
    )


def test_enrolled_admin_must_verify_and_wrong_code_is_refused(admin_user):
    device = TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    client = _admin_session(admin_user)
    response = client.get(PANEL)
    assert response["Location"].startswith(reverse("accounts:mfa_verify"))

    wrong = client.post(
        reverse("accounts:mfa_verify"), {"code": "123456", "next": PANEL}
    )
    assert wrong.status_code == 200
    assert "not right" in wrong.content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MFA_FAILED).count() == 1
    assert client.get(PANEL).status_code == 302

    # django-otp throttles a device after a failure: even the right code is refused
    # until the (exponential) delay has passed.
    throttled = client.post(
        reverse("accounts:mfa_verify"), {"code": _code(device), "next": PANEL}
    )
    assert throttled.status_code == 200
    device.refresh_from_db()
    device.throttle_reset()

    right = client.post(
        reverse("accounts:mfa_verify"), {"code": _code(device), "next": PANEL}
    )
    assert right["Location"] == PANEL
    assert client.get(PANEL).status_code == 200


def test_backup_code_works_once(admin_user):
    client = _admin_session(admin_user)
    client.get(reverse("accounts:mfa_setup"))
    device = TOTPDevice.objects.get(user=admin_user)
    client.post(reverse("accounts:mfa_setup"), {"code": _code(device)})
    backup = StaticToken.objects.filter(device__user=admin_user).first().token

    second = _admin_session(admin_user)
    assert (
        second.post(reverse("accounts:mfa_verify"), {"code": backup}).status_code == 302
    )
    assert second.get(PANEL).status_code == 200
    third = _admin_session(admin_user)
    assert (
        third.post(reverse("accounts:mfa_verify"), {"code": backup}).status_code == 200
    )


def test_member_is_never_asked_for_mfa(member_client):
    assert member_client.get(reverse("tokens:me")).status_code == 200


def test_mfa_reset_removes_devices_and_is_audited(admin_user, superuser):
    TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    mfa_reset(user=admin_user, actor=superuser)
    assert not TOTPDevice.objects.filter(user=admin_user).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_RESET)
    assert event.actor == superuser
    assert event.target_id == str(admin_user.pk)
    assert event.organization == admin_user.organization


def test_superuser_resets_mfa_from_staff_site(admin_user, superuser_client):
    TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    response = superuser_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "reset_mfa", "_selected_action": [admin_user.pk]},
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=admin_user).exists()


def test_mfa_not_required_when_setting_off(admin_user, settings):
    settings.REQUIRE_ADMIN_MFA = False
    assert _admin_session(admin_user).get(PANEL).status_code == 200


def test_superuser_without_mfa_is_sent_to_mfa_before_the_staff_site(superuser):
    client = Client()
    client.force_login(superuser)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:mfa_setup"))


def test_sales_staff_are_not_asked_for_mfa_on_the_staff_site(sales_client):
    assert sales_client.get(reverse("admin:index")).status_code == 200


def test_a_member_on_the_mfa_page_is_offered_the_way_back(member_client, admin_user):
    """MFA is optional for a member: its page leads back to /me/, not only to
    "Sign out"; an admin who must enrol is not offered a way around it."""
    from django.urls import reverse

    back = f'href="{reverse("tokens:me")}"'
    page = member_client.get(reverse("accounts:mfa_setup")).content.decode()
    assert back in page
    assert "back to my account" in page
    admin_page = _admin_session(admin_user).get(reverse("accounts:mfa_setup"))
    assert "back to my account" not in admin_page.content.decode()
