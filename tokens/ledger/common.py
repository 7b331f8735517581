"""What the ledger checks share: how a violation reads (one line each, at most
``MAX_LISTED`` per check), the organization scope, and ``_differences``, which
compares two grouped tables in the database (docs/architecture.md, Invariants and
check_ledger)."""

import datetime as dt
from collections.abc import Iterable, Sequence

from django.db import connection
from django.db.models import (
    QuerySet,
)

from accounts.models import Organization, User
from asksage_admin.lib.periods import label

MAX_LISTED = 50
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
