"""Usage (docs/admin-api.md, Usage): Token Statistics' summaries per month, user
and model for a period, and the raw events as the page's streamed CSV export,
through the same selectors, form and export code."""

import datetime as dt
from typing import Literal

from django.http import HttpRequest, QueryDict
from ninja import Field, Query, Router, Schema

from accounts.services import data_export_record
from analytics import selectors
from analytics.forms import PeriodForm
from analytics.views.statistics import EventExportView
from api import auth
from api.errors import ApiError

router = Router(tags=["usage"])


class PeriodIn(Schema):
    period: Literal["current", "month", "range"] = "current"
    month: str | None = Field(None, max_length=7, description="YYYY-MM")
    start: dt.date | None = None
    end: dt.date | None = None
    token_type: Literal["all", "inference", "embedding"] = "all"  # noqa: S105


class MonthOut(Schema):
    month: str
    inference: int
    embedding: int
    total: int
    events: int


class UserUsageOut(Schema):
    email: str
    name: str
    inference: int
    embedding: int
    total: int
    max_inference: int
    max_embedding: int


class ModelUsageOut(Schema):
    key: str
    name: str
    inference: int
    embedding: int
    total: int
    share_percent: float
    events: int


class SummaryOut(Schema):
    start: dt.date
    end: dt.date
    token_type: str
    months: list[MonthOut]
    users: list[UserUsageOut]
    models: list[ModelUsageOut]


def _period(filters: PeriodIn) -> selectors.StatsPeriod:
    query = QueryDict(mutable=True)
    for name in ("period", "month", "start", "end", "token_type"):
        value = getattr(filters, name)
        if value is not None:
            query[name] = str(value)
    form = PeriodForm(query)
    if not form.is_valid():
        raise ApiError(
            400,
            "invalid_request",
            " ".join(form.errors_text()),
            fields={k: " ".join(v) for k, v in form.errors.items()},
        )
    return form.stats_period()


@router.get(
    "/usage/summary", response=SummaryOut, auth=auth.READ, summary="Usage summaries"
)
def usage_summary(request: HttpRequest, filters: Query[PeriodIn]):
    """Tokens per month (the 12 months ending with the period), per user and per
    model in the period, as Token Statistics shows them."""
    org, period = auth.organization(request), _period(filters)
    return {
        "start": period.start,
        "end": period.end,
        "token_type": period.token_type,
        "months": [
            {
                "month": row.month.strftime("%Y-%m"),
                "inference": row.inference,
                "embedding": row.embedding,
                "total": row.total,
                "events": row.events,
            }
            for row in selectors.monthly_usage(org, period)
        ],
        "users": [
            {
                "email": u.email,
                "name": u.get_full_name(),
                "inference": u.inference,
                "embedding": u.embedding,
                "total": u.inference + u.embedding,
                "max_inference": u.max_inference,
                "max_embedding": u.max_embedding,
            }
            for u in selectors.user_usage_for_export(org, period)
        ],
        "models": [
            {
                "key": m.key,
                "name": m.name,
                "inference": m.inference,
                "embedding": m.embedding,
                "total": m.tokens,
                "share_percent": float(m.share),
                "events": m.events,
            }
            for m in selectors.usage_by_model(org, period)
        ],
    }


@router.get(
    "/usage/events.csv",
    auth=auth.READ,
    summary="Raw usage events (CSV)",
    response={200: str},
    openapi_extra={
        "responses": {
            200: {
                "description": "The events, oldest first, streamed.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
)
def usage_events_csv(request: HttpRequest, filters: Query[PeriodIn]):
    """Every usage event of the period, streamed as Token Statistics' raw export
    (same columns, same code), audited as a data export."""
    org, period = auth.organization(request), _period(filters)
    data_export_record(
        actor=auth.actor(request),
        organization=org,
        what="usage-events",
        filters=period.as_filters(),
    )
    export = EventExportView()
    export.org, export.request = org, request
    return export.response(
        f"usage-events-{org.pk}-{period.start:%Y-%m-%d}-{period.end:%Y-%m-%d}.csv",
        period,
    )
