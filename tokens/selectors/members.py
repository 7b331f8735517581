"""Reads of User Management (docs/product.md, User Management): the users page's
rows and what a bulk action would do."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts.models import Organization, User
from asksage_admin.lib.periods import period_of, previous_period
from tokens.models import (
    Allocation,
    TokenType,
    UsageCounter,
)
from tokens.selectors.pool import TYPES, org_summary


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
            title=_("Deactivate %(n)d users?") % {"n": n},
            summary=_(
                "%(n)d paid users will be deactivated: their limits drop to %(floor)s "
                "tokens per type."
            )
            % {"n": len(targets), "floor": fmt(floor)},
            button=_("Deactivate %(n)d users") % {"n": len(targets)},
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
            title=_("Reactivate %(n)d users?") % {"n": n},
            summary=_(
                "%(n)d unpaid users will be reactivated with at least %(min)s tokens "
                "per type."
            )
            % {"n": len(targets), "min": fmt(minimum)},
            button=_("Reactivate %(n)d users") % {"n": len(targets)},
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
            title=(_("Ban %(n)d users?") if ban else _("Unban %(n)d users?"))
            % {"n": n},
            summary=(
                _(
                    "%(n)d users will be banned: they cannot sign in and the gateway "
                    "refuses them."
                )
                if ban
                else _("%(n)d users will be unbanned.")
            )
            % {"n": len(targets)},
            button=(_("Ban %(n)d users") if ban else _("Unban %(n)d users"))
            % {"n": len(targets)},
            destructive=ban,
        )
    t, limit = data["token_type"], data["limit"]
    net = sum(limit - current(u, t) for u in users)
    free = summary[t].unallocated
    return BulkEffect(
        title=_("Set the %(type)s limit of %(n)d users to %(limit)s?")
        % {"type": t, "n": n, "limit": fmt(limit)},
        summary=_("Every selected user's max %(type)s tokens becomes %(limit)s.")
        % {"type": t, "limit": fmt(limit)},
        button=_("Set %(n)d limits") % {"n": n},
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
