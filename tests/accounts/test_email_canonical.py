"""One canonical form of an e-mail (issue 14, defect 2): the sign-in lockout key,
the account look-up, registration, password reset, the staff forms, the enterprise
intake and the gateway API all see the same address for every spelling.

Runs on SQLite and on PostgreSQL (whose UPPER() folded ``ı`` and ``ſ`` into the
ASCII letters, so a look-alike signed in past the lockout under a counter of its
own)."""

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.urls import reverse

from accounts.backends import axes_username
from accounts.emails import canonical_email
from accounts.forms import ResetRequestForm
from accounts.models import AuditEvent, User
from tests.factories import PASSWORD, UserFactory
from tokens.admin.members import AddMemberForm
from tokens.services.activation import _users_by_email, split_emails
from tokens.services.metering import MeteringError
from tokens.services.metering._common import resolve_user

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
REGISTER = reverse("accounts:register")
RESET = reverse("accounts:password_reset")
ACCOUNT = "liam.garcia@example.com"
DOTLESS = "lıam.garcıa@example.com"  # U+0131: not the same letter, not an account

# Spellings of ACCOUNT, and whether each is the same account. ſ (long s) and
# full-width letters are compatibility forms of ASCII letters (NFKC maps them), so
# they are the same address; ı, İ and a zero-width space make another address.
SPELLINGS = [
    ("LIAM.Garcia@Example.COM", True),
    ("  liam.garcia@example.com ", True),
    ("ｌｉａｍ.garcia@example.com", True),
    ("liam.garcia@example.coｍ", True),
    ("liam.garcia＠example.com", True),
    (DOTLESS, False),
    ("lıam.garcia@example.com", False),
    ("lİam.garcia@example.com", False),
    ("liam.garcia\u200b@example.com", False),
    ("liam.garcia@exampIe.com", False),
]
# An account whose address has an s, so that the long-s spelling is a real one.
S_ACCOUNT = "sam.soto@example.com"
S_SPELLINGS = [
    ("ſam.soto@example.com", True),
    ("ſam.ſoto@example.com", True),
    ("SAM.SOTO@EXAMPLE.COM", True),
    ("ẞam.soto@example.com", False),
]


def _post_login(client, email, password, ip="10.9.9.9"):
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=ip)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def liam():
    return UserFactory(email=ACCOUNT)


@pytest.fixture
def sam():
    return UserFactory(email=S_ACCOUNT)


def _lock(client, email):
    for _attempt in range(4):
        assert _post_login(client, email, "wrong-guess").status_code == 200
    assert _post_login(client, email, "wrong-guess").status_code == 429


# --- the attack ------------------------------------------------------------------


def test_dotless_spelling_cannot_sign_in_or_unlock_a_locked_account(client, liam):
    _lock(client, ACCOUNT)
    response = _post_login(client, DOTLESS, PASSWORD)
    assert not _signed_in(client)
    assert response.status_code in (200, 429)
    # The real account is still locked from this IP, even with its password.
    assert _post_login(client, ACCOUNT, PASSWORD).status_code == 429
    assert not _signed_in(client)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_long_s_spelling_is_the_same_counter_and_stays_locked(client, sam):
    _lock(client, S_ACCOUNT)
    for spelling, _same in S_SPELLINGS[:2]:
        assert _post_login(client, spelling, PASSWORD).status_code == 429
        assert not _signed_in(client)
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {S_ACCOUNT}


def test_failures_in_every_same_account_spelling_add_up_to_one_lock(client, sam):
    spellings = [
        "ſam.soto@example.com",
        "SAM.soto@example.com",
        "ｓam.soto@example.com",
    ]
    for spelling in spellings + spellings[:1]:
        assert _post_login(client, spelling, "wrong-guess").status_code == 200
    assert _post_login(client, "ſam.ſoto@example.com", "wrong").status_code == 429
    assert AccessAttempt.objects.count() == 1


def test_same_account_spelling_signs_in_with_the_right_password(client, sam):
    response = _post_login(client, "ſam.Soto@example.com", PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(sam.pk)


# --- registration ------------------------------------------------------------------

REGISTRATION = {
    "first_name": "New",
    "last_name": "Person",
    "password1": "a-long-unusual-passphrase-77",
    "password2": "a-long-unusual-passphrase-77",
    "accept_terms": "on",
}


@pytest.mark.parametrize(
    "email",
    [DOTLESS, "lİam@example.com", "straße@example.com", "liam@exämple.com"],
)
def test_registration_refuses_non_ascii_addresses_with_a_clear_message(client, email):
    response = client.post(REGISTER, {**REGISTRATION, "email": email})
    assert response.status_code == 200
    body = response.content.decode()
    assert "plain ASCII letters" in body
    assert "Enter a valid email address" not in body
    assert not User.objects.exists()
    assert not mail.outbox


def test_registration_of_a_compatibility_spelling_is_the_existing_account(
    client, sam, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            REGISTER, {**REGISTRATION, "email": "ſam.soto@example.com"}
        )
    assert response.status_code == 302
    assert User.objects.count() == 1  # no second account
    assert [m.to for m in mail.outbox] == [[S_ACCOUNT]]  # its owner is told


def test_registration_stores_the_canonical_form(client):
    client.post(REGISTER, {**REGISTRATION, "email": "ＮＥＷ@Example.com"})
    assert User.objects.get().email == "new@example.com"


# --- the class: every entry point, every spelling ----------------------------------


def _entry_points(spelling: str, account: User) -> dict[str, bool]:
    """Whether each entry point took ``spelling`` for ``account``."""
    try:
        natural = User.objects.get_by_natural_key(spelling).pk == account.pk
    except User.DoesNotExist:
        natural = False
    reset = ResetRequestForm({"email": spelling})
    reset_users = (
        [u.pk for u in reset.get_users(reset.cleaned_data["email"])]
        if reset.is_valid()
        else []
    )
    intake = _users_by_email(split_emails(spelling))
    staff = AddMemberForm({"email": spelling, "role": "user"})
    try:
        api = resolve_user(_gateway_key(), spelling).pk == account.pk
    except MeteringError as error:
        assert error.code == "unknown_user"
        api = False
    return {
        "lockout key": axes_username(None, {"username": spelling}) == account.email,
        "sign-in look-up": natural,
        "password reset": reset_users == [account.pk],
        "enterprise intake": [u.pk for u in intake.values()] == [account.pk],
        "staff add member": staff.is_valid()
        and staff.cleaned_data["email"].pk == account.pk,
        "gateway API": api,
    }


def _gateway_key():
    from accounts.services import service_key_create

    return service_key_create(actor=None, name="gateway")[0]


@pytest.mark.parametrize(("spelling", "same"), [*SPELLINGS, *S_SPELLINGS])
def test_every_entry_point_agrees_on_every_spelling(spelling, same, org):
    address = S_ACCOUNT if (spelling, same) in S_SPELLINGS else ACCOUNT
    account = UserFactory(email=address, organization=org)
    assert (canonical_email(spelling) == address) is same
    results = _entry_points(spelling, account)
    assert results == dict.fromkeys(results, same), spelling


@pytest.mark.parametrize(("spelling", "same"), [*SPELLINGS, *S_SPELLINGS])
def test_sign_in_agrees_with_the_lockout_key(client, spelling, same):
    address = S_ACCOUNT if (spelling, same) in S_SPELLINGS else ACCOUNT
    account = UserFactory(email=address)
    _post_login(client, spelling, "wrong-guess")
    # A spelling the form refuses as invalid is never counted: it signs in nowhere.
    keys = set(AccessAttempt.objects.values_list("username", flat=True))
    assert (account.email in keys) is same
    _post_login(client, spelling, PASSWORD)
    assert _signed_in(client) is same


# --- the staff site and stored addresses -------------------------------------------


def test_staff_cannot_create_a_user_with_a_look_alike_address(superuser_client):
    response = superuser_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": DOTLESS,
            "first_name": "Liam",
            "last_name": "Garcia",
            "password1": "a-long-unusual-passphrase-77",
            "password2": "a-long-unusual-passphrase-77",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200
    assert "plain ASCII letters" in response.content.decode()
    assert not User.objects.filter(first_name="Liam").exists()


def test_the_migration_rewrites_stored_addresses_and_stops_on_a_collision(db):
    from importlib import import_module

    from django.apps import apps as live_apps

    canonicalize = import_module(
        "accounts.migrations.0007_email_canonical_form"
    ).canonicalize
    old = UserFactory(email="placeholder@example.com")
    User.objects.filter(pk=old.pk).update(email="ſam.soto@example.com")
    canonicalize(live_apps, None)
    old.refresh_from_db()
    assert old.email == S_ACCOUNT

    twin = UserFactory(email="placeholder@example.com")
    User.objects.filter(pk=twin.pk).update(email="ſam.soto@example.com")
    with pytest.raises(RuntimeError, match="same e-mail address"):
        canonicalize(live_apps, None)
    twin.refresh_from_db()
    assert twin.email == "ſam.soto@example.com"  # nothing chosen for the operator
