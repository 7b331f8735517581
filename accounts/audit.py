"""The one way to write an audit event. Every service calls ``record`` inside its
own transaction, so the event commits or rolls back with the change it describes."""

from typing import Any

from django.db import models

from accounts.models import AuditEvent, Organization, User
from asksage_admin.lib import request_context

Action = AuditEvent.Action

# Keys that must never reach the audit trail, whatever a caller passes.
_SECRET_KEYS = {"password", "secret", "token", "otp", "key", "authorization"}


def clean_text(text: str) -> str:
    """``text`` without NUL and unpaired surrogates: PostgreSQL refuses both in text
    and jsonb, and both can arrive from a query string (``%00``, ``%ED%A0%80``)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_json(value: Any) -> Any:
    """``value`` with every string in it (keys included) made storable."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def _scrub(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return clean_json(
        {k: ("[redacted]" if k.lower() in _SECRET_KEYS else v) for k, v in data.items()}
    )


def build(
    *,
    action: str,
    actor: User | None = None,
    organization: Organization | None = None,
    target: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    message: str = "",
    actor_email: str = "",
) -> AuditEvent:
    """One unsaved audit event; IP and request id come from the current request."""
    context = request_context.current()
    if organization is None and target is not None:
        organization = getattr(target, "organization", None)
        if organization is None and isinstance(target, Organization):
            organization = target
    if actor is not None and not actor.pk:
        actor = None
    return AuditEvent(
        organization=organization,
        actor=actor,
        actor_email=actor.email if actor is not None else clean_text(actor_email),
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=clean_text(str(target)[:300]) if target is not None else "",
        before=_scrub(before),
        after=_scrub(after),
        message=clean_text(str(message)),
        ip=context.ip,
        request_id=context.request_id,
        via=context.via,
    )


def record(**fields: Any) -> AuditEvent:
    """Write one audit event (the arguments of ``build``)."""
    event = build(**fields)
    event.save(force_insert=True)
    return event


def record_many(events: list[AuditEvent]) -> list[AuditEvent]:
    """Write events made with ``build`` in one INSERT (their ids are set), for
    actions that change many users at once."""
    return AuditEvent.objects.bulk_create(events)
