"""Personal access tokens of org admins for the admin API (docs/admin-api.md,
Tokens): create, revoke, authenticate, and the audit of a refused use.

A token acts as its owner on the owner's organization. It is checked on every call
against the owner's state now (still an active, unbanned admin of that organization,
the organization active), so demoting, banning or deactivating an admin stops their
tokens at once, without revoking them one by one.
"""

import datetime as dt
import hmac
import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AdminAccessToken, AuditEvent, Organization, User
from accounts.policy import access_organization_for_admin
from accounts.services import _secret_revoke

Action = AuditEvent.Action
TOKEN_PREFIX = "eat"  # noqa: S105  (a label, not a secret)
EXPIRY_DAYS = (7, 30, 90, 365)
# last_used_at is written at most this often per token (one UPDATE, not one a call).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def access_token_digest(secret: str) -> str:
    # 256 random bits: a keyed fast hash is enough (as for service keys), and the
    # fixed key keeps tokens valid across SECRET_KEY rotation.
    return hmac.new(
        b"enterprise-account/admin-access-token/v1", secret.encode(), "sha256"
    ).hexdigest()


def access_tokens_of(org: Organization):
    """The organization's tokens, newest first, with their owners."""
    return AdminAccessToken.objects.filter(organization=org).select_related("owner")


def access_token_create(
    *, actor: User, name: str, scope: str, expires_in_days: int
) -> tuple[AdminAccessToken, str]:
    """A token of ``actor`` (an org admin) for their organization; returns it and
    its secret, which is never stored or shown again."""
    if actor is None or not actor.is_org_admin:
        raise PermissionDenied(_("Only an organization's admins can create tokens."))
    access_organization_for_admin(actor, actor.organization_id)
    name = (name or "").strip()
    errors = {}
    if not name:
        errors["name"] = _("Give the token a name.")
    elif len(name) > 100 or "\x00" in name:
        errors["name"] = _("A name of at most 100 characters.")
    if scope not in AdminAccessToken.Scope.values:
        errors["scope"] = _("Choose read only or read and write.")
    if expires_in_days not in EXPIRY_DAYS:
        errors["expires_in_days"] = _("Choose an expiry of %(days)s days.") % {
            "days": ", ".join(map(str, EXPIRY_DAYS))
        }
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        prefix = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        token = AdminAccessToken.objects.create(
            name=name,
            organization_id=actor.organization_id,
            owner=actor,
            scope=scope,
            prefix=prefix,
            digest=access_token_digest(secret),
            created_at=now,
            expires_at=now + dt.timedelta(days=expires_in_days),
        )
        audit.record(
            action=Action.ACCESS_TOKEN_CREATED,
            actor=actor,
            organization=token.organization,
            target=token,
            after={
                "name": name,
                "prefix": prefix,
                "scope": scope,
                "expires_at": token.expires_at.isoformat(),
            },
        )
    return token, secret


def access_token_revoke(*, actor: User, token: AdminAccessToken) -> AdminAccessToken:
    """Revoke a token of the organization (any of its admins may)."""
    access_organization_for_admin(actor, token.organization_id)
    return _secret_revoke(
        token,
        actor=actor,
        action=Action.ACCESS_TOKEN_REVOKED,
        already=_("This token is already revoked."),
    )


def _refusal(token: AdminAccessToken) -> str:
    """Why a known token may not act now, or "" when it may."""
    owner, now = token.owner, timezone.now()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= now:
        return "expired"
    if (
        not owner.is_active
        or owner.is_banned
        or not owner.is_org_admin
        or owner.organization_id != token.organization_id
    ):
        return "owner_not_admin"
    if not token.organization.is_active:
        return "organization_inactive"
    return ""


def access_token_authenticate(secret: str) -> tuple[AdminAccessToken | None, str]:
    """(the token, "") when the secret is a usable token; else (the token or None,
    the reason it is refused: unknown, revoked, expired, owner_not_admin,
    organization_inactive). Marks the token used (at most once a minute)."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1].isalnum():
        return None, "unknown"
    token = (
        AdminAccessToken.objects.select_related("owner", "organization")
        .filter(prefix=parts[1][:16])
        .first()
    )
    if token is None or not hmac.compare_digest(
        token.digest, access_token_digest(secret)
    ):
        return None, "unknown"
    reason = _refusal(token)
    if reason:
        return token, reason
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        AdminAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token, ""


def access_token_record_refusal(
    *, token: AdminAccessToken | None, reason: str
) -> AuditEvent:
    """Audit one refused use of the admin API: in the token's organization when
    the token is known, else platform-wide. (The system writes it: no actor.)"""
    with transaction.atomic():
        return audit.record(
            action=Action.ACCESS_TOKEN_REFUSED,
            actor=None,
            organization=token.organization if token is not None else None,
            target=token,
            after={"reason": reason},
        )
