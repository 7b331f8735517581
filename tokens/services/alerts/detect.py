"""Detection of alerts on the usage path (docs/forecasts.md, Alerts): ONE
statement per usage batch that recorded usage of the current month, run last
(after the rollups), which reads for the batch's organizations, users and types
what deciding needs; an INSERT … ON CONFLICT DO NOTHING only when a threshold is
reached that has not fired yet (once per threshold and month, or a few times
when batches race: the unique key keeps one row, and only the batch whose insert
wrote it delivers it, after its commit).

Thresholds are "reached", not "crossed": a batch compares the figures it sees
(its own usage included) with each threshold and fires those not yet fired. The
organization's figures are not serialized between batches (each batch locks only
its own stripe of the rollup), so two batches that cross a threshold together
may each see less than it; the next batch then sees it reached and fires it.
The statement takes no lock of its own; the insert's unique index entry is the
last lock of the batch (after the rollups, docs/architecture.md, Concurrency and
locks)."""

import datetime as dt
import json
from collections import defaultdict

from django.db import connection, transaction

from asksage_admin.lib.periods import last_day
from tokens.models import (
    DEFAULT_ORG_THRESHOLDS,
    DEFAULT_USER_THRESHOLDS,
    Alert,
    AlertSettings,
    Allocation,
    OrgDailyUsage,
    Purchase,
    UsageCounter,
)

Kind = Alert.Kind


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


def _thresholds(raw, default: list[int]) -> list[int]:
    if raw is None:
        return list(default)
    values = json.loads(raw) if isinstance(raw, str) else raw
    return sorted({int(v) for v in values})


def _facts_sql(orgs: int, users: int, types: int) -> str:
    """The one read: the users' counters and limits (u), the organizations' usage
    this month from their daily rollup (o), their pools (p), settings (s), and the
    alerts already fired this month for them (f), as rows of eight columns."""
    limit = connection.ops.quote_name("limit")
    text = "TEXT"
    in_o, in_u, in_t = _in(range(orgs)), _in(range(users)), _in(range(types))
    none_i, none_t = "CAST(NULL AS BIGINT)", f"CAST(NULL AS {text})"
    # Only quoted identifiers and placeholders are formatted in; values are params.
    return (
        f"SELECT 'u', c.organization_id, c.user_id, c.token_type, c.used, "  # noqa: S608
        f"CAST(a.{limit} AS BIGINT), {none_t}, {none_t} "
        f"FROM {_table(UsageCounter)} c LEFT JOIN {_table(Allocation)} a "
        "ON a.user_id = c.user_id AND a.token_type = c.token_type "
        "AND a.organization_id = c.organization_id "
        f"WHERE c.organization_id IN ({in_o}) AND c.period = %s "
        f"AND c.user_id IN ({in_u}) AND c.token_type IN ({in_t}) "
        f"UNION ALL SELECT 'o', d.organization_id, {none_i}, d.token_type, "
        f"CAST(SUM(d.tokens) AS BIGINT), {none_i}, {none_t}, {none_t} "
        f"FROM {_table(OrgDailyUsage)} d WHERE d.organization_id IN ({in_o}) "
        f"AND d.day >= %s AND d.day <= %s AND d.token_type IN ({in_t}) "
        "GROUP BY d.organization_id, d.token_type "
        f"UNION ALL SELECT 'p', p.organization_id, {none_i}, {none_t}, "
        "CAST(SUM(p.inference_tokens) AS BIGINT), "
        f"CAST(SUM(p.embedding_tokens) AS BIGINT), {none_t}, {none_t} "
        f"FROM {_table(Purchase)} p WHERE p.organization_id IN ({in_o}) "
        "AND p.starts_on <= %s AND (p.expires_on IS NULL OR p.expires_on >= %s) "
        "GROUP BY p.organization_id "
        f"UNION ALL SELECT 's', s.organization_id, {none_i}, {none_t}, "
        "CAST(CASE WHEN s.org_enabled THEN 1 ELSE 0 END AS BIGINT), "
        "CAST(CASE WHEN s.user_enabled THEN 1 ELSE 0 END AS BIGINT), "
        f"CAST(s.org_thresholds AS {text}), CAST(s.user_thresholds AS {text}) "
        f"FROM {_table(AlertSettings)} s WHERE s.organization_id IN ({in_o}) "
        f"UNION ALL SELECT 'f', f.organization_id, CAST(f.user_id AS BIGINT), "
        f"f.token_type, CAST(f.threshold AS BIGINT), {none_i}, f.kind, {none_t} "
        f"FROM {_table(Alert)} f WHERE f.organization_id IN ({in_o}) "
        f"AND f.month = %s AND (f.user_id IS NULL OR f.user_id IN ({in_u}))"
    )


def facts_statement(
    keys: set[tuple[int, int, str]], period: dt.date
) -> tuple[str, list] | None:
    """The one read of :func:`detect_for_batch` for the (organization, user, type)
    ``keys`` a batch charged in ``period`` (the current month), as SQL and
    parameters, so that the usage batch can send it with its rollups in one round
    trip; None when there are no keys."""
    if not keys:
        return None
    orgs = sorted({o for o, _u, _t in keys})
    users = sorted({u for _o, u, _t in keys})
    types = sorted({t for _o, _u, t in keys})
    day = connection.ops.adapt_datefield_value
    params = [
        *orgs,
        day(period),
        *users,
        *types,
        *orgs,
        day(period),
        day(last_day(period)),
        *types,
        *orgs,
        day(last_day(period)),
        day(period),
        *orgs,
        *orgs,
        day(period),
        *users,
    ]
    return _facts_sql(len(orgs), len(users), len(types)), params


def detect_for_batch(
    keys: set[tuple[int, int, str]],
    period: dt.date,
    now: dt.datetime,
    *,
    facts: list[tuple] | None = None,
) -> list[int]:
    """The alerts that this batch's usage of ``period`` (the current month) fires,
    for the (organization, user, type) ``keys`` it charged: one read (``facts``,
    the rows of :func:`facts_statement` when the caller already ran it), and an
    insert only when something is due. Delivered after the commit."""
    if not keys:
        return []
    if facts is None:
        sql, params = facts_statement(keys, period)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            facts = cursor.fetchall()
    due = _due(facts, keys, sorted({t for _o, _u, t in keys}))
    if not due:
        return []
    return fire(due, period=period, now=now)


def _due(rows, keys, types) -> list[dict]:
    counters, org_used, pools, settings = {}, defaultdict(int), {}, {}
    fired: set[tuple] = set()
    for part, org, user, token_type, a, b, c, d in rows:
        if part == "u":
            counters[(org, user, token_type)] = (a or 0, b or 0)
        elif part == "o":
            org_used[(org, token_type)] += a or 0
        elif part == "p":
            pools[org] = {"inference": a or 0, "embedding": b or 0}
        elif part == "s":
            settings[org] = (bool(a), bool(b), c, d)
        else:
            fired.add((org, user, token_type, c, a))
    due = []
    for org in sorted({o for o, _u, _t in keys}):
        org_on, user_on, org_raw, user_raw = settings.get(org, (True, True, None, None))
        if org_on:
            for token_type in types:
                pool = pools.get(org, {}).get(token_type, 0)
                used = org_used.get((org, token_type), 0)
                for t in _thresholds(org_raw, DEFAULT_ORG_THRESHOLDS):
                    if (
                        pool > 0
                        and used * 100 >= t * pool
                        and (org, None, token_type, Kind.ORG_USAGE, t) not in fired
                    ):
                        due.append(_row(org, None, token_type, Kind.ORG_USAGE, t))
                        due[-1].update(used=used, budget=pool)
        if not user_on:
            continue
        for o, user, token_type in sorted(keys):
            if o != org or (o, user, token_type) not in counters:
                continue
            used, limit = counters[(o, user, token_type)]
            for t in _thresholds(user_raw, DEFAULT_USER_THRESHOLDS):
                if (
                    limit > 0
                    and used * 100 >= t * limit
                    and (org, user, token_type, Kind.USER_USAGE, t) not in fired
                ):
                    due.append(_row(org, user, token_type, Kind.USER_USAGE, t))
                    due[-1].update(used=used, budget=limit)
    return due


def _row(org, user, token_type, kind, threshold) -> dict:
    return {
        "organization_id": org,
        "user_id": user,
        "token_type": token_type,
        "kind": kind,
        "threshold": threshold,
    }


_COLUMNS = (
    "organization_id",
    "user_id",
    "token_type",
    "month",
    "kind",
    "threshold",
    "used",
    "budget",
    "detail",
    "created_at",
    "recipients",
    "attempts",
    "last_error",
)


def fire(due: list[dict], *, period: dt.date, now: dt.datetime) -> list[int]:
    """Insert these alerts, each at most once (ON CONFLICT DO NOTHING on the
    unique key), and deliver those this transaction wrote after it commits.
    Returns their ids."""
    if not due:
        return []
    fields = {f.column: f for f in Alert._meta.concrete_fields}
    values = []
    for row in due:
        full = {
            "month": period,
            "used": 0,
            "budget": 0,
            "detail": {},
            "created_at": now,
            "recipients": [],
            "attempts": 0,
            "last_error": "",
            **row,
        }
        values.append(
            [fields[c].get_db_prep_save(full[c], connection) for c in _COLUMNS]
        )
    qn = connection.ops.quote_name
    row_sql = "(" + _in(_COLUMNS) + ")"
    sql = (
        f"INSERT INTO {_table(Alert)} ({', '.join(qn(c) for c in _COLUMNS)}) "  # noqa: S608
        f"VALUES {', '.join([row_sql] * len(values))} "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [v for row in values for v in row])
        ids = sorted(r[0] for r in cursor.fetchall())
    if ids:
        from tokens.services.alerts.delivery import deliver_soon

        transaction.on_commit(lambda: deliver_soon(ids), robust=True)
    return ids
