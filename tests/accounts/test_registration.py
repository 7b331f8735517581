import re
from unittest import mock

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, User
from accounts.services import email_verification_token
from tests.factories import PASSWORD, UserFactory

URL = reverse("accounts:register")

VALID = {
    "email": "New.Person@Example.com",
    "first_name": "New",
    "last_name": "Person",
    "password1": "a-long-unusual-passphrase-77",
    "password2": "a-long-unusual-passphrase-77",
    "accept_terms": "on",
}

pytestmark = pytest.mark.django_db


def test_registration_creates_user_audits_and_emails_a_link(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, VALID)
    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "new.person@example.com"
    assert user.terms_accepted_at is not None
    assert user.email_verified_at is None
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.USER_REGISTERED, actor=user
        ).count()
        == 1
    )
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@example.com"]
    assert "/accounts/verify/" in mail.outbox[0].body
    assert mail.outbox[0].alternatives, "the email has an HTML part"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"password2": "something-else-entirely-1"}, "password2", "do not match"),
        ({"password1": "password", "password2": "password"}, "password1", "too short"),
        (
            {"password1": "1234567890123", "password2": "1234567890123"},
            "password1",
            "entirely numeric",
        ),
        ({"accept_terms": ""}, "accept_terms", "must accept the terms"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"first_name": ""}, "first_name", "required"),
    ],
)
def test_registration_bad_input_shows_message_and_creates_nothing(
    client, change, field, message
):
    data = {**VALID, **change}
    if data.get("accept_terms") == "":
        del data["accept_terms"]
    response = client.post(URL, data)
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors[field])
    assert message in errors
    assert not User.objects.exists()
    assert not AuditEvent.objects.exists()


def _messages(client, response) -> list[str]:
    page = client.get(response["Location"])
    return [str(m) for m in page.context["messages"]]


def test_registration_with_a_taken_email_looks_the_same_and_tells_the_owner(
    django_capture_on_commit_callbacks,
):
    """Non-disclosure: the answer to a taken email (in any case) is the answer to a
    new one; nothing is created and the account's owner is emailed instead."""
    owner = UserFactory(email="new.person@example.com", first_name="Nora")
    new, taken = Client(), Client()
    with django_capture_on_commit_callbacks(execute=True):
        fresh = new.post(URL, {**VALID, "email": "Fresh.Person@Example.com"})
    registered = User.objects.get(email="fresh.person@example.com")
    mail.outbox.clear()
    users, events = User.objects.count(), AuditEvent.objects.count()

    with (
        django_capture_on_commit_callbacks(execute=True),
        mock.patch("django.contrib.auth.hashers.make_password") as hashing,
    ):
        response = taken.post(URL, {**VALID, "email": "NEW.PERSON@EXAMPLE.COM"})

    # The same status, redirect, headers and message (but for the email shown).
    assert (response.status_code, response["Location"]) == (
        fresh.status_code,
        fresh["Location"],
    )
    assert sorted(response.headers) == sorted(fresh.headers)
    assert response.content == fresh.content
    assert [
        m.replace("new.person@example.com", "EMAIL") for m in _messages(taken, response)
    ] == [m.replace("fresh.person@example.com", "EMAIL") for m in _messages(new, fresh)]
    # Nothing created, nothing audited as a registration, the password still hashed.
    assert User.objects.count() == users
    assert AuditEvent.objects.count() == events
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.USER_REGISTERED, actor=owner
    ).exists()
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.USER_REGISTERED).get().actor
        == registered
    )
    hashing.assert_called_once_with(VALID["password1"])
    owner.refresh_from_db()
    assert owner.first_name == "Nora" and owner.check_password(PASSWORD)
    # One email, to the owner: someone tried; sign in or reset the password.
    assert len(mail.outbox) == 1
    note = mail.outbox[0]
    assert note.to == ["new.person@example.com"]
    assert "tried to register" in note.subject
    assert "/accounts/login/" in note.body
    assert "/accounts/password-reset/" in note.body
    assert "/accounts/verify/" not in note.body
    assert note.alternatives, "the email has an HTML part"


def test_verification_link_works_once(client):
    user = UserFactory(email_verified_at=None)
    url = reverse(
        "accounts:verify_email", kwargs={"token": email_verification_token(user)}
    )
    first = client.get(url, follow=True)
    user.refresh_from_db()
    assert user.email_verified_at is not None
    assert "your email address is verified" in first.content.decode()
    second = client.get(url, follow=True)
    assert "already used" in second.content.decode()
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.USER_EMAIL_VERIFIED, actor=user
        ).count()
        == 1
    )


def test_tampered_verification_link_fails(client):
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user)
    tampered = re.sub(r".$", lambda m: "A" if m.group() != "A" else "B", token)
    response = client.get(reverse("accounts:verify_email", kwargs={"token": tampered}))
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    user.refresh_from_db()
    assert user.email_verified_at is None


def test_verification_link_for_changed_email_fails(client):
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user)
    User.objects.filter(pk=user.pk).update(email="changed@example.com")
    response = client.get(reverse("accounts:verify_email", kwargs={"token": token}))
    assert response.status_code == 400
    user.refresh_from_db()
    assert user.email_verified_at is None


def test_signed_in_user_is_redirected_away_from_registration(member_client):
    response = member_client.get(URL)
    assert response.status_code == 302


def test_password_reset_does_not_reveal_whether_email_exists(client):
    UserFactory(email="known@example.com")
    known = client.post(
        reverse("accounts:password_reset"), {"email": "known@example.com"}
    )
    unknown = client.post(
        reverse("accounts:password_reset"), {"email": "nobody@example.com"}
    )
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["known@example.com"]


def test_password_reset_link_sets_new_password_and_is_audited(client):
    user = UserFactory(email="known@example.com")
    client.post(reverse("accounts:password_reset"), {"email": "known@example.com"})
    link = re.search(
        r"http://\S+/accounts/password-reset/\S+/\S+/", mail.outbox[0].body
    )
    response = client.get(link.group(0), follow=True)
    form_url = response.redirect_chain[-1][0]
    response = client.post(
        form_url,
        {
            "new_password1": "brand-new-passphrase-42",
            "new_password2": "brand-new-passphrase-42",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("brand-new-passphrase-42")
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.PASSWORD_RESET, actor=user
        ).count()
        == 1
    )


def test_every_emailed_link_is_built_from_site_url(
    client, settings, django_capture_on_commit_callbacks
):
    """One way to build absolute links (docs/operations.md, Configuration): the
    verification and the password-reset e-mails both use SITE_URL, whatever host
    the request came to (the demo on another port used to send dead reset links)."""
    from django.core import mail

    settings.SITE_URL = "https://accounts.example.org"
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("accounts:register"),
            {
                "email": "new.person@example.com",
                "first_name": "New",
                "last_name": "Person",
                "password1": "a-long-passphrase-42",
                "password2": "a-long-passphrase-42",
                "accept_terms": "on",
            },
            HTTP_HOST="127.0.0.1:8123",
        )
    (verify,) = mail.outbox
    assert "https://accounts.example.org/accounts/verify/" in verify.body
    mail.outbox.clear()
    client.post(
        reverse("accounts:password_reset"),
        {"email": "new.person@example.com"},
        HTTP_HOST="127.0.0.1:8123",
    )
    (reset,) = mail.outbox
    assert "https://accounts.example.org/accounts/password-reset/" in reset.body
    assert "127.0.0.1:8123" not in reset.body
    assert (
        "https://accounts.example.org/accounts/password-reset/"
        in (reset.alternatives[0][0])
    )
