"""Forecast selectors (docs/forecasts.md): the rollups a forecast needs, read in
a constant number of queries, handed to the pure functions of
``asksage_admin/lib/forecasts.py``. Never the raw usage events.

Every selector takes the organization and filters on it
(``tests/test_tenant_selectors.py``)."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import (
    Case,
    F,
    FloatField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils import timezone

from accounts.models import Organization, User
from asksage_admin.lib import forecasts as fc
from asksage_admin.lib.periods import last_day, next_period, period_of
from tokens.models import (
    Alert,
    DailyUsage,
    OrgDailyUsage,
    Purchase,
    TokenType,
    UsageCounter,
)
from tokens.selectors import TYPES


def _window(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The days to read: the 28 complete days before today and the whole month
    so far (on the 29th to 31st the month starts before the 28 days)."""
    today = now.astimezone(dt.UTC).date()
    return min(today - dt.timedelta(days=fc.WINDOW), today.replace(day=1)), today


def _series(
    totals: dict[dt.date, int], today: dt.date, since: dt.date | None
) -> tuple[list[int], int, int]:
    """(history, month_used, today_used) from daily totals: the history is the
    complete days of the window from ``since`` (the organization's or user's
    first day), oldest first."""
    start = today - dt.timedelta(days=fc.WINDOW)
    if since is not None and since > start:
        start = since
    history = [
        totals.get(start + dt.timedelta(days=i), 0)
        for i in range(max(0, (today - start).days))
    ]
    month_used = sum(v for d, v in totals.items() if d >= today.replace(day=1))
    return history, month_used, totals.get(today, 0)


@dataclass(frozen=True)
class OrgForecast:
    """One token type's forecast for an organization, with the lots to buy."""

    token_type: str
    label: str
    forecast: fc.Forecast
    pool: int
    next_pool: int
    lot: int

    @property
    def lots_this_month(self) -> int:
        return fc.lots_needed(self.forecast.projected, self.pool, self.lot)

    @property
    def lots_next_month(self) -> int:
        return fc.lots_needed(self.forecast.next_month, self.next_pool, self.lot)


def org_forecasts(
    org: Organization, now: dt.datetime | None = None
) -> dict[str, OrgForecast]:
    """Per token type: projected month-end usage against this month's pool, the
    day it runs out at the recent rate, and next month's projection against next
    month's pool. Two queries: the striped daily rollup (stripes summed) and the
    purchases of this month and the next."""
    now = now or timezone.now()
    start, today = _window(now)
    totals: dict[str, dict[dt.date, int]] = {t: {} for t in TYPES}
    for row in (
        OrgDailyUsage.objects.filter(organization=org, day__gte=start, day__lte=today)
        .values("token_type", "day")
        .annotate(total=Sum("tokens"))
        .order_by()
    ):
        totals[row["token_type"]][row["day"]] = row["total"]
    period = period_of(now)
    following = next_period(period)
    pools = {period: dict.fromkeys(TYPES, 0), following: dict.fromkeys(TYPES, 0)}
    for p in Purchase.objects.filter(
        organization=org, starts_on__lte=last_day(following)
    ).filter(Q(expires_on__isnull=True) | Q(expires_on__gte=period)):
        for month in pools:
            if p.starts_on <= last_day(month) and (
                p.expires_on is None or p.expires_on >= month
            ):
                pools[month]["inference"] += p.inference_tokens
                pools[month]["embedding"] += p.embedding_tokens
    since = (org.activated_at or org.created_at).astimezone(dt.UTC).date()
    result = {}
    for t in TYPES:
        history, month_used, today_used = _series(totals[t], today, since)
        result[t] = OrgForecast(
            token_type=t,
            label=str(TokenType(t).label),
            forecast=fc.forecast(
                history=history,
                month_used=month_used,
                today_used=today_used,
                now=now,
                budget=pools[period][t],
            ),
            pool=pools[period][t],
            next_pool=pools[following][t],
            lot=settings.TOKEN_LOT,
        )
    return result


def daily_projection(forecast: fc.Forecast, now: dt.datetime) -> list[tuple]:
    """The tokens still expected on each day left in the month at the forecast's
    rate (today: the rest of today only), for the chart and its table."""
    return [
        (day, round(forecast.rate.on(day) * share))
        for day, share in fc.future_days(now)
    ]


@dataclass(frozen=True)
class UserForecast:
    token_type: str
    label: str
    limit: int
    used: int
    projected: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.projected / self.limit) if self.limit else None

    @property
    def likely_to_hit(self) -> bool:
        return bool(self.limit) and self.projected >= self.limit


def user_forecasts(
    org: Organization,
    user: User,
    limits: dict[str, int],
    now: dt.datetime | None = None,
) -> list[UserForecast]:
    """A user's month-end projection per type against their limit (``/me/``): the
    month so far plus the mean of the last 7 complete days over the rest of the
    month, as User Management's column. One query on the daily rollup."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    start = min(today - dt.timedelta(days=fc.RECENT), today.replace(day=1))
    sums = {t: [0, 0] for t in TYPES}
    for row in (
        DailyUsage.objects.filter(
            organization=org, user=user, day__gte=start, day__lte=today
        )
        .values("token_type", "day")
        .annotate(total=Sum("tokens"))
        .order_by()
    ):
        cell = sums[row["token_type"]]
        if row["day"] >= today.replace(day=1):
            cell[0] += row["total"]
        if today - dt.timedelta(days=fc.RECENT) <= row["day"] < today:
            cell[1] += row["total"]
    return [
        UserForecast(
            token_type=t,
            label=str(TokenType(t).label),
            limit=limits.get(t, 0),
            used=sums[t][0],
            projected=fc.recent_projection(
                month_used=sums[t][0], last_days=sums[t][1], now=now
            ),
        )
        for t in TYPES
    ]


def projected_annotation(
    org: Organization, token_type: str, used, limit, now: dt.datetime | None = None
):
    """SQL for User Management's "Likely to hit the limit" column: projected
    month-end usage in percent of the limit (NULL without a limit), the formula of
    ``recent_projection`` with the last 7 complete days from the daily rollup, so
    the table sorts on it in the database."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    last7 = Coalesce(
        Subquery(
            DailyUsage.objects.filter(
                organization=org,
                user=OuterRef("pk"),
                token_type=token_type,
                day__gte=today - dt.timedelta(days=fc.RECENT),
                day__lt=today,
            )
            .values("user")
            .annotate(total=Sum("tokens"))
            .values("total")[:1]
        ),
        0,
    )
    factor = fc.month_left(now) / fc.RECENT
    projected = Cast(used, FloatField()) + Cast(last7, FloatField()) * Value(factor)
    return Case(
        When(
            **{f"{limit}__gt": 0},
            then=projected * Value(100.0) / Cast(F(limit), FloatField()),
        ),
        default=None,
        output_field=FloatField(),
    )


def alerts_for_panel(org: Organization):
    """The organization's alerts, newest first, with their users (the alerts
    list: one query a page)."""
    return Alert.objects.filter(organization=org).select_related("user")


def with_limit_projection(queryset, org: Organization, now: dt.datetime | None = None):
    """User Management's rows with ``likely_percent``: the higher of the two
    types' projected month-end usage in percent of the limit (-1 when the user
    has no limit), in SQL so that the column sorts in the database. Needs the
    ``monthly_inference`` and ``max_*`` annotations of ``users_for_panel``."""
    period = period_of(now or timezone.now())
    embedding_used = Coalesce(
        Subquery(
            UsageCounter.objects.filter(
                organization=org,
                user=OuterRef("pk"),
                token_type=TokenType.EMBEDDING,
                period=period,
            ).values("used")[:1]
        ),
        0,
    )
    return queryset.annotate(
        likely_percent=Greatest(
            Coalesce(
                projected_annotation(
                    org,
                    TokenType.INFERENCE,
                    F("monthly_inference"),
                    "max_inference",
                    now,
                ),
                Value(-1.0),
            ),
            Coalesce(
                projected_annotation(
                    org, TokenType.EMBEDDING, embedding_used, "max_embedding", now
                ),
                Value(-1.0),
            ),
        )
    )
