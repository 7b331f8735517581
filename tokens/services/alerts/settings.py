"""Alert settings (docs/forecasts.md, Alerts): changed by the organization's
admins, one audit event per change (none when nothing changed); the webhook test."""

import datetime as dt
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from accounts.policy import access_organization_for_admin
from tokens.locks import lock_organization
from tokens.models import AlertSettings
from tokens.services.alerts import webhook

MAX_THRESHOLDS = 5
FIELDS = (
    "org_enabled",
    "org_thresholds",
    "runout_enabled",
    "user_enabled",
    "user_thresholds",
    "webhook_url",
)


def alert_settings_of(organization: Organization) -> AlertSettings:
    """The organization's settings (unsaved defaults when it has none yet)."""
    return AlertSettings.objects.filter(
        organization=organization
    ).first() or AlertSettings(organization=organization)


def clean_thresholds(values, field: str) -> list[int]:
    """Whole percentages 1–100, each once, ascending; at most five."""
    try:
        numbers = sorted({int(v) for v in values})
    except (TypeError, ValueError):
        raise ValidationError(
            {field: _("Enter whole percentages between 1 and 100.")}
        ) from None
    if not numbers or len(numbers) > MAX_THRESHOLDS:
        raise ValidationError(
            {field: _("Enter one to %(n)d thresholds.") % {"n": MAX_THRESHOLDS}}
        )
    if numbers[0] < 1 or numbers[-1] > 100:
        raise ValidationError(
            {field: _("Thresholds are percentages between 1 and 100.")}
        )
    return numbers


def _shown(field: str, value):
    """A value as the audit trail keeps it: a webhook URL's path and query are
    often its secret (Slack's are), so only its scheme and host are kept."""
    if field != "webhook_url" or not value:
        return value
    parts = urlsplit(value)
    return f"{parts.scheme}://{parts.hostname}/…"


def alert_settings_update(
    *,
    actor: User | None,
    organization: Organization,
    org_enabled: bool,
    org_thresholds: list[int],
    runout_enabled: bool,
    user_enabled: bool,
    user_thresholds: list[int],
    webhook_url: str,
) -> AlertSettings:
    """Save the alert settings; one audit event with the changed fields (before
    and after), none when nothing changed. Refused whole (nothing saved) with a
    message per field."""
    access_organization_for_admin(actor, organization.pk)
    values = {"org_enabled": bool(org_enabled), "runout_enabled": bool(runout_enabled)}
    values["user_enabled"] = bool(user_enabled)
    errors: dict[str, list] = {}
    for field, raw in (
        ("org_thresholds", org_thresholds),
        ("user_thresholds", user_thresholds),
    ):
        try:
            values[field] = clean_thresholds(raw, field)
        except ValidationError as error:
            errors.update(error.message_dict)
    try:
        values["webhook_url"] = webhook.check_url(webhook_url)
    except ValidationError as error:
        errors["webhook_url"] = error.messages
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        lock_organization(organization.pk)
        current, _created = AlertSettings.objects.get_or_create(
            organization=organization
        )
        changed = {f: v for f, v in values.items() if getattr(current, f) != v}
        if not changed:
            return current
        before = {f: _shown(f, getattr(current, f)) for f in changed}
        for field, value in changed.items():
            setattr(current, field, value)
        current.updated_at = timezone.now()
        current.save(update_fields=[*changed, "updated_at"])
        audit.record(
            action=AuditEvent.Action.ORG_SETTINGS_CHANGED,
            actor=actor,
            organization=organization,
            target=current,
            before=before,
            after={f: _shown(f, v) for f, v in changed.items()},
            message=_("Alert settings changed."),
        )
        return current


def alert_webhook_test(
    *, actor: User | None, organization: Organization, now: dt.datetime | None = None
) -> str:
    """POST a test message to the saved webhook now (not an alert: nothing is
    stored and nothing changes, so no audit event). Returns the URL called;
    raises ValidationError saying why it failed."""
    access_organization_for_admin(actor, organization.pk)
    url = (
        AlertSettings.objects.filter(organization=organization)
        .values_list("webhook_url", flat=True)
        .first()
    )
    if not url:
        raise ValidationError(_("Save a webhook URL first."), code="no_webhook")
    now = now or timezone.now()
    text = _("Test alert from %(org)s: the webhook works.") % {"org": organization.name}
    try:
        webhook.post(
            url,
            {
                "text": text,
                "alert": {
                    "kind": "test",
                    "organization": organization.name,
                    "created_at": now.isoformat(),
                },
            },
        )
    except ValidationError:
        raise
    except (OSError, ValueError) as error:
        raise ValidationError(
            _("The webhook call failed: %(error)s") % {"error": error},
            code="webhook_failed",
        ) from None
    return url
