"""Every read of the tokens app, already scoped to an organization or a user."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, Sum

from accounts.models import Organization, User
from asksage_admin.lib.periods import last_day, period_of
from tokens.models import (
    Allocation,
    DailyUsage,
    Purchase,
    TokenType,
    UsageCounter,
    UsageEvent,
)

TYPES = [TokenType.INFERENCE, TokenType.EMBEDDING]
_POOL_FIELD = {
    TokenType.INFERENCE: "inference_tokens",
    TokenType.EMBEDDING: "embedding_tokens",
}


def purchases_active_in(org: Organization, period: dt.date):
    """Purchases that count toward the pool of ``period`` (a month)."""
    return Purchase.objects.filter(
        organization=org, starts_on__lte=last_day(period)
    ).filter(Q(expires_on__isnull=True) | Q(expires_on__gte=period))


def pools(org: Organization, period: dt.date | None = None) -> dict[str, int]:
    """The org's monthly pool per type: the sum of its purchases active that month."""
    sums = purchases_active_in(org, period or period_of()).aggregate(
        inference=Sum("inference_tokens"), embedding=Sum("embedding_tokens")
    )
    return {t: sums[t] or 0 for t in TYPES}


def allocated(org: Organization) -> dict[str, int]:
    """The sum of the limits of the org's users, per type."""
    rows = (
        Allocation.objects.filter(organization=org)
        .values("token_type")
        .annotate(total=Sum("limit"))
    )
    totals = {t: 0 for t in TYPES}
    totals.update({row["token_type"]: row["total"] or 0 for row in rows})
    return totals


@dataclass(frozen=True)
class TypeSummary:
    token_type: str
    pool: int
    allocated: int
    used: int
    held: int

    @property
    def unallocated(self) -> int:
        return max(0, self.pool - self.allocated)

    @property
    def over_allocated(self) -> int:
        return max(0, self.allocated - self.pool)


def org_summary(
    org: Organization, period: dt.date | None = None
) -> dict[str, TypeSummary]:
    """Pool, allocated, used, held and unallocated per type for a month."""
    period = period or period_of()
    pool = pools(org, period)
    alloc = allocated(org)
    usage = {
        row["token_type"]: row
        for row in UsageCounter.objects.filter(organization=org, period=period)
        .values("token_type")
        .annotate(used=Sum("used"), held=Sum("held"))
    }
    return {
        t: TypeSummary(
            token_type=t,
            pool=pool[t],
            allocated=alloc[t],
            used=(usage.get(t) or {}).get("used") or 0,
            held=(usage.get(t) or {}).get("held") or 0,
        )
        for t in TYPES
    }


@dataclass(frozen=True)
class Balance:
    token_type: str
    period: dt.date
    limit: int
    used: int
    held: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used - self.held)

    @property
    def overage(self) -> int:
        return max(0, self.used + self.held - self.limit)


def user_balance(user: User, token_type: str, period: dt.date | None = None) -> Balance:
    period = period or period_of()
    limit = (
        Allocation.objects.filter(user=user, token_type=token_type)
        .values_list("limit", flat=True)
        .first()
    ) or 0
    counter = (
        UsageCounter.objects.filter(user=user, token_type=token_type, period=period)
        .values("used", "held")
        .first()
    ) or {"used": 0, "held": 0}
    return Balance(token_type, period, limit, counter["used"], counter["held"])


def user_balances(user: User, period: dt.date | None = None) -> list[Balance]:
    return [user_balance(user, t, period) for t in TYPES]


def user_usage_by_model(user: User, period: dt.date | None = None) -> list[dict]:
    """The user's usage in a month per model and type, biggest first: one query on
    the daily rollup. Rows: model__name, model__key, token_type, events, tokens."""
    period = period or period_of()
    return list(
        DailyUsage.objects.filter(user=user, day__gte=period, day__lte=last_day(period))
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
