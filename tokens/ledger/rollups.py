"""The rollups' invariants: 5 (daily rollup = usage events), 5b (organization daily
rollup = daily rollup) and 5c (monthly rollup = daily rollup)."""

import datetime as dt

from django.db.models import (
    Count,
    DateField,
    F,
    Max,
    Q,
    Sum,
)
from django.db.models.functions import (
    Cast,
    Coalesce,
    ExtractDay,
    ExtractMonth,
    ExtractYear,
    TruncDate,
    TruncMonth,
)

from accounts.models import Organization
from tokens.ledger.common import (
    _day,
    _differences,
    _emails,
    _line,
    _listed,
    _month,
    _n,
    _scoped,
)
from tokens.models import (
    TOKEN_TYPES,
    AIModel,
    MonthlyUsage,
    OrgDailyUsage,
    UsageEvent,
)
from tokens.models import DailyUsage as Daily


def _check_daily(organization: Organization | None) -> list[str]:
    keys = ["k_org", "k_user", "k_model", "k_type", "k_day"]
    rollup = _scoped(Daily.objects.all(), organization).values(
        k_org=F("organization_id"),
        k_user=F("user_id"),
        k_model=F("model_id"),
        k_type=F("token_type"),
        k_day=F("day"),
        v_0=F("tokens"),
        v_1=F("events"),
    )
    events = (
        _scoped(UsageEvent.objects.all(), organization)
        .order_by()
        .values(
            k_org=F("organization_id"),
            k_user=F("user_id"),
            k_model=F("model_id"),
            k_type=F("token_type"),
            k_day=TruncDate("occurred_at", tzinfo=dt.UTC),
        )
        .annotate(v_0=Sum("tokens"), v_1=Count("id"))
    )
    rows = _differences(rollup, events, keys, ["v_0", "v_1"], right_needs_left=True)
    emails = _emails(r[1] for r in rows)
    models = dict(
        AIModel.objects.filter(pk__in={r[2] for r in rows}).values_list("id", "key")
    )
    lines = []
    for row in rows:
        _org, user_id, model_id, token_type, day = row[:5]
        tokens, count, ev_tokens, ev_count, has_rollup = row[5:10]
        who = (
            f"{emails.get(user_id, user_id)}, {models.get(model_id, model_id)}, "
            f"{token_type}, {_day(day)}"
        )
        events_say = f"{_n(ev_tokens)} tokens in {_n(ev_count)} events"
        if not has_rollup:
            detail = f"no daily usage row but the events add up to {events_say}."
        else:
            detail = (
                f"daily usage {_n(tokens)} tokens in {_n(count)} events but the "
                f"events add up to {events_say}."
            )
        lines.append(_line(5, f"{who}: {detail}"))
    return _listed(5, lines)


# --- 5b and 5c. coarser rollups = daily rollup ----------------------------------------


def _day_number(field: str):
    """A date as the integer YYYYMMDD: what ``_differences`` can add up and compare
    on every backend, and a maximum of it is the latest day."""
    return ExtractYear(field) * 10000 + ExtractMonth(field) * 100 + ExtractDay(field)


def _from_day_number(value) -> str:
    number = int(value or 0)
    return f"{number // 10000:04d}-{number // 100 % 100:02d}-{number % 100:02d}"


def _org_day_sums(queryset):
    """Tokens and events per organization, model, type and day (the organization
    daily rollup adds up its stripes; the daily rollup its users)."""
    return (
        queryset.order_by()
        .values(
            k_org=F("organization_id"),
            k_model=F("model_id"),
            k_type=F("token_type"),
            k_day=F("day"),
        )
        .annotate(v_0=Sum("tokens"), v_1=Sum("events"))
    )


def _check_org_daily(organization: Organization | None) -> list[str]:
    keys = ["k_org", "k_model", "k_type", "k_day"]
    rollup = _org_day_sums(_scoped(OrgDailyUsage.objects.all(), organization))
    daily = _org_day_sums(_scoped(Daily.objects.all(), organization))
    rows = _differences(rollup, daily, keys, ["v_0", "v_1"], right_needs_left=True)
    names = dict(
        Organization.objects.filter(pk__in={r[0] for r in rows}).values_list(
            "id", "name"
        )
    )
    models = dict(
        AIModel.objects.filter(pk__in={r[1] for r in rows}).values_list("id", "key")
    )
    lines = []
    for row in rows:
        org_id, model_id, token_type, day, tokens, count, d_tokens, d_count = row[:8]
        has_rollup = row[8]
        who = (
            f"{names.get(org_id)} (id {org_id}), {models.get(model_id, model_id)}, "
            f"{token_type}, {_day(day)}"
        )
        daily_says = f"{_n(d_tokens)} tokens in {_n(d_count)} events"
        if not has_rollup:
            detail = (
                f"no organization daily usage row but the daily usage adds up to "
                f"{daily_says}."
            )
        else:
            detail = (
                f"organization daily usage {_n(tokens)} tokens in {_n(count)} events "
                f"but the daily usage adds up to {daily_says}."
            )
        lines.append(_line("5b", f"{who}: {detail}"))
    return _listed("5b", lines)


# The figures 5c compares, per part of a monthly row: (label, tokens, events, last
# day) columns; the parts are the types, then the totals.
_MONTHLY_PARTS = [
    *((t, f"{t}_tokens", f"{t}_events", f"{t}_last_day") for t in TOKEN_TYPES),
    ("total", "tokens", "events", "last_day"),
]


def _monthly_part(part: str, tokens: int, events: int, last: int) -> str:
    said = f"{part} {_n(tokens)} tokens in {_n(events)} events"
    return f"{said}, last on {_from_day_number(last)}" if last else said


def _check_monthly(organization: Organization | None) -> list[str]:
    keys = ["k_org", "k_user", "k_month"]
    values = [f"v_{i}" for i in range(3 * len(_MONTHLY_PARTS))]
    # A last day as YYYYMMDD, 0 for none (a type without usage that month): NULLs
    # would not compare.
    rollup_values, daily_values = {}, {}
    for n, (part, tokens, events, last) in enumerate(_MONTHLY_PARTS):
        rollup_values |= {
            f"v_{3 * n}": F(tokens),
            f"v_{3 * n + 1}": F(events),
            f"v_{3 * n + 2}": Coalesce(_day_number(last), 0),
        }
        rows = Q() if part == "total" else Q(token_type=part)
        daily_values |= {
            f"v_{3 * n}": Coalesce(Sum("tokens", filter=rows), 0),
            f"v_{3 * n + 1}": Coalesce(Sum("events", filter=rows), 0),
            f"v_{3 * n + 2}": Coalesce(Max(_day_number("day"), filter=rows), 0),
        }
    rollup = _scoped(MonthlyUsage.objects.all(), organization).values(
        k_org=F("organization_id"),
        k_user=F("user_id"),
        k_month=F("month"),
        **rollup_values,
    )
    daily = (
        _scoped(Daily.objects.all(), organization)
        .order_by()
        .values(
            k_org=F("organization_id"),
            k_user=F("user_id"),
            # A date on every backend (date_trunc gives a timestamp on PostgreSQL).
            k_month=Cast(TruncMonth("day"), output_field=DateField()),
        )
        .annotate(**daily_values)
    )
    rows = _differences(rollup, daily, keys, values, right_needs_left=True)
    emails = _emails(r[1] for r in rows)
    names = dict(
        Organization.objects.filter(pk__in={r[0] for r in rows}).values_list(
            "id", "name"
        )
    )
    lines = []
    size = len(values)
    for row in rows:
        org_id, user_id, month = row[:3]
        ours, theirs = row[3 : 3 + size], row[3 + size : 3 + 2 * size]
        has_rollup = row[3 + 2 * size]
        who = (
            f"{emails.get(user_id, user_id)}, {names.get(org_id)} (id {org_id}), "
            f"{_month(month)}"
        )
        # The parts that differ (all of the daily usage's when the row is missing).
        parts = [
            (part, ours[3 * n : 3 * n + 3], theirs[3 * n : 3 * n + 3])
            for n, (part, *_columns) in enumerate(_MONTHLY_PARTS)
            if ours[3 * n : 3 * n + 3] != theirs[3 * n : 3 * n + 3]
        ]
        daily_says = "; ".join(_monthly_part(p, *d) for p, _m, d in parts)
        if not has_rollup:
            detail = f"no monthly usage row but the daily usage says {daily_says}."
        else:
            rollup_says = "; ".join(_monthly_part(p, *m) for p, m, _d in parts)
            detail = (
                f"monthly usage {rollup_says}, but the daily usage says {daily_says}."
            )
        lines.append(_line("5c", f"{who}: {detail}"))
    return _listed("5c", lines)


# --- 6. unique ids -----------------------------------------------------------------
