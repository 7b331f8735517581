"""Reads of metered usage: a user's usage by model, recent events, and the usage
export's rows."""

import datetime as dt

from django.db.models import Sum

from accounts.models import Organization, User
from asksage_admin.lib.periods import last_day, period_of
from tokens.models import (
    DailyUsage,
    UsageEvent,
)


def user_usage_by_model(
    org: Organization, user: User, period: dt.date | None = None
) -> list[dict]:
    """The user's usage in ``org`` in a month per model and type, biggest first: one
    query on the daily rollup. Rows: model__name, model__key, token_type, events,
    tokens."""
    period = period or period_of()
    return list(
        DailyUsage.objects.filter(
            organization=org, user=user, day__gte=period, day__lte=last_day(period)
        )
        .values("model__name", "model__key", "token_type")
        .annotate(events=Sum("events"), tokens=Sum("tokens"))
        .order_by("-tokens", "model__name", "token_type")
    )


EXPORT_COLUMNS = [
    "event_id",
    "occurred_at",
    "user_email",
    "model",
    "token_type",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "application",
]


def usage_events_for_export(org: Organization, start: dt.date, end: dt.date):
    """The organization's usage events from ``start`` to ``end`` (whole UTC days,
    both included), oldest first, as tuples in EXPORT_COLUMNS order. Lazy: stream it
    with ``.iterator()``."""
    begin = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    return (
        UsageEvent.objects.filter(
            organization=org, occurred_at__gte=begin, occurred_at__lt=stop
        )
        .order_by("occurred_at", "id")
        .values_list(
            "event_id",
            "occurred_at",
            "user__email",
            "model__key",
            "token_type",
            "prompt_tokens",
            "completion_tokens",
            "tokens",
            "application",
        )
    )


def recent_usage(org: Organization, user: User):
    return (
        UsageEvent.objects.filter(organization=org, user=user)
        .select_related("model")
        .order_by("-occurred_at", "-id")
    )
