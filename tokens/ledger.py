"""The ledger check: the invariants of docs/architecture.md (Invariants and
check_ledger), verified against the database.

``check_ledger()`` returns one human-readable line per violation (an empty list means
the ledger is consistent); ``manage.py check_ledger`` prints them.

Every check is set-based: the database groups and compares (GROUP BY, UNION ALL) and
returns only the rows that break an invariant, so the cost is a few scans of the
usage table whatever its size, never a Python loop over events. Two tables are
compared with ``_differences``: both sides become grouped subqueries built with the
ORM (so the backend-specific SQL, such as the UTC month of ``occurred_at``, is
Django's), joined by a UNION ALL + GROUP BY that works on SQLite and PostgreSQL alike.
At most ``MAX_LISTED`` violations are listed per check, then a line says more exist.

What each invariant means here:

1. For every organization and type, the current month's allocated (sum of limits)
   ≤ the pool (sum of the purchases active this month).
2. Every ``Allocation.limit`` = the sum of its ``AllocationChange.delta``s made in
   its organization, and the changes of a user in any other organization add up to
   0 (a user who left had their tokens returned; changes without an allocation
   adding up to anything else are a violation).
3. Every ``UsageCounter.used`` = the sum of ``UsageEvent.tokens`` of that
   organization, user and type in that UTC month (a counter is per organization:
   usage is charged to the organization that authorized it, so a user who moved has
   one in each); a counter without events has used 0; events without a counter are
   a violation.
4. Every ``UsageCounter.held`` = the sum of the tokens of that organization's holds
   of that user, type and period whose status is ``open``. A hold past
   ``expires_at`` but still ``open`` is pending expiry (lazily by an authorization
   it stands in the way of, or by ``expire_holds``), not a violation: its tokens
   are still counted as held, which is what the counter says until it is expired.
5. ``DailyUsage`` tokens and events = the sums of ``UsageEvent`` per organization
   (the one the event is recorded under), user, model, type and UTC day, in both
   directions (a rollup without events, events without a rollup).
5b. ``OrgDailyUsage`` tokens and events = the sums of ``DailyUsage`` per organization,
   model, type and day, in both directions.
5c. ``MonthlyUsage`` (a row per organization, user and month) = ``DailyUsage``
   grouped per organization, user and month: each type's tokens and events = the
   sums of that type's rows and its last day = their latest day (none without
   rows of that type), the totals = the sums of all rows and ``last_day`` = their
   latest day, in both directions. (5b and 5c compare with ``DailyUsage``, a few
   times smaller than the events; with 5 they tie the coarser rollups to the
   events.)
6. An ``event_id`` appears once in its scope (organization, and whether a key bound
   to it or the platform gateway reported it; the unique constraint guarantees it,
   checked anyway) and a (service key, request_id) opens at most one hold.
7. Not checkable after the fact (usage without a hold may legitimately pass the
   limit); only its precondition is checked: used ≥ 0 and held ≥ 0.
8. Append-only: database triggers (migration tokens/0004_append_only_triggers;
   docs/operations.md, Append-only) refuse changes to audit and usage events, so
   there is nothing to check here.
9. Every ``AllocationChange`` has its audit event, recorded for the same organization.
10. No limit is negative. A paid, unbanned user of an active organization whose limit
    is below ``MIN_USER_TOKENS`` is a violation when the latest change of that limit
    was made on the platform's own authority: activation, distribution or
    reclamation, which must respect the minimum. Not violations: an explicit admin
    action (manual, bulk, request: set lower on purpose, audited); the paid-status
    rules (docs/product.md, Tokens: pool, limits and minimum; deactivation sets 1,000;
    a reactivation the pool cannot cover grants what is left and its audit event says
    so); auto-increase (it only raises a limit an admin set); and a limit never set (no
    change yet: not allocated).
"""

import datetime as dt
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    DateField,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
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

from accounts.models import Organization, User
from asksage_admin.lib.periods import label, last_day, period_of
from tokens.models import (
    AIModel,
    Allocation,
    AllocationChange,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    Purchase,
    TokenType,
    UsageCounter,
    UsageEvent,
)
from tokens.models import DailyUsage as Daily

MAX_LISTED = 50
TYPES = [TokenType.INFERENCE.value, TokenType.EMBEDDING.value]
# The sources that set a limit on the platform's own authority (invariant 10).
AUTOMATIC_SOURCES = [
    AllocationChange.Source.ACTIVATION.value,
    AllocationChange.Source.DISTRIBUTION.value,
    AllocationChange.Source.RECLAMATION.value,
]
NAMES = {
    1: "allocated ≤ pool",
    2: "limit = sum of changes",
    3: "used = sum of usage events",
    4: "held = sum of open holds",
    5: "daily rollup = usage events",
    "5b": "organization daily rollup = daily rollup",
    "5c": "monthly rollup = daily rollup",
    6: "unique ids",
    7: "no negative counters",
    9: "allocation changes audited",
    10: "limits and platform minimum",
}


def _line(invariant: int | str, detail: str) -> str:
    return f"Invariant {invariant} ({NAMES[invariant]}): {detail}"


def _n(value) -> str:
    return f"{int(value or 0):,}"


def _month(value) -> str:
    """'YYYY-MM' of a period, whether the driver returned a date, datetime or text."""
    if isinstance(value, dt.date):
        return label(value)
    return str(value)[:7]


def _day(value) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def _scoped(queryset: QuerySet, organization: Organization | None) -> QuerySet:
    if organization is None:
        return queryset
    return queryset.filter(organization=organization)


def _emails(user_ids: Iterable[int]) -> dict[int, str]:
    return dict(User.objects.filter(pk__in=set(user_ids)).values_list("id", "email"))


def _org_names(org_ids: Iterable[int]) -> dict[int, str]:
    return dict(
        Organization.objects.filter(pk__in=set(org_ids)).values_list("id", "name")
    )


def _listed(invariant: int | str, lines: list[str]) -> list[str]:
    """Cap one check's lines at MAX_LISTED (the queries fetch one more to know)."""
    if len(lines) > MAX_LISTED:
        return [
            *lines[:MAX_LISTED],
            _line(invariant, f"more violations not listed (first {MAX_LISTED} shown)."),
        ]
    return lines


def _differences(
    left: QuerySet,
    right: QuerySet,
    keys: Sequence[str],
    values: Sequence[str],
    *,
    right_needs_left: bool = False,
) -> list[tuple]:
    """Keys whose values differ between two querysets, computed in the database.

    Both querysets select the columns ``keys`` + ``values`` (grouped or not). A key
    missing on one side counts as zeros there; with ``right_needs_left`` a key present
    on the right but missing on the left is a difference even when the values agree.
    Returns up to MAX_LISTED + 1 rows: (*keys, *left values, *right values,
    left present, right present), ordered by the keys.
    """
    qn = connection.ops.quote_name
    left_sql, left_params = left.order_by().query.sql_with_params()
    right_sql, right_params = right.order_by().query.sql_with_params()

    def side(sql: str, is_left: bool) -> str:
        cols = [f"s.{qn(k)} AS {qn(k)}" for k in keys]
        for i, v in enumerate(values):
            cols.append(f"s.{qn(v)} AS l_{i}" if is_left else f"0 AS l_{i}")
            cols.append(f"0 AS r_{i}" if is_left else f"s.{qn(v)} AS r_{i}")
        cols.append(f"{int(is_left)} AS l_n")
        cols.append(f"{int(not is_left)} AS r_n")
        return f"SELECT {', '.join(cols)} FROM ({sql}) s"  # noqa: S608

    sums_l = [f"SUM(l_{i})" for i in range(len(values))]
    sums_r = [f"SUM(r_{i})" for i in range(len(values))]
    differs = [f"{a} <> {b}" for a, b in zip(sums_l, sums_r, strict=True)]
    if right_needs_left:
        differs.append("(SUM(r_n) > 0 AND SUM(l_n) = 0)")
    outer_keys = ", ".join(qn(k) for k in keys)
    # Only quoted identifiers and Django-compiled subqueries are formatted in; all
    # values travel as parameters.
    sql = (
        f"SELECT {outer_keys}, {', '.join(sums_l + sums_r)}, "  # noqa: S608
        f"SUM(l_n), SUM(r_n) FROM ({side(left_sql, True)} UNION ALL "
        f"{side(right_sql, False)}) u GROUP BY {outer_keys} "
        f"HAVING {' OR '.join(differs)} ORDER BY {outer_keys} "
        f"LIMIT {MAX_LISTED + 1}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, (*left_params, *right_params))
        return [
            (*row[: len(keys)], *(int(v or 0) for v in row[len(keys) :]))
            for row in cursor.fetchall()
        ]


# --- 1. allocated ≤ pool ---------------------------------------------------------


def _check_pools(organization: Organization | None) -> list[str]:
    period = period_of()
    purchases = _scoped(
        Purchase.objects.filter(starts_on__lte=last_day(period)).filter(
            Q(expires_on__isnull=True) | Q(expires_on__gte=period)
        ),
        organization,
    )
    pools = {
        row["organization_id"]: row
        for row in purchases.order_by()
        .values("organization_id")
        .annotate(inference=Sum("inference_tokens"), embedding=Sum("embedding_tokens"))
    }
    allocated = (
        _scoped(Allocation.objects.all(), organization)
        .order_by()
        .values("organization_id", "token_type")
        .annotate(total=Sum("limit"))
        .filter(total__gt=0)
        .order_by("organization_id", "token_type")
    )
    over = [
        (row, (pools.get(row["organization_id"]) or {}).get(row["token_type"]) or 0)
        for row in allocated
    ]
    over = [(row, pool) for row, pool in over if row["total"] > pool]
    names = dict(
        Organization.objects.filter(
            pk__in={row["organization_id"] for row, _pool in over}
        ).values_list("id", "name")
    )
    return _listed(
        1,
        [
            _line(
                1,
                f"{names.get(row['organization_id'])} (id {row['organization_id']}), "
                f"{row['token_type']} in {label(period)}: allocated {_n(row['total'])} "
                f"exceeds the pool of {_n(pool)}.",
            )
            for row, pool in over
        ],
    )


# --- 2. limit = sum of changes -----------------------------------------------------


def _check_limits_match_changes(organization: Organization | None) -> list[str]:
    # Per organization: a user who moved has changes in the organization they
    # left adding up to 0 (removal returned their tokens) and their allocation
    # row in the one they are in, so only a non-zero sum needs the allocation.
    keys = ["k_org", "k_user", "k_type"]
    allocations = _scoped(Allocation.objects.all(), organization).values(
        k_org=F("organization_id"),
        k_user=F("user_id"),
        k_type=F("token_type"),
        v_0=F("limit"),
    )
    changes = (
        _scoped(AllocationChange.objects.all(), organization)
        .order_by()
        .values(k_org=F("organization_id"), k_user=F("user_id"), k_type=F("token_type"))
        .annotate(v_0=Sum("delta"))
    )
    rows = _differences(allocations, changes, keys, ["v_0"])
    emails = _emails(r[1] for r in rows)
    lines = []
    for _org, user_id, token_type, limit, total, has_row, _has_changes in rows:
        who = f"{emails.get(user_id, user_id)}, {token_type}"
        if not has_row:
            detail = f"changes add up to {_n(total)} but there is no allocation."
        else:
            detail = f"limit {_n(limit)} but its changes add up to {_n(total)}."
        lines.append(_line(2, f"{who}: {detail}"))
    return _listed(2, lines)


# --- 3 and 4. counters = events, holds ---------------------------------------------

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
    *((t, f"{t}_tokens", f"{t}_events", f"{t}_last_day") for t in TYPES),
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


def _check_audited(organization: Organization | None) -> list[str]:
    rows = list(
        _scoped(AllocationChange.objects.all(), organization)
        .filter(
            Q(audit_event__isnull=True)
            | Q(audit_event__organization__isnull=True)
            | ~Q(audit_event__organization=F("organization"))
        )
        .order_by("id")
        .values(
            "id",
            "user__email",
            "token_type",
            "organization_id",
            "audit_event_id",
            "audit_event__organization_id",
        )[: MAX_LISTED + 1]
    )
    lines = []
    for r in rows:
        who = f"allocation change {r['id']} ({r['user__email']}, {r['token_type']})"
        if r["audit_event_id"] is None:
            detail = "has no audit event."
        else:
            detail = (
                f"is linked to audit event {r['audit_event_id']} of organization "
                f"{r['audit_event__organization_id']}, not {r['organization_id']}."
            )
        lines.append(_line(9, f"{who} {detail}"))
    return _listed(9, lines)


# --- 10. limits and the platform minimum -------------------------------------------


def _check_minimum(organization: Organization | None) -> list[str]:
    minimum = settings.MIN_USER_TOKENS
    negative = list(
        _scoped(Allocation.objects.filter(limit__lt=0), organization)
        .order_by("user_id", "token_type")
        .values("user__email", "token_type", "limit")[: MAX_LISTED + 1]
    )
    lines = [
        _line(
            10,
            f"{r['user__email']}, {r['token_type']}: limit {_n(r['limit'])} is "
            "negative.",
        )
        for r in negative
    ]
    latest_source = Subquery(
        AllocationChange.objects.filter(
            user_id=OuterRef("user_id"), token_type=OuterRef("token_type")
        )
        .order_by("-time", "-id")
        .values("source")[:1]
    )
    low = (
        _scoped(Allocation.objects.all(), organization)
        .filter(
            limit__gte=0,
            limit__lt=minimum,
            user__is_paid=True,
            user__is_banned=False,
            organization__status=Organization.Status.ACTIVE,
        )
        .annotate(latest_source=latest_source)
        .filter(latest_source__in=AUTOMATIC_SOURCES)
        .order_by("user_id", "token_type")
        .values("user__email", "token_type", "limit", "latest_source")[: MAX_LISTED + 1]
    )
    lines += [
        _line(
            10,
            f"{r['user__email']}, {r['token_type']}: limit {_n(r['limit'])} is "
            f"below the platform minimum of {_n(minimum)} for a paid, active user, "
            f"set by {r['latest_source']} (not by an admin on purpose).",
        )
        for r in low
    ]
    return _listed(10, lines)


CHECKS = [
    _check_pools,
    _check_limits_match_changes,
    _check_used,
    _check_held,
    _check_daily,
    _check_org_daily,
    _check_monthly,
    _check_unique,
    _check_non_negative,
    _check_audited,
    _check_minimum,
]


def check_ledger(*, organization: Organization | None = None) -> list[str]:
    """One line per violation of the invariants (all organizations, or one); [] = OK."""
    violations: list[str] = []
    for check in CHECKS:
        violations += check(organization)
    return violations


def ledger_scope(*, organization: Organization | None = None) -> dict[str, int]:
    """What a check covered: organizations, their users and usage events."""
    orgs = Organization.objects.all()
    users = User.objects.filter(organization__isnull=False)
    events = UsageEvent.objects.all()
    if organization is not None:
        orgs = orgs.filter(pk=organization.pk)
        users = users.filter(organization=organization)
        events = events.filter(organization=organization)
    return {
        "organizations": orgs.count(),
        "users": users.count(),
        "events": events.count(),
    }
