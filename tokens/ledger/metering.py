"""The metering invariants: 3 (used = sum of usage events), 4 (held = sum of open
holds), 6 (unique ids) and 7 (no negative counters)."""

import datetime as dt

from django.db.models import (
    Count,
    DateField,
    F,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import (
    Cast,
    TruncMonth,
)

from accounts.models import Organization
from tokens.ledger.common import (
    MAX_LISTED,
    _differences,
    _emails,
    _line,
    _listed,
    _month,
    _n,
    _org_names,
    _scoped,
)
from tokens.models import (
    Hold,
    UsageCounter,
    UsageEvent,
)

_COUNTER_KEYS = ["k_org", "k_user", "k_type", "k_period"]


def _counters(organization: Organization | None, column: str) -> QuerySet:
    return _scoped(UsageCounter.objects.all(), organization).values(
        k_org=F("organization_id"),
        k_user=F("user_id"),
        k_type=F("token_type"),
        k_period=F("period"),
        v_0=F(column),
    )


def _check_used(organization: Organization | None) -> list[str]:
    # The UTC month of each event, as a date (date_trunc on PostgreSQL,
    # django_datetime_trunc on SQLite): the same period the counter is keyed by.
    month = Cast(TruncMonth("occurred_at", tzinfo=dt.UTC), output_field=DateField())
    events = (
        _scoped(UsageEvent.objects.all(), organization)
        .order_by()
        .values(
            k_org=F("organization_id"),
            k_user=F("user_id"),
            k_type=F("token_type"),
            k_period=month,
        )
        .annotate(v_0=Sum("tokens"))
    )
    rows = _differences(
        _counters(organization, "used"),
        events,
        _COUNTER_KEYS,
        ["v_0"],
        right_needs_left=True,
    )
    emails, names = _emails(r[1] for r in rows), _org_names(r[0] for r in rows)
    lines = []
    for row in rows:
        org_id, user_id, token_type, period, used, total, has_counter = row[:7]
        who = (
            f"{emails.get(user_id, user_id)}, {token_type}, {_month(period)}, "
            f"{names.get(org_id)} (id {org_id})"
        )
        if not has_counter:
            detail = f"usage events add up to {_n(total)} but there is no counter."
        else:
            detail = f"counter used {_n(used)} but the events add up to {_n(total)}."
        lines.append(_line(3, f"{who}: {detail}"))
    return _listed(3, lines)


def _check_held(organization: Organization | None) -> list[str]:
    holds = (
        _scoped(Hold.objects.filter(status=Hold.Status.OPEN), organization)
        .order_by()
        .values(
            k_org=F("organization_id"),
            k_user=F("user_id"),
            k_type=F("token_type"),
            k_period=F("period"),
        )
        .annotate(v_0=Sum("tokens"))
    )
    rows = _differences(
        _counters(organization, "held"),
        holds,
        _COUNTER_KEYS,
        ["v_0"],
        right_needs_left=True,
    )
    emails, names = _emails(r[1] for r in rows), _org_names(r[0] for r in rows)
    lines = []
    for row in rows:
        org_id, user_id, token_type, period, held, total, has_counter = row[:7]
        who = (
            f"{emails.get(user_id, user_id)}, {token_type}, {_month(period)}, "
            f"{names.get(org_id)} (id {org_id})"
        )
        if not has_counter:
            detail = f"open holds add up to {_n(total)} but there is no counter."
        else:
            detail = (
                f"counter held {_n(held)} but the open holds add up to {_n(total)}."
            )
        lines.append(_line(4, f"{who}: {detail}"))
    return _listed(4, lines)


# --- 5. daily rollup = events ------------------------------------------------------


def _check_unique(organization: Organization | None) -> list[str]:
    lines = [
        _line(
            6,
            f"event_id {row['event_id']!r} is recorded {row['n']} times in the scope "
            f"of organization {row['organization_id']} "
            f"({'its own keys' if row['org_key'] else 'the platform gateway'}).",
        )
        for row in _scoped(UsageEvent.objects.all(), organization)
        .order_by()
        .values("organization_id", "org_key", "event_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by("organization_id", "org_key", "event_id")[: MAX_LISTED + 1]
    ]
    lines += [
        _line(
            6,
            f"request_id {row['request_id']!r} of service key {row['service_key_id']} "
            f"opened {row['n']} holds.",
        )
        for row in _scoped(Hold.objects.all(), organization)
        .order_by()
        .values("service_key_id", "request_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by("service_key_id", "request_id")[: MAX_LISTED + 1]
    ]
    return _listed(6, lines)


# --- 7. counters not negative ------------------------------------------------------


def _check_non_negative(organization: Organization | None) -> list[str]:
    rows = list(
        _scoped(UsageCounter.objects.all(), organization)
        .filter(Q(used__lt=0) | Q(held__lt=0))
        .order_by("user_id", "token_type", "period")
        .values("user__email", "token_type", "period", "used", "held")[: MAX_LISTED + 1]
    )
    return _listed(
        7,
        [
            _line(
                7,
                f"{r['user__email']}, {r['token_type']}, {_month(r['period'])}: "
                f"used {_n(r['used'])}, held {_n(r['held'])} (must be ≥ 0).",
            )
            for r in rows
        ],
    )


# --- 9. allocation changes audited -------------------------------------------------
