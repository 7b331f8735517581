"""Delivery of alerts (docs/forecasts.md, Alerts): e-mail to the people concerned
and, when the organization set one, a POST to its webhook.

An alert is delivered by whoever claims it first: the transaction that fired it
(after its commit) or ``send_alerts`` (cron), which retries what is undelivered.
Claiming is a row lock ``FOR NO KEY UPDATE SKIP LOCKED`` on an undelivered alert,
held while it is sent and until the result is saved: two senders never send the
same alert, and an alert whose sending failed stays undelivered (the error and
the attempt are recorded) until a later run succeeds. Each channel is marked once
it succeeded, so a retry sends only what is missing. The one window for a
duplicate is a crash between a send and the commit of its mark (the row is then
unlocked and still unmarked); an alert is never lost."""

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import send_templated_email
from tokens.models import Alert, AlertSettings, TokenType
from tokens.services.alerts import webhook

logger = logging.getLogger(__name__)

BATCH = 100


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    skipped: int = 0


def _admins(organization_id: int) -> list[str]:
    return list(
        User.objects.filter(
            organization_id=organization_id,
            role=User.Role.ADMIN,
            is_banned=False,
            is_active=True,
        )
        .order_by("email")
        .values_list("email", flat=True)
    )


def recipients(alert: Alert) -> list[str]:
    """Organization alerts: its admins. A user's: the user, and the admins too
    when a paid user reached 100% (blocked)."""
    if alert.user_id is None:
        return _admins(alert.organization_id)
    user = alert.user
    people = [user.email] if user.is_active and not user.is_banned else []
    if alert.threshold >= 100 and user.is_paid:
        people += [a for a in _admins(alert.organization_id) if a not in people]
    return people


def message(alert: Alert) -> str:
    """The alert in one sentence (e-mail subject and the webhook's text)."""
    label = str(TokenType(alert.token_type).label).lower()
    if alert.kind == Alert.Kind.ORG_RUNOUT:
        return (
            f"{alert.organization.name}: the {label} pool is projected to run out "
            f"on {alert.detail.get('runout', '?')} (month end: "
            f"{alert.detail.get('projected', 0):,} of {alert.budget:,} tokens)."
        )
    if alert.kind == Alert.Kind.ORG_USAGE:
        return (
            f"{alert.organization.name} has used {alert.threshold}% of its "
            f"{label} pool ({alert.used:,} of {alert.budget:,} tokens)."
        )
    blocked = " and is blocked until next month" if alert.threshold >= 100 else ""
    return (
        f"{alert.user.email} has used {alert.threshold}% of their {label} limit "
        f"({alert.used:,} of {alert.budget:,} tokens){blocked}."
    )


def payload(alert: Alert) -> dict:
    """Slack-compatible (``text``) plus the structured fields."""
    return {
        "text": message(alert),
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "threshold": alert.threshold,
            "organization": alert.organization.name,
            "user": alert.user.email if alert.user_id else None,
            "token_type": alert.token_type,
            "month": alert.month.isoformat(),
            "used": alert.used,
            "budget": alert.budget,
            "detail": alert.detail,
            "created_at": alert.created_at.isoformat(),
        },
    }


def _send_email(alert: Alert) -> None:
    to = alert.recipients
    if not to:
        return
    send_templated_email(
        to=to,
        template="alert",
        context={
            "alert": alert,
            "text": message(alert),
            "url": settings.SITE_URL
            + (reverse("tokens:me") if alert.user_id else reverse("tokens:alerts")),
        },
    )


def _deliver_one(pk: int, now: dt.datetime) -> str:
    """Claim one undelivered alert and send what is missing: "delivered",
    "failed" or "skipped" (delivered already, or being sent by someone else)."""
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
            .select_related("organization", "user")
            .filter(pk=pk, delivered_at__isnull=True)
            .first()
        )
        if alert is None:
            return "skipped"
        if not alert.attempts:
            alert.recipients = recipients(alert)
        alert.attempts += 1
        alert.last_attempt_at = now
        errors = []
        if alert.emailed_at is None:
            try:
                _send_email(alert)
                alert.emailed_at = now
            except Exception as error:
                logger.exception("alert %s: e-mail failed", pk)
                errors.append(f"e-mail: {error}")
        url = (
            AlertSettings.objects.filter(organization_id=alert.organization_id)
            .values_list("webhook_url", flat=True)
            .first()
        )
        if url and alert.webhook_at is None:
            try:
                webhook.post(url, payload(alert))
                alert.webhook_at = now
            except Exception as error:
                logger.warning("alert %s: webhook failed: %s", pk, error)
                errors.append(f"webhook: {error}")
        alert.last_error = "; ".join(str(e) for e in errors)[:500]
        if not errors:
            alert.delivered_at = now
        alert.save(
            update_fields=[
                "recipients",
                "attempts",
                "last_attempt_at",
                "emailed_at",
                "webhook_at",
                "delivered_at",
                "last_error",
            ]
        )
        return "failed" if errors else "delivered"


def deliver_soon(ids: list[int]) -> threading.Thread | None:
    """Deliver the alerts a usage call fired, after its commit, without making the
    call wait: in a thread of its own (``ALERTS_DELIVER_IN_BACKGROUND``, on by
    default), whose database connection is closed when it ends. If the process
    stops first, the alerts stay undelivered and ``send_alerts`` delivers them.
    Returns the thread (None when delivered in place)."""
    if not settings.ALERTS_DELIVER_IN_BACKGROUND:
        deliver(ids)
        return None
    thread = threading.Thread(
        target=_deliver_in_thread, args=(list(ids),), name="alerts", daemon=True
    )
    thread.start()
    return thread


def _deliver_in_thread(ids: list[int]) -> None:
    try:
        deliver(ids)
    except Exception:  # logged; the alerts stay undelivered for send_alerts
        logger.exception("Delivering alerts %s failed", ids)
    finally:
        connections.close_all()


def deliver(ids: list[int] | None = None, *, limit: int = BATCH) -> DeliveryReport:
    """Deliver these alerts (after the commit that fired them), or the oldest
    undelivered ones (``send_alerts``); each in its own transaction."""
    now = timezone.now()
    if ids is None:
        ids = list(
            Alert.objects.filter(delivered_at__isnull=True)
            .order_by("created_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
    report = DeliveryReport()
    for pk in ids:
        outcome = _deliver_one(pk, now)
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report
