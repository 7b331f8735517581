"""Reads of the pool: purchases, pools, allocated and unallocated tokens, users'
balances and limits (docs/product.md, Tokens: pool, limits and minimum)."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, Sum

from accounts.models import Organization, User
from asksage_admin.lib.periods import last_day, period_of
from tokens.models import (
    TOKEN_TYPES,
    Allocation,
    AllocationChange,
    Purchase,
    UsageCounter,
)

TYPES = TOKEN_TYPES


def purchases_active_in(org: Organization | int, period: dt.date):
    """Purchases that count toward the pool of ``period`` (a month); ``org`` an
    organization or its id."""
    return Purchase.objects.filter(
        organization=org, starts_on__lte=last_day(period)
    ).filter(Q(expires_on__isnull=True) | Q(expires_on__gte=period))


def pools(org: Organization | int, period: dt.date | None = None) -> dict[str, int]:
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
        """What the pages show: the kernel's headroom (pool − allocated,
        tokens/services/pool/kernel.py), never below 0."""
        return max(0, self.pool - self.allocated)


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


def user_balance(
    org: Organization, user: User, token_type: str, period: dt.date | None = None
) -> Balance:
    """The user's limit in ``org`` and their counter of ``org`` for the month (usage
    charged to an organization they left is not theirs here)."""
    period = period or period_of()
    limit = (
        Allocation.objects.filter(organization=org, user=user, token_type=token_type)
        .values_list("limit", flat=True)
        .first()
    ) or 0
    counter = (
        UsageCounter.objects.filter(
            organization=org, user=user, token_type=token_type, period=period
        )
        .values("used", "held")
        .first()
    ) or {"used": 0, "held": 0}
    return Balance(token_type, period, limit, counter["used"], counter["held"])


def user_balances(
    org: Organization, user: User, period: dt.date | None = None
) -> list[Balance]:
    return [user_balance(org, user, t, period) for t in TYPES]


def user_limits(org: Organization, user: User) -> dict[str, int]:
    """The user's current limit per token type in ``org`` (0 where none was set)."""
    limits = dict(
        Allocation.objects.filter(user=user, organization=org).values_list(
            "token_type", "limit"
        )
    )
    return {t: limits.get(t, 0) for t in TYPES}


def allocation_history(org: Organization, user: User):
    """The user's limit changes made in ``org`` (another organization's changes,
    their admins and notes, stay there)."""
    return AllocationChange.objects.filter(organization=org, user=user).select_related(
        "actor"
    )
