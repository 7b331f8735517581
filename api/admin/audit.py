"""The audit trail (docs/admin-api.md, Audit trail): the Activity Logs page's
audit tab, its filters and its keyset cursor."""

import datetime as dt

from django.http import HttpRequest, QueryDict
from ninja import Field, Query, Router, Schema

from accounts.models import AuditEvent
from analytics import keyset
from analytics.filtersets import AuditEventFilterSet
from analytics.views.activity import audit_events
from api import auth
from api.errors import ApiError
from api.pagination import MAX_PAGE

router = Router(tags=["audit trail"])


class AuditEventOut(Schema):
    id: int
    time: dt.datetime
    actor_email: str
    action: str
    target_type: str
    target_id: str
    target_repr: str
    before: dict | None
    after: dict | None
    message: str
    ip: str | None
    request_id: str
    via: str


class AuditPage(Schema):
    results: list[AuditEventOut]
    next: str | None


class AuditFilters(Schema):
    actor: str | None = Field(None, max_length=254, description="Actor email.")
    action: str | None = Field(None, max_length=64)
    target: str | None = Field(None, max_length=254, description="Target user email.")
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=MAX_PAGE)


@router.get(
    "/audit-events", response=AuditPage, auth=auth.READ, summary="The audit trail"
)
def audit_list(request: HttpRequest, filters: Query[AuditFilters]):
    """The organization's audit events, newest first, filtered as in the panel."""
    query = QueryDict(mutable=True)
    for name in ("actor", "action", "target", "date_from", "date_to"):
        value = getattr(filters, name)
        if value:
            query[name] = str(value)
    filterset = AuditEventFilterSet(
        query, queryset=audit_events(auth.organization(request))
    )
    if not filterset.is_valid():
        raise ApiError(
            400,
            "invalid_request",
            "Some filters are invalid.",
            fields={k: " ".join(v) for k, v in filterset.errors.items()},
        )
    try:
        found = keyset.paginate(
            filterset.qs, time_field="time", size=filters.limit, after=filters.cursor
        )
    except keyset.InvalidCursor as error:
        raise ApiError(
            400,
            "invalid_cursor",
            "This cursor is not one this API gave: start again without it.",
        ) from error
    return {"results": [_out(e) for e in found.rows], "next": found.older}


def _out(event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "time": event.time,
        "actor_email": event.actor_email,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "before": event.before,
        "after": event.after,
        "message": event.message,
        "ip": event.ip,
        "request_id": event.request_id,
        "via": event.via,
    }
