"""Counter and hold helpers (create, add and release on counter rows, close and
expire holds) and the upsert SQL they and the usage batch share."""

import datetime as dt
from collections import defaultdict
from functools import cache

from django.db import connection

from tokens.locks import lock_holds
from tokens.models import Hold, UsageCounter
from tokens.services.metering import hot


def _ensure_counters(keys: set[tuple[int, int, str, dt.date]]) -> None:
    """Create missing counter rows (organization, user, type, period)."""
    UsageCounter.objects.bulk_create(
        [
            UsageCounter(organization_id=o, user_id=u, token_type=t, period=p)
            for o, u, t, p in sorted(keys)
        ],
        ignore_conflicts=True,
    )


def _update_counters(
    used: dict[tuple, int] | None = None,
    released: dict[tuple, int] | None = None,
    *,
    closing: hot.Statement | None = None,
) -> None:
    """Add ``used`` and subtract ``released`` (held tokens) on counter rows keyed
    (organization, user, type, period), each organization's own (a hold opened
    before its user moved gives its tokens back to the organization that opened
    it), after ``closing`` (the statement closing the holds released), all in one
    round trip (``hot.run_together``)."""
    statements, settled = _counter_statements(used or {}, released or {})
    results = hot.run_together(closing, *statements)
    if settled is not None:
        changed = sum(r.rowcount for r in results[-len(statements) :])
        if changed != settled:
            # A hold without its counter breaks invariant 4: refuse the whole
            # transaction rather than lose the usage.
            raise RuntimeError(
                f"{settled - changed} counter row(s) of closed holds missing"
            )


def _counter_statements(
    used: dict[tuple, int], released: dict[tuple, int]
) -> tuple[list[hot.Statement], int | None]:
    """The statements of :func:`_update_counters`, and the number of rows the
    settlement's UPDATEs must change (None when the rows are upserted).

    The gateway's common case: every counter to change has a hold being closed on
    it, so every row exists (the hold was reserved on it): one UPDATE per row, in
    key order, adds ``used`` and takes the hold's tokens off ``held``. Otherwise
    one upsert creates missing rows and adds ``used``, locking every row in key
    order; then, when holds were closed, one UPDATE per row takes their tokens
    off ``held`` (rows this transaction already locked)."""
    table = connection.ops.quote_name(UsageCounter._meta.db_table)
    where = (
        "WHERE organization_id = %s AND user_id = %s AND token_type = %s "
        "AND period = %s"
    )
    if released and used.keys() <= released.keys():
        keys = sorted(released)
        return (
            [
                (
                    f"UPDATE {table} SET used = used + %s, held = held - %s {where}",  # noqa: S608
                    [used.get(k, 0), released[k], *k[:3], _sql_value(k[3])],
                )
                for k in keys
            ],
            len(keys),
        )
    rows: dict[tuple, dict[str, int]] = {}
    for key, n in [*used.items(), *((k, 0) for k in released)]:
        rows.setdefault(key, {"used": 0, "held": 0})["used"] += n
    if not rows:
        return [], None
    upsert = _upsert_sql(
        UsageCounter,
        ("user_id", "token_type", "period"),
        rows,
        by_organization=True,
    )
    return [
        upsert,
        *(
            (
                f"UPDATE {table} SET held = held - %s {where}",  # noqa: S608
                [n, o, u, t, _sql_value(p)],
            )
            for (o, u, t, p), n in sorted(released.items())
        ),
    ], None


def _released(holds) -> dict[tuple, int]:
    """The held tokens closing these holds takes off each counter."""
    released: dict[tuple, int] = defaultdict(int)
    for h in holds:
        key = (h["organization_id"], h["user_id"], h["token_type"], h["period"])
        released[key] += h["tokens"]
    return released


def _close_holds(holds: list[dict], status: str, now: dt.datetime) -> dict:
    """Mark open holds closed and take their tokens off their counters."""
    released = _released(holds)
    _update_counters(
        released=released,
        closing=hot.close_holds_sql([h["id"] for h in holds], status, now),
    )
    return released


_HOLD_FIELDS = hot.HOLD_COLUMNS


def _expire_due(queryset, now: dt.datetime) -> int:
    """Expire the open holds of ``queryset`` past their time: the holds (step 4 of
    the lock order), then their counters (step 5)."""
    due = list(
        lock_holds(
            queryset.filter(status=Hold.Status.OPEN, expires_at__lte=now)
        ).values(*_HOLD_FIELDS)
    )
    _close_holds(due, Hold.Status.EXPIRED, now)
    return len(due)


# --- upsert SQL (counters, rollups, and the events' insert) ------------------------


@cache
def _array_casts(model, columns: tuple[str, ...]) -> str:
    """``%s::type[]`` for each column (the same for every batch: computed once)."""
    by_column = {f.column: f for f in model._meta.concrete_fields}
    return ", ".join(f"%s::{by_column[c].db_type(connection)}[]" for c in columns)


def _rows_source(model, columns: list[str], rows: list[list]) -> tuple[str, list]:
    """The rows to INSERT, as SQL and parameters. On PostgreSQL one array per
    column, ``SELECT * FROM unnest(%s::type[], …)``: a short statement with a
    parameter per column, whatever the number of rows (a VALUES list of 1,000 rows
    has 17,000 placeholders, which the driver parses again on every call). Elsewhere
    a VALUES list. ``rows`` are in the order to insert (and to lock) them."""
    if connection.vendor == "postgresql":
        casts = _array_casts(model, tuple(columns))
        arrays = [list(column) for column in zip(*rows, strict=True)]
        return f"SELECT * FROM unnest({casts})", arrays  # noqa: S608
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return "VALUES " + ", ".join([row] * len(rows)), [v for r in rows for v in r]


def _sql_value(value):
    """A key value as a raw-SQL parameter (dates as ISO text on every backend)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return connection.ops.adapt_datefield_value(value)
    return value


def _case_update(model, unique: tuple[str, ...], rows, **options) -> None:
    """Run :func:`_upsert_sql` (nothing when there are no rows)."""
    hot.run_together(_upsert_sql(model, unique, rows, **options))


def _upsert_sql(
    model,
    unique: tuple[str, ...],
    rows: dict[tuple, dict[str, int]],
    *,
    by_organization: bool = False,
    greatest: tuple[str, ...] = (),
) -> hot.Statement | None:
    """One statement adding per-row amounts to integer columns of rows keyed
    (organization, *unique): INSERT … VALUES … ON CONFLICT (unique) DO UPDATE SET
    col = col + excluded.col. Missing rows are created with the amounts; the VALUES
    are sorted by the unique key, which is the order the rows are locked in.
    ``by_organization``: the unique key is (organization, *unique) (the
    organization-level rollups). Columns in ``greatest`` keep the greater of the two
    values (a last day) instead of adding them, ignoring a NULL (no value: a last
    day of a type without usage), on every backend: PostgreSQL's GREATEST ignores
    NULLs, SQLite's MAX(a, b) is NULL when either is, so each side falls back on
    the other. A missing value is 0, or NULL for a ``greatest`` column."""
    if not rows:
        return None
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    amounts = sorted({c for values in rows.values() for c in values})
    columns = ["organization_id", *unique, *amounts]
    conflict = ("organization_id", *unique) if by_organization else unique
    source, params = _rows_source(
        model,
        columns,
        [
            [
                *(_sql_value(v) for v in key),
                *(
                    _sql_value(rows[key].get(c, None if c in greatest else 0))
                    for c in amounts
                ),
            ]
            for key in sorted(rows, key=lambda k: k if by_organization else k[1:])
        ],
    )
    larger = "GREATEST" if connection.vendor == "postgresql" else "MAX"

    def update(c: str) -> str:
        old, new = f"{table}.{qn(c)}", f"excluded.{qn(c)}"
        if c in greatest:
            return f"{qn(c)} = {larger}(COALESCE({old}, {new}), COALESCE({new}, {old}))"
        return f"{qn(c)} = {old} + {new}"

    updates = ", ".join(update(c) for c in amounts)
    # Only quoted identifiers and placeholders are formatted in; values are params.
    sql = (
        f"INSERT INTO {table} ({', '.join(qn(c) for c in columns)}) "
        f"{source} "
        f"ON CONFLICT ({', '.join(qn(c) for c in conflict)}) DO UPDATE SET {updates}"
    )
    return sql, params
