"""Every write of the accounts app: one function per action, one transaction each,
each recording its audit event in the same transaction."""

import hmac
import secrets

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp import match_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import audit
from accounts.emails import canonical_email
from accounts.models import (
    AuditEvent,
    Organization,
    ServiceKey,
    TablePreference,
    User,
)
from accounts.policy import (
    access_organization_for_admin,
    access_staff_action,
    access_superuser_action,
)
from asksage_admin.lib.errors import NotPermitted

Action = AuditEvent.Action

_VERIFY_SALT = "accounts.email-verification"


BACKUP_CODE_COUNT = 10


def send_templated_email(*, to: list[str], template: str, context: dict) -> None:
    """Plain text + HTML email from ``emails/<template>.txt|.html`` (subject on the
    first line of the text template)."""
    context = {**context, "SITE_URL": settings.SITE_URL}
    subject, _sep, body = render_to_string(f"emails/{template}.txt", context).partition(
        "\n"
    )
    message = EmailMultiAlternatives(subject.strip(), body.strip() + "\n", to=to)
    message.attach_alternative(
        render_to_string(f"emails/{template}.html", context), "text/html"
    )
    message.send()


def email_verification_token(user: User) -> str:
    return signing.dumps({"u": user.pk, "e": user.email}, salt=_VERIFY_SALT)


def email_verification_url(user: User) -> str:
    path = reverse(
        "accounts:verify_email", kwargs={"token": email_verification_token(user)}
    )
    return f"{settings.SITE_URL}{path}"


def user_register(
    *, email: str, first_name: str, last_name: str, password: str
) -> User | None:
    """Create an account (terms accepted now) and email a verification link.

    Registration must not reveal which emails have an account: for an email that
    already has one (in any case) nothing is created, its owner is emailed instead
    ("someone tried to register with your email") and None is returned, so the caller
    answers exactly as for a new account. The password is hashed either way, so the
    costliest step takes the same time on both paths.
    """
    from django.contrib.auth.hashers import make_password
    from django.db import IntegrityError

    email = canonical_email(email)

    def tell_owner(owner: User) -> None:
        make_password(password)  # the time a new account's hashing takes
        transaction.on_commit(
            lambda: send_templated_email(
                to=[owner.email],
                template="account_exists",
                context={
                    "user": owner,
                    "login_url": settings.SITE_URL + reverse("accounts:login"),
                    "reset_url": settings.SITE_URL + reverse("accounts:password_reset"),
                },
            )
        )

    existing = User.objects.filter(email=email).first()
    if existing is not None:
        tell_owner(existing)
        return None
    try:
        with transaction.atomic():
            now = timezone.now()
            user = User.objects.create_user(
                email=email,
                password=password,
                first_name=first_name,
                last_name=last_name,
                terms_accepted_at=now,
            )
            audit.record(
                action=Action.USER_REGISTERED,
                actor=user,
                target=user,
                after={"email": user.email, "terms_accepted_at": now.isoformat()},
            )
            transaction.on_commit(lambda: user_send_verification_email(user=user))
    except IntegrityError:
        # A concurrent registration took this email between the check and the insert.
        existing = User.objects.filter(email=email).first()
        if existing is None:
            raise
        tell_owner(existing)
        return None
    return user


def user_send_verification_email(*, user: User) -> None:
    send_templated_email(
        to=[user.email],
        template="verify_email",
        context={"user": user, "url": email_verification_url(user)},
    )


def user_verify_email(*, token: str) -> tuple[User, bool]:
    """Mark the email of the link's user verified. Returns (user, newly_verified).

    The link is signed and expires after EMAIL_VERIFICATION_MAX_AGE; it names the
    email it was sent to, so it stops working if the email changes.
    """
    try:
        data = signing.loads(
            token, salt=_VERIFY_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE
        )
    except signing.SignatureExpired as error:
        raise ValidationError(
            _("This verification link has expired. Sign in to get a new one.")
        ) from error
    except signing.BadSignature as error:
        raise ValidationError(_("This verification link is not valid.")) from error
    with transaction.atomic():
        user = (
            User.objects.select_for_update(no_key=True)
            .filter(pk=data.get("u"), email=canonical_email(data.get("e")))
            .first()
        )
        if user is None:
            raise ValidationError(_("This verification link is not valid."))
        if user.email_verified_at is not None:
            return user, False
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
        audit.record(
            action=Action.USER_EMAIL_VERIFIED,
            actor=user,
            target=user,
            after={"email_verified_at": user.email_verified_at.isoformat()},
        )
    return user, True


def mfa_device_for_enrolment(*, user: User) -> TOTPDevice:
    """The user's unconfirmed authenticator device, created on first need."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(
            user=user, name="Authenticator app", confirmed=False
        )
    return device


def mfa_enrol(*, user: User, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the authenticator with a code it shows; returns the device and a
    fresh set of single-use backup codes (shown to the user once)."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update(no_key=True)
            .filter(user=user, confirmed=False)
            .first()
        )
        if device is None or not device.verify_token(code):
            raise ValidationError(
                _(
                    "That code is not right. Check your app's clock and enter the code "
                    "it shows now."
                )
            )
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        StaticDevice.objects.filter(user=user).delete()
        backup = StaticDevice.objects.create(user=user, name="Backup codes")
        codes = [secrets.token_hex(4) for _i in range(BACKUP_CODE_COUNT)]
        StaticToken.objects.bulk_create(
            StaticToken(device=backup, token=code) for code in codes
        )
        audit.record(
            action=Action.MFA_ENROLLED,
            actor=user,
            target=user,
            after={"devices": ["totp", "backup_codes"]},
        )
    return device, codes


def mfa_reset(*, user: User, actor: User) -> int:
    """Remove every MFA device of ``user``; they enrol again at next panel visit.
    Superusers only (and the system): it weakens the account's protection."""
    access_superuser_action(actor)
    with transaction.atomic():
        deleted = TOTPDevice.objects.filter(user=user).delete()[0]
        deleted += StaticDevice.objects.filter(user=user).delete()[0]
        audit.record(
            action=Action.MFA_RESET,
            actor=actor,
            target=user,
            organization=user.organization,
            before={"has_mfa": bool(deleted)},
            after={"has_mfa": False},
        )
    return deleted


def mfa_check(*, user: User, code: str):
    """The user's device that accepts ``code`` (TOTP or an unused backup code, which
    is then spent), or None; a refused code is audited."""
    device = match_token(user, code)
    if device is None:
        audit.record(action=Action.MFA_FAILED, actor=user, target=user)
    return device


def user_password_reset_requested(*, email: str) -> None:
    """Audit a password-reset request (whether or not the email has an account;
    the page answers the same either way)."""
    email = canonical_email(email)
    user = User.objects.filter(email=email).first()
    audit.record(
        action=Action.PASSWORD_RESET_REQUESTED,
        actor=None,
        actor_email=email[:254],
        organization=user.organization if user else None,
        target=user,
    )


def user_password_reset_done(*, user: User) -> None:
    """Audit a completed password reset (the form has saved the new password)."""
    audit.record(action=Action.PASSWORD_RESET, actor=user, target=user)


def user_has_mfa(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


# --- service keys (the gateway's credentials) ------------------------------------

SERVICE_KEY_PREFIX = "eak"


def service_key_digest(secret: str) -> str:
    # Secrets carry 256 random bits, so a fast keyed hash is enough; the fixed key
    # separates this use and keeps keys valid across SECRET_KEY rotation.
    return hmac.new(
        b"enterprise-account/service-key/v1", secret.encode(), "sha256"
    ).hexdigest()


def service_key_create(
    *, actor: User | None, name: str, organization: Organization | None = None
) -> tuple[ServiceKey, str]:
    """Create a key; returns it and its secret, which is never stored or shown again."""
    access_staff_action(actor, "accounts.add_servicekey")
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Give the key a name.")})
    with transaction.atomic():
        prefix = secrets.token_hex(6)
        secret = f"{SERVICE_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        key = ServiceKey.objects.create(
            name=name,
            organization=organization,
            prefix=prefix,
            digest=service_key_digest(secret),
            created_by=actor,
        )
        audit.record(
            action=Action.SERVICE_KEY_CREATED,
            actor=actor,
            organization=organization,
            target=key,
            after={"name": name, "prefix": prefix},
        )
    return key, secret


def _secret_revoke(secret, *, actor: User | None, action: str, already: str):
    """Revoke a service key or an admin access token (the caller has checked who
    may): locked, refused when already revoked, one audit event."""
    with transaction.atomic():
        locked = type(secret).objects.select_for_update(no_key=True).get(pk=secret.pk)
        if locked.revoked_at is not None:
            raise ValidationError(already)
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit.record(
            action=action,
            actor=actor,
            organization=locked.organization,
            target=locked,
            before={"revoked": False},
            after={"revoked": True},
        )
    return locked


def service_key_revoke(*, actor: User | None, key: ServiceKey) -> ServiceKey:
    access_staff_action(actor, "accounts.change_servicekey")
    return _secret_revoke(
        key,
        actor=actor,
        action=Action.SERVICE_KEY_REVOKED,
        already=_("This key is already revoked."),
    )


_KEY_FIELDS = ("id", "name", "organization_id", "prefix", "digest")


def _active_key(prefix: str) -> ServiceKey | None:
    """The unrevoked key with this prefix (its other fields load if read). Plain
    SQL: every gateway call starts here, and the ORM would cost ten times the
    query (docs: the gateway under load)."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(qn(f) for f in _KEY_FIELDS)} "  # noqa: S608
            f"FROM {qn(ServiceKey._meta.db_table)} "
            "WHERE prefix = %s AND revoked_at IS NULL",
            [prefix],
        )
        row = cursor.fetchone()
    return ServiceKey.from_db(connection.alias, _KEY_FIELDS, row) if row else None


def service_key_authenticate(secret: str) -> ServiceKey | None:
    """The active key whose secret this is, compared in constant time; else None."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != SERVICE_KEY_PREFIX:
        return None
    key = _active_key(parts[1])
    if key is None or not hmac.compare_digest(key.digest, service_key_digest(secret)):
        return None
    return key


def user_mark_verified(*, actor: User, user: User) -> User:
    """An admin of the user's organization (or a superuser) vouches for a member's
    email address."""
    access_organization_for_admin(actor, user.organization_id)
    with transaction.atomic():
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if locked.email_verified_at is not None:
            raise ValidationError(_("This user's email is already verified."))
        locked.email_verified_at = timezone.now()
        locked.save(update_fields=["email_verified_at"])
        audit.record(
            action=Action.USER_EMAIL_VERIFIED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            before={"email_verified_at": None},
            after={"email_verified_at": locked.email_verified_at.isoformat()},
            message="Marked verified by an admin.",
        )
    return locked


def data_export_record(
    *, actor: User, organization: Organization | None, what: str, filters: dict
) -> None:
    """Audit a CSV export: who exported what, with which filter (an admin of the
    organization exported, or a superuser)."""
    access_organization_for_admin(
        actor, organization.pk if organization is not None else None
    )
    audit.record(
        action=Action.DATA_EXPORTED,
        actor=actor,
        organization=organization,
        after={"export": what, "filters": filters},
    )


def organization_set_prompt_excerpts(
    *, actor: User, organization: Organization, enabled: bool
) -> Organization:
    """Whether the gateway's prompt and response excerpts (first 2,000 characters)
    are stored for this organization's usage. Off by default."""
    access_organization_for_admin(actor, organization.pk)
    with transaction.atomic():
        locked = Organization.objects.select_for_update(no_key=True).get(
            pk=organization.pk
        )
        if locked.store_prompt_excerpts == enabled:
            return locked
        locked.store_prompt_excerpts = enabled
        locked.save(update_fields=["store_prompt_excerpts"])
        audit.record(
            action=Action.ORG_SETTINGS_CHANGED,
            actor=actor,
            organization=locked,
            target=locked,
            before={"store_prompt_excerpts": not enabled},
            after={"store_prompt_excerpts": enabled},
        )
    return locked


# --- display preferences (docs/product.md, The panel shell) -----------------------

TABLE_COLUMNS_MAX = 40


def table_columns_set(
    *, user: User, table: str, columns: list[str], choosable: tuple[str, ...]
) -> TablePreference:
    """Remember which of a table's ``choosable`` columns ``user`` sees. Their own
    display preference only: not audited (it changes nothing anyone else sees)."""
    if not user.is_authenticated:
        raise NotPermitted(_("Sign in to choose columns."))
    if table not in TablePreference.Table.values:
        raise ValidationError({"table": _("There is no such table.")})
    unknown = [c for c in columns if c not in choosable]
    if unknown or len(columns) > TABLE_COLUMNS_MAX:
        raise ValidationError(
            {
                "columns": _("Choose among the columns offered (unknown: %(names)s).")
                % {"names": ", ".join(str(c)[:40] for c in unknown[:5]) or "—"}
            }
        )
    wanted = [c for c in choosable if c in columns]  # the table's order, no doubles
    preference, _created = TablePreference.objects.update_or_create(
        user=user, table=table, defaults={"columns": wanted}
    )
    return preference
