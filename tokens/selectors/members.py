"""Reads of User Management (docs/product.md, User Management): the users page's
rows and what a bulk action would do."""

import datetime as dt

from django.db.models import DateField, Exists, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce, Greatest, TruncDate

from accounts.models import Organization, User
from asksage_admin.lib.periods import period_of, previous_period
from tokens.models import (
    Allocation,
    MonthlyUsage,
    TokenType,
    UsageCounter,
)


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
