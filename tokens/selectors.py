"""Every read of the tokens app, scoped to the organization being viewed.

Every selector that reads a tenant table takes that organization (``org``) and
filters on it, even when it also takes a user: a user who moved keeps their rows in
the organization they left (usage, counters, allocation history, requests), and
those are the other organization's data (``tests/test_tenant_selectors.py`` checks
every public function here).
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import DateField, Exists, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, Greatest, TruncDate

from accounts.models import Organization, User
from asksage_admin.lib.periods import last_day, period_of, previous_period
from tokens.models import (
    Allocation,
    AllocationChange,
    DailyUsage,
    MonthlyUsage,
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


# --- User Management (docs/product.md, User Management) -------------------------------


def users_in(org: Organization):
    """The organization's users: every panel lookup by id goes through this (404
    outside the organization)."""
    return User.objects.filter(organization=org)


def _limit_of(org: Organization, token_type: str):
    return Coalesce(
        Subquery(
            Allocation.objects.filter(
                organization=org, user=OuterRef("pk"), token_type=token_type
            ).values("limit")[:1]
        ),
        0,
    )


def _used_in(org: Organization, token_type: str, period: dt.date):
    return Coalesce(
        Subquery(
            UsageCounter.objects.filter(
                organization=org,
                user=OuterRef("pk"),
                token_type=token_type,
                period=period,
            ).values("used")[:1]
        ),
        0,
    )


def last_active(org: Organization):
    """ "Last active" of a user (docs/product.md, User Management): the later of
    their last day with usage in ``org`` (the gateway; the newest month's row of
    ``MonthlyUsage``) and the day they last used this console (signed in), as a
    UTC date; empty when neither happened."""
    usage = Subquery(
        MonthlyUsage.objects.filter(organization=org, user=OuterRef("pk"))
        .order_by("-month")
        .values("last_day")[:1],
        output_field=DateField(),
    )
    visit = TruncDate("last_active_at", tzinfo=dt.UTC)
    # Greatest is NULL on SQLite when either side is: coalesce each with the other.
    return Greatest(
        Coalesce(usage, visit), Coalesce(visit, usage), output_field=DateField()
    )


def users_for_panel(org: Organization, period: dt.date | None = None):
    """The User Management rows with every column the table shows, in one query
    (correlated subqueries on counters and allocations, so sorting on any column
    happens in the database)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    period = period or period_of()
    total = (
        UsageCounter.objects.filter(organization=org, user=OuterRef("pk"))
        .values("user")
        .annotate(total=Sum("used"))
        .values("total")[:1]
    )
    return users_in(org).annotate(
        has_mfa=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
        max_inference=_limit_of(org, TokenType.INFERENCE),
        max_embedding=_limit_of(org, TokenType.EMBEDDING),
        monthly_inference=_used_in(org, TokenType.INFERENCE, period),
        prev_month_inference=_used_in(
            org, TokenType.INFERENCE, previous_period(period)
        ),
        total_usage=Coalesce(Subquery(total), 0),
        last_active=last_active(org),
    )


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


def recent_usage(org: Organization, user: User):
    return (
        UsageEvent.objects.filter(organization=org, user=user)
        .select_related("model")
        .order_by("-occurred_at", "-id")
    )


@dataclass(frozen=True)
class BulkEffect:
    title: str
    summary: str
    button: str
    destructive: bool = False
    pool_lines: tuple[str, ...] = ()
    refusal: str = ""


def bulk_effect(org: Organization, users: list[User], data: dict) -> BulkEffect:
    """What a bulk action would do, for its confirmation page (nothing changes)."""
    from django.conf import settings
    from django.utils.translation import gettext as _
    from django.utils.translation import ngettext

    n = len(users)
    action = data["action"]
    summary = org_summary(org)
    limits = {
        (a.user_id, a.token_type): a.limit
        for a in Allocation.objects.filter(organization=org, user__in=users)
    }

    def current(user, t):
        return limits.get((user.pk, t), 0)

    def fmt(value: int) -> str:
        return f"{value:,}"

    if action == "paid_off":
        targets = [u for u in users if u.is_paid]
        floor = settings.DISABLED_USER_TOKENS
        freed = {t: sum(max(0, current(u, t) - floor) for u in targets) for t in TYPES}
        return BulkEffect(
            title=ngettext("Deactivate %(n)d user?", "Deactivate %(n)d users?", n)
            % {"n": n},
            summary=ngettext(
                "%(n)d paid user will be deactivated: their limits drop to %(floor)s "
                "tokens per type.",
                "%(n)d paid users will be deactivated: their limits drop to %(floor)s "
                "tokens per type.",
                len(targets),
            )
            % {"n": len(targets), "floor": fmt(floor)},
            button=ngettext(
                "Deactivate %(n)d user", "Deactivate %(n)d users", len(targets)
            )
            % {"n": len(targets)},
            destructive=True,
            pool_lines=tuple(
                _("%(n)s %(type)s tokens return to the pool.")
                % {"n": fmt(freed[t]), "type": t}
                for t in TYPES
            ),
        )
    if action == "paid_on":
        targets = [u for u in users if not u.is_paid]
        minimum = settings.MIN_USER_TOKENS
        need = {t: sum(max(0, minimum - current(u, t)) for u in targets) for t in TYPES}
        short = [
            _("%(n)s %(type)s tokens short")
            % {"n": fmt(need[t] - summary[t].unallocated), "type": t}
            for t in TYPES
            if need[t] > summary[t].unallocated
        ]
        return BulkEffect(
            title=ngettext("Reactivate %(n)d user?", "Reactivate %(n)d users?", n)
            % {"n": n},
            summary=ngettext(
                "%(n)d unpaid user will be reactivated with at least %(min)s tokens "
                "per type.",
                "%(n)d unpaid users will be reactivated with at least %(min)s tokens "
                "per type.",
                len(targets),
            )
            % {"n": len(targets), "min": fmt(minimum)},
            button=ngettext(
                "Reactivate %(n)d user", "Reactivate %(n)d users", len(targets)
            )
            % {"n": len(targets)},
            pool_lines=tuple(
                _("Needs %(need)s of %(free)s unallocated %(type)s tokens.")
                % {"need": fmt(need[t]), "free": fmt(summary[t].unallocated), "type": t}
                for t in TYPES
            ),
            refusal=_("Not enough unallocated tokens: %(short)s.")
            % {"short": "; ".join(short)}
            if short
            else "",
        )
    if action in ("ban", "unban"):
        ban = action == "ban"
        targets = [u for u in users if u.is_banned != ban]
        return BulkEffect(
            title=(
                ngettext("Ban %(n)d user?", "Ban %(n)d users?", n)
                if ban
                else ngettext("Unban %(n)d user?", "Unban %(n)d users?", n)
            )
            % {"n": n},
            summary=(
                ngettext(
                    "%(n)d user will be banned: they cannot sign in and the gateway "
                    "refuses them.",
                    "%(n)d users will be banned: they cannot sign in and the gateway "
                    "refuses them.",
                    len(targets),
                )
                if ban
                else ngettext(
                    "%(n)d user will be unbanned.",
                    "%(n)d users will be unbanned.",
                    len(targets),
                )
            )
            % {"n": len(targets)},
            button=(
                ngettext("Ban %(n)d user", "Ban %(n)d users", len(targets))
                if ban
                else ngettext("Unban %(n)d user", "Unban %(n)d users", len(targets))
            )
            % {"n": len(targets)},
            destructive=ban,
        )
    t, limit = data["token_type"], data["limit"]
    net = sum(limit - current(u, t) for u in users)
    free = summary[t].unallocated
    return BulkEffect(
        title=ngettext(
            "Set the %(type)s limit of %(n)d user to %(limit)s?",
            "Set the %(type)s limit of %(n)d users to %(limit)s?",
            n,
        )
        % {"type": t, "n": n, "limit": fmt(limit)},
        summary=_("Every selected user's max %(type)s tokens becomes %(limit)s.")
        % {"type": t, "limit": fmt(limit)},
        button=ngettext("Set %(n)d limit", "Set %(n)d limits", n) % {"n": n},
        pool_lines=(
            _(
                "Net change to allocated %(type)s tokens: %(net)s; unallocated now "
                "%(free)s, after %(after)s."
            )
            % {
                "type": t,
                "net": f"{net:+,}",
                "free": fmt(free),
                "after": fmt(free - net),
            },
        ),
        refusal=_("Not enough unallocated %(type)s tokens: %(short)s short.")
        % {"type": t, "short": fmt(net - free)}
        if net > free
        else "",
    )


# --- Token Requests (docs/product.md, Token Requests) ---------------------------------

# Imported here so this section stays one appended block (the top import is shared).
from django.db.models import Count  # noqa: E402

from tokens.models import AutoApprovalRule, TokenRequest  # noqa: E402

REQUEST_TABS = ("pending", "approved", "denied", "all")


def token_requests_in(org: Organization):
    """The organization's token requests: every panel lookup by id goes through this
    (404 outside the organization)."""
    return TokenRequest.objects.filter(organization=org)


def token_requests_for_panel(org: Organization, status: str = "pending"):
    """The queue's rows for one tab (a status, or "all"), with the user and the
    deciding admin joined in the same query."""
    rows = token_requests_in(org).select_related("user", "decided_by")
    if status != "all":
        rows = rows.filter(status=status)
    return rows


def token_request_counts(org: Organization) -> dict[str, int]:
    """The count per tab (pending, approved, denied, all) in one query."""
    counts = dict.fromkeys(REQUEST_TABS, 0)
    for row in (
        token_requests_in(org).order_by().values("status").annotate(n=Count("id"))
    ):
        counts[row["status"]] = row["n"]
    # "all" counts every request, withdrawn ones too (listed on the All tab).
    counts["all"] = sum(n for status, n in counts.items() if status != "all")
    return counts


def pending_request_count(org: Organization) -> int:
    """The sidebar badge: one COUNT on the (organization, status) index."""
    return token_requests_in(org).filter(status=TokenRequest.Status.PENDING).count()


def user_token_requests(org: Organization, user: User):
    """A member's own requests in ``org``, newest first, with the deciding admin."""
    return token_requests_in(org).filter(user=user).select_related("decided_by")


def auto_approval_rule(org: Organization) -> AutoApprovalRule:
    """The organization's rule, or an unsaved one with the defaults (off)."""
    return AutoApprovalRule.objects.filter(
        organization=org
    ).first() or AutoApprovalRule(organization=org)
