"""Every read of Analytics → Token Statistics (docs/product.md, Token Statistics),
scoped to one organization.

The page reads only rollups and small tables, grouped in the database: ``Purchase``,
``Allocation``, ``UsageCounter`` (through ``tokens.selectors``), ``TokenRequest`` and
the usage rollups, the coarsest that answers each figure:

- ``OrgDailyUsage`` (per organization, model, type and day: a few rows a day) for the
  organization-wide figures: used, the daily chart, the monthly trend, usage by model.
- Active and top users need the user: ``MonthlyUsage`` (one row per user and month,
  each type's figures in its own columns) for the whole months of the range,
  ``DailyUsage`` for the days before and after them (a range need not start or end on
  a month's edge), combined with UNION ALL and then grouped, so the figures are exact
  for any range (``_user_source``). A range of whole months (the default, this month)
  reads ``MonthlyUsage`` alone; a single one of every type reads its users in the
  order of their tokens from an index: its active users are counted from the index,
  its top users are the first entries.

Each function is one query (``org_summary`` three) whatever the number of days, months,
users or events, so the page's query count is constant. The user export reads
``DailyUsage``; only the raw events export reads ``UsageEvent``, lazily, for streaming.

Usage keeps the organization it was recorded under (a member who left still counts
here), so every usage query filters the rollup's ``organization``, never the user's
current organization.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import (
    Count,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncMonth

from accounts.models import Organization, User
from asksage_admin.lib.periods import last_day, next_period, period_of
from tokens.models import (
    TOKEN_TYPES,
    TYPE_FIELDS,
    Allocation,
    DailyUsage,
    MonthlyUsage,
    OrgDailyUsage,
    Purchase,
    TokenRequest,
    TokenType,
)
from tokens.selectors import metering as token_metering
from tokens.selectors.pool import org_summary

TYPES: tuple[str, ...] = TOKEN_TYPES
# "At most 2 years": 731 days covers any two consecutive years, leap day included.
MAX_RANGE_DAYS = 731
TREND_MONTHS = 12
TOP_USERS = 10
_POOL_FIELD = TYPE_FIELDS


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The periods (first days of months) from ``first``'s month to ``last``'s."""
    months, month = [], period_of(first)
    while month <= last:
        months.append(month)
        month = next_period(month)
    return months


def _months_back(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - count
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class StatsPeriod:
    """Whole UTC days ``start`` to ``end`` (both included) and the token types shown."""

    start: dt.date
    end: dt.date
    token_types: tuple[str, ...] = TYPES

    @property
    def token_type(self) -> str:
        """``all`` or the one type shown (the query-string value)."""
        return "all" if len(self.token_types) > 1 else self.token_types[0]

    @property
    def months(self) -> list[dt.date]:
        """The months the range touches: their pools make up "purchased"."""
        return months_between(self.start, self.end)

    @property
    def trend_months(self) -> list[dt.date]:
        """The 12 months ending with the range's last month, reaching further back
        when the range itself is longer (so every month of it has a row)."""
        last = period_of(self.end)
        first = min(period_of(self.start), _months_back(last, TREND_MONTHS - 1))
        return months_between(first, last)

    @property
    def days(self) -> list[dt.date]:
        count = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=n) for n in range(count)]

    @property
    def is_whole_month(self) -> bool:
        return self.start.day == 1 and self.end == last_day(self.start)

    def as_filters(self) -> dict[str, str]:
        """The choice as plain values, for the audit trail and file names."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "token_type": self.token_type,
        }


def _daily(
    org: Organization, period: StatsPeriod, *, months=None, model=DailyUsage
) -> QuerySet:
    """The org's rows of a daily rollup (``DailyUsage`` or ``OrgDailyUsage``) in the
    range (or in ``months``) for the types shown."""
    if months:
        first, last = months[0], last_day(months[-1])
    else:
        first, last = period.start, period.end
    return model.objects.filter(
        organization=org,
        day__gte=first,
        day__lte=last,
        token_type__in=period.token_types,
    ).order_by()


def _org_daily(org: Organization, period: StatsPeriod, *, months=None) -> QuerySet:
    """The org's organization-level daily rows in the range (or in ``months``)."""
    return _daily(org, period, months=months, model=OrgDailyUsage)


@dataclass(frozen=True)
class _Split:
    """A range of days as the whole months inside it and the days before and after
    them; each part is (first, last), empty when last < first."""

    before: tuple[dt.date, dt.date]
    months: tuple[dt.date, dt.date]
    after: tuple[dt.date, dt.date]


def _split(start: dt.date, end: dt.date) -> _Split:
    one_day = dt.timedelta(days=1)
    first = start if start.day == 1 else next_period(start)  # first whole month
    stop = next_period(end) if end == last_day(end) else period_of(end)
    if first >= stop:  # no whole month: every day is read day by day
        return _Split((start, end), (first, first - one_day), (end + one_day, end))
    return _Split((start, first - one_day), (first, stop - one_day), (stop, end))


@dataclass(frozen=True)
class _UserSource:
    """SQL (and its parameters) of a row source of the org's usage with the user in
    a range, for the types shown (``_user_source``). ``month``: that month when the
    range is one whole month (then the source has at most one row per user;
    otherwise the caller groups by user or counts distinct)."""

    sql: str
    params: list
    month: dt.date | None

    @property
    def per_user(self) -> bool:
        return self.month is not None


def _type_columns(period: StatsPeriod) -> tuple[str, str, str]:
    """``MonthlyUsage``'s tokens, events and last day of the types shown: the totals
    for every type, a type's own columns for one."""
    if len(period.token_types) == len(TYPES):
        return "tokens", "events", "last_day"
    shown = period.token_types[0]
    return f"{shown}_tokens", f"{shown}_events", f"{shown}_last_day"


def _user_source(org: Organization, period: StatsPeriod, columns: str) -> _UserSource:
    """The org's usage with the user in the range: ``MonthlyUsage`` (one row per
    user and month) for the whole months, ``DailyUsage`` for the days before and
    after them (a range need not start or end on a month's edge), in one UNION ALL
    when both are needed; only ``MonthlyUsage`` for a range of whole months (the
    common case: the page's default is this month).

    ``columns``: ``"top"`` selects user_id, tokens, events, last_day of the types
    shown (a type's own columns of ``MonthlyUsage``, the totals for every type);
    ``"active"`` selects user_id and each type's events (``inference_events``,
    ``embedding_events``). Each part selects only rows with usage of the types
    shown. The daily rows are grouped by user, their types pivoted into the same
    columns as the monthly rows', as bigint (a numeric sum, what SUM of a bigint
    gives on PostgreSQL, would make the whole union numeric, slow to add)."""
    qn = connection.ops.quote_name
    day = connection.ops.adapt_datefield_value
    split = _split(period.start, period.end)
    some_types = len(period.token_types) < len(TYPES)
    tokens, events, last = _type_columns(period)
    parts: list[str] = []
    params: list = []
    # Only quoted identifiers and fixed SQL are formatted in; values are parameters.
    first, final = split.months
    month = None
    if first <= final:
        if period_of(final) == first:
            month = first
            where = "m.organization_id = %s AND m.month = %s"
            params += [org.pk, day(first)]
        else:
            where = "m.organization_id = %s AND m.month >= %s AND m.month <= %s"
            params += [org.pk, day(first), day(final)]
        if some_types:
            where += f" AND m.{qn(events)} > 0"
        if columns == "top":
            selected = (
                f"m.{qn(tokens)} AS tokens, m.{qn(events)} AS events, "
                f"m.{qn(last)} AS last_day"
            )
        else:
            selected = ", ".join(f"m.{qn(f'{t}_events')} AS {t}_events" for t in TYPES)
        parts.append(
            f"SELECT m.user_id AS user_id, {selected} "  # noqa: S608
            f"FROM {qn(MonthlyUsage._meta.db_table)} m WHERE {where}"
        )
    for first, final in (split.before, split.after):
        if final < first:
            continue
        where = "d.organization_id = %s AND d.day >= %s AND d.day <= %s"
        if columns == "top":
            selected = (
                "CAST(SUM(d.tokens) AS bigint) AS tokens, "
                "CAST(SUM(d.events) AS bigint) AS events, MAX(d.day) AS last_day"
            )
            selected_params = []
        else:
            selected = ", ".join(
                "CAST(SUM(CASE WHEN d.token_type = %s THEN d.events ELSE 0 END) "
                f"AS bigint) AS {t}_events"
                for t in TYPES
            )
            selected_params = list(TYPES)
        params += [*selected_params, org.pk, day(first), day(final)]
        if some_types:
            where += " AND d.token_type = %s"
            params.append(period.token_types[0])
        parts.append(
            f"SELECT d.user_id AS user_id, {selected} "  # noqa: S608
            f"FROM {qn(DailyUsage._meta.db_table)} d WHERE {where} "
            "GROUP BY d.user_id"
        )
    return _UserSource(
        " UNION ALL ".join(parts), params, month if len(parts) == 1 else None
    )


def _fetch(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _by_type(rows, value: str = "tokens") -> dict[str, int]:
    totals = {t: 0 for t in TYPES}
    for row in rows:
        totals[row["token_type"]] += row[value] or 0
    return totals


def _share(part: int, whole: int) -> Decimal:
    """``part`` as a percentage of ``whole``, one decimal (0 when nothing was used)."""
    if not whole:
        return Decimal("0.0")
    return (Decimal(part) * 100 / Decimal(whole)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


# --- KPI cards ----------------------------------------------------------------------


def purchased(org: Organization, months: list[dt.date]) -> dict[str, int]:
    """The sum of the org's monthly pools over ``months``, per type, in one query:
    the same rule as ``tokens.selectors.purchases_active_in`` applied month by month
    to the few purchases that overlap the months."""
    first, last = months[0], last_day(months[-1])
    rows = (
        Purchase.objects.filter(organization=org, starts_on__lte=last)
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=first))
        .values("starts_on", "expires_on", *_POOL_FIELD.values())
    )
    totals = {t: 0 for t in TYPES}
    for row in rows:
        for month in months:
            active = row["starts_on"] <= last_day(month) and (
                row["expires_on"] is None or row["expires_on"] >= month
            )
            if active:
                for token_type, column in _POOL_FIELD.items():
                    totals[token_type] += row[column]
    return totals


@dataclass(frozen=True)
class Figure:
    """One KPI: a value per token type and the total of the types shown (given
    when it is not the sum, e.g. people active in both types count once)."""

    by_type: dict[str, int]
    token_types: tuple[str, ...]
    overall: int | None = None

    @property
    def total(self) -> int:
        if self.overall is not None:
            return self.overall
        return sum(self.by_type[t] for t in self.token_types)

    @property
    def parts(self) -> list[tuple[str, int]]:
        return [(TokenType(t).label, self.by_type[t]) for t in self.token_types]


@dataclass(frozen=True)
class Kpis:
    purchased: Figure
    allocated: Figure
    used: Figure
    unallocated: Figure
    active_users: Figure
    pending_requests: Figure


def _active_users(org: Organization, period: StatsPeriod) -> tuple[dict, int]:
    """The people with usage in the range per type (0 for a type not shown) and of
    any type shown (once each), in one query: a single whole month counts its
    ``MonthlyUsage`` rows (one per user), from the index alone on PostgreSQL;
    otherwise users are counted distinct over ``_user_source``."""
    source = _user_source(org, period, "active")
    count = "COUNT(*)" if source.per_user else "COUNT(DISTINCT r.user_id)"
    # One column per type, then everyone, in the same scan.
    counts = [f"{count} FILTER (WHERE r.{t}_events > 0)" for t in period.token_types]
    # Only fixed SQL and the source's SQL are formatted in; values are parameters.
    [(*per_type, overall)] = _fetch(
        f"SELECT {', '.join([*counts, count])} FROM ({source.sql}) r",  # noqa: S608
        source.params,
    )
    active = dict.fromkeys(TYPES, 0) | dict(
        zip(period.token_types, per_type, strict=True)
    )
    return active, overall


def kpis(org: Organization, period: StatsPeriod) -> Kpis:
    """Purchased (the pools of the range's months), allocated and unallocated (now),
    used and active users (in the range), requests pending (now); per type too."""
    types = period.token_types
    summary = org_summary(org)
    used = _by_type(
        _org_daily(org, period).values("token_type").annotate(tokens=Sum("tokens"))
    )
    active, active_overall = _active_users(org, period)
    pending = _by_type(
        TokenRequest.objects.filter(
            organization=org,
            status=TokenRequest.Status.PENDING,
            token_type__in=types,
        )
        .values("token_type")
        .annotate(requests=Count("id"))
        .order_by(),
        "requests",
    )
    return Kpis(
        purchased=Figure(purchased(org, period.months), types),
        allocated=Figure({t: summary[t].allocated for t in TYPES}, types),
        used=Figure(used, types),
        unallocated=Figure({t: summary[t].unallocated for t in TYPES}, types),
        active_users=Figure(active, types, overall=active_overall),
        pending_requests=Figure(pending, types),
    )


# --- charts and tables --------------------------------------------------------------


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    by_type: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


def daily_usage(org: Organization, period: StatsPeriod) -> list[DayRow]:
    """One row per day of the range (zeros included), tokens per type shown."""
    cells = {
        (row["day"], row["token_type"]): row["tokens"]
        for row in _org_daily(org, period)
        .values("day", "token_type")
        .annotate(tokens=Sum("tokens"))
    }
    return [
        DayRow(day, {t: cells.get((day, t), 0) for t in period.token_types})
        for day in period.days
    ]


@dataclass(frozen=True)
class MonthRow:
    month: dt.date
    inference: int
    embedding: int
    events: int

    @property
    def total(self) -> int:
        return self.inference + self.embedding

    def tokens(self, token_type: str) -> int:
        return getattr(self, token_type)


def monthly_usage(org: Organization, period: StatsPeriod) -> list[MonthRow]:
    """Tokens per type and events per month over ``period.trend_months``, oldest
    first, zeros included."""
    months = period.trend_months
    cells: dict[dt.date, dict[str, int]] = {}
    for row in (
        _org_daily(org, period, months=months)
        .annotate(month=TruncMonth("day"))
        .values("month", "token_type")
        .annotate(tokens=Sum("tokens"), events=Sum("events"))
    ):
        month = row["month"]
        if isinstance(month, dt.datetime):  # some backends return a datetime
            month = month.date()
        cell = cells.setdefault(month, {"events": 0})
        cell[row["token_type"]] = row["tokens"] or 0
        cell["events"] += row["events"] or 0
    return [
        MonthRow(
            month=month,
            inference=cells.get(month, {}).get(TokenType.INFERENCE, 0),
            embedding=cells.get(month, {}).get(TokenType.EMBEDDING, 0),
            events=cells.get(month, {}).get("events", 0),
        )
        for month in months
    ]


@dataclass(frozen=True)
class ModelRow:
    key: str
    name: str
    inference: int
    embedding: int
    events: int
    share: Decimal

    @property
    def tokens(self) -> int:
        return self.inference + self.embedding


def usage_by_model(org: Organization, period: StatsPeriod) -> list[ModelRow]:
    """Tokens per type, share of the range's total and events for every model used
    in the range, biggest first."""
    models: dict[int, dict] = {}
    for row in (
        _org_daily(org, period)
        .values("model_id", "model__key", "model__name", "token_type")
        .annotate(tokens=Sum("tokens"), events=Sum("events"))
    ):
        model = models.setdefault(
            row["model_id"],
            {
                "key": row["model__key"],
                "name": row["model__name"],
                "events": 0,
                **{t: 0 for t in TYPES},
            },
        )
        model[row["token_type"]] += row["tokens"] or 0
        model["events"] += row["events"] or 0
    total = sum(m[t] for m in models.values() for t in TYPES)
    rows = [
        ModelRow(
            key=m["key"],
            name=m["name"],
            inference=m[TokenType.INFERENCE],
            embedding=m[TokenType.EMBEDDING],
            events=m["events"],
            share=_share(m[TokenType.INFERENCE] + m[TokenType.EMBEDDING], total),
        )
        for m in models.values()
    ]
    rows.sort(key=lambda r: (-r.tokens, r.name, r.key))
    return rows


@dataclass(frozen=True)
class TopUser:
    user_id: int
    email: str
    name: str
    tokens: int
    events: int
    share: Decimal
    last_active: dt.date
    is_member: bool


def top_users(
    org: Organization, period: StatsPeriod, *, total: int, limit: int = TOP_USERS
) -> list[TopUser]:
    """The ``limit`` biggest users in the range (``total`` = the range's usage, for
    the share), by tokens, then email. ``last_active`` is their last day with usage
    in the range (of the types shown); ``is_member`` is false for someone who has
    since left the organization. One query: users are ranked by tokens, and only
    those ranked within the first ``limit`` (ties included) are joined for the
    email (the tie-breaker) and the names, not every user with usage (10,000 in a
    big organization)."""
    source = _user_source(org, period, "top")
    qn = connection.ops.quote_name
    users = qn(User._meta.db_table)
    # Only quoted identifiers, fixed SQL and the source's SQL are formatted in;
    # values are parameters.
    selected = (
        "SELECT t.user_id, u.email, u.first_name, u.last_name, u.organization_id, "
        "t.tokens, t.events, t.last_day"
    )
    if source.month is not None and len(period.token_types) == len(TYPES):
        # One whole month, every type: the month's rows are one per user, in the
        # order of the (organization, month, -tokens) index. The ``limit``-th
        # biggest total is read from its first entries; the users with at least
        # that much are exactly those ranked within ``limit`` (no user left: 0).
        monthly = qn(MonthlyUsage._meta.db_table)
        sql = (
            f"{selected} FROM {monthly} t JOIN {users} u ON u.id = t.user_id "  # noqa: S608
            "WHERE t.organization_id = %s AND t.month = %s AND t.tokens >= COALESCE("
            f"(SELECT c.tokens FROM {monthly} c "
            "WHERE c.organization_id = %s AND c.month = %s "
            "ORDER BY c.tokens DESC LIMIT 1 OFFSET %s), 0) "
            "ORDER BY t.tokens DESC, u.email LIMIT %s"
        )
        params = [*source.params, *source.params, max(limit - 1, 0), limit]
    else:
        # Totals per user (the source's rows as they are when there is one per
        # user), ranked; the ranked within ``limit`` are joined.
        totals = (
            "SELECT r.user_id, r.tokens, r.events, r.last_day "  # noqa: S608
            f"FROM ({source.sql}) r"
        )
        if not source.per_user:
            totals = (
                "SELECT r.user_id, SUM(r.tokens) AS tokens, "  # noqa: S608
                "SUM(r.events) AS events, MAX(r.last_day) AS last_day "
                f"FROM ({source.sql}) r GROUP BY r.user_id"
            )
        sql = (
            f"{selected} FROM (SELECT g.user_id, g.tokens, g.events, g.last_day, "  # noqa: S608
            f"RANK() OVER (ORDER BY g.tokens DESC) AS place FROM ({totals}) g) t "
            f"JOIN {users} u ON u.id = t.user_id WHERE t.place <= %s "
            "ORDER BY t.tokens DESC, u.email LIMIT %s"
        )
        params = [*source.params, limit, limit]
    return [
        TopUser(
            user_id=user_id,
            email=email,
            name=f"{first_name} {last_name}".strip(),
            tokens=int(tokens),
            events=int(events),
            share=_share(int(tokens), total),
            last_active=_as_date(last_active),
            is_member=organization_id == org.pk,
        )
        for (
            user_id,
            email,
            first_name,
            last_name,
            organization_id,
            tokens,
            events,
            last_active,
        ) in _fetch(sql, params)
    ]


def _as_date(value) -> dt.date:
    """A date from a raw query (SQLite returns the ISO text)."""
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        return value.date()
    return value


# --- exports ------------------------------------------------------------------------


def _usage_of(org: Organization, period: StatsPeriod, token_type: str):
    if token_type not in period.token_types:
        return Value(0)
    return Coalesce(
        Subquery(
            _daily(org, period)
            .filter(user_id=OuterRef("pk"), token_type=token_type)
            .values("user_id")
            .annotate(total=Sum("tokens"))
            .values("total")[:1]
        ),
        0,
    )


def _limit_of(org: Organization, token_type: str):
    return Coalesce(
        Subquery(
            Allocation.objects.filter(
                organization=org, user_id=OuterRef("pk"), token_type=token_type
            ).values("limit")[:1]
        ),
        0,
    )


def user_usage_for_export(org: Organization, period: StatsPeriod) -> QuerySet:
    """Every current member, and every former member with usage here in the range,
    with tokens per type in the range and current limits; one query, by email.
    Annotations: inference, embedding, max_inference, max_embedding."""
    used_here = _daily(org, period).values("user_id")
    return (
        User.objects.filter(Q(organization=org) | Q(pk__in=used_here))
        .annotate(
            inference=_usage_of(org, period, TokenType.INFERENCE),
            embedding=_usage_of(org, period, TokenType.EMBEDDING),
            max_inference=_limit_of(org, TokenType.INFERENCE),
            max_embedding=_limit_of(org, TokenType.EMBEDDING),
        )
        .order_by("email")
    )


def usage_events_for_export(org: Organization, period: StatsPeriod) -> QuerySet:
    """The raw events of the range for the types shown, oldest first, as tuples in
    ``tokens.selectors.metering.EXPORT_COLUMNS`` order. Lazy: stream it with
    ``.iterator()``."""
    events = token_metering.usage_events_for_export(org, period.start, period.end)
    if len(period.token_types) < len(TYPES):
        events = events.filter(token_type__in=period.token_types)
    return events


# The cells of the Python export (``csv_response``: formula escaping, empty text as
# an empty cell; ISO 8601 times in UTC), written by PostgreSQL's COPY … (FORMAT csv).
# Cheap per row: ascii() reads the first character without copying the text.
_FORMULA_START = "(61, 43, 45, 64, 9, 13)"  # = + - @ tab carriage-return


def _text_cell(column: str) -> str:
    """A text cell as ``safe_cell`` writes it. NULLIF: COPY writes an empty string
    as "" and NULL as nothing; the csv module writes an empty string as nothing."""
    return (
        f"NULLIF(CASE WHEN ascii({column}) IN {_FORMULA_START} "
        f"THEN '''' || {column} ELSE {column} END, '')"
    )


def _iso_utc(column: str) -> str:
    """``datetime.isoformat()`` of the time in UTC: the microseconds only when not
    0 (one to_char, then a zero fraction taken out)."""
    pattern = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC', '{pattern}'), '.000000+', '+')"
    )


def usage_events_copy(org: Organization, period: StatsPeriod) -> tuple[str, list]:
    """PostgreSQL: ``COPY (…) TO STDOUT WITH (FORMAT csv)`` of the raw events export,
    and its parameters: the rows and order of ``usage_events_for_export``, each cell
    as ``csv_response`` writes it."""
    begin = dt.datetime.combine(period.start, dt.time.min, tzinfo=dt.UTC)
    stop = dt.datetime.combine(
        period.end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC
    )
    some_types = len(period.token_types) < len(TYPES)
    # Only fixed SQL is formatted in; the values are parameters.
    sql = (
        "COPY (SELECT "  # noqa: S608
        f"{_text_cell('e.event_id')}, {_iso_utc('e.occurred_at')}, "
        f"{_text_cell('u.email')}, {_text_cell('m.key')}, "
        # token_type is "inference" or "embedding": nothing to escape.
        "e.token_type, e.prompt_tokens, e.completion_tokens, e.tokens, "
        f"{_text_cell('e.application')} "
        "FROM tokens_usageevent e "
        "JOIN accounts_user u ON u.id = e.user_id "
        "JOIN tokens_aimodel m ON m.id = e.model_id "
        "WHERE e.organization_id = %s AND e.occurred_at >= %s AND e.occurred_at < %s "
        + ("AND e.token_type = ANY(%s) " if some_types else "")
        + "ORDER BY e.occurred_at, e.id) TO STDOUT WITH (FORMAT csv)"
    )
    params: list = [org.pk, begin, stop]
    if some_types:
        params.append([str(t) for t in period.token_types])
    return sql, params
