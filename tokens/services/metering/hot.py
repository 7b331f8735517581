"""The gateway's hot statements, in plain SQL.

Every gateway call runs a handful of statements, and building each with the ORM
costs about ten times what PostgreSQL takes to run it (bench B7: a query
compiled by the ORM ~1 ms of Python, the same query sent as SQL ~0.1 ms). The
statements every authorize and usage call sends are therefore written here
once, as SQL that runs on PostgreSQL and SQLite alike: only quoted identifiers
are formatted in, values are parameters, and each reads only columns whose
values come back the same from both databases (integers, text, booleans).
Everything rarer (a retried request, a refusal's details) stays with the ORM.
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from accounts.models import Organization, User
from tokens.models import AIModel, Hold

_qn = connection.ops.quote_name


def _table(model) -> str:
    return _qn(model._meta.db_table)


Statement = tuple[str, list]


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@dataclass(frozen=True)
class Result:
    """What one statement of :func:`run_together` gave: its rows (none for a
    statement without RETURNING) and its row count."""

    rows: list[tuple]
    rowcount: int


NOTHING = Result([], 0)


def run_together(*statements: Statement | None) -> list[Result]:
    """Run statements in order, in one round trip on PostgreSQL, and return each
    one's result (a ``None`` statement is skipped: its result is ``NOTHING``).

    A gateway call's cost is mostly round trips to the database, not the work
    each statement does there (docs/performance.md, The gateway under load), so
    statements that do not need each other's results in Python are sent as one
    query: psycopg's client-side binding, which Django uses, sends them as one
    simple-protocol message, and each statement's result is read in turn. They
    run in the caller's transaction, one after another, exactly as if sent
    apart; an error in one fails the call as it would have. SQLite, in the same
    process, has no round trip to save: the statements are executed one by one."""
    todo = [s for s in statements if s is not None]
    results: list[Result] = []
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql" or len(todo) < 2:
            for sql, params in todo:
                cursor.execute(sql, params)
                rows = cursor.fetchall() if cursor.description else []
                results.append(Result(rows, cursor.rowcount))
        else:
            cursor.execute(
                ";\n".join(sql for sql, _ in todo), [p for _, ps in todo for p in ps]
            )
            while True:
                rows = cursor.fetchall() if cursor.description else []
                results.append(Result(rows, cursor.rowcount))
                if not cursor.nextset():
                    break
    if len(results) != len(todo):  # a statement text held a ";" of its own
        raise AssertionError(f"{len(todo)} statements gave {len(results)} results")
    done = iter(results)
    return [NOTHING if s is None else next(done) for s in statements]


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


# --- members and models -------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """What the gateway needs of a user: who, where, and whether they may spend."""

    pk: int
    email: str
    organization_id: int | None
    organization_active: bool
    is_banned: bool
    is_paid: bool
    store_prompt_excerpts: bool


def _member_sql(where: str, extra: str = "") -> str:
    return (
        "SELECT u.id, u.email, u.organization_id, o.status, u.is_banned, "  # noqa: S608
        f"u.is_paid, o.store_prompt_excerpts{extra} "
        f"FROM {_table(User)} u LEFT JOIN {_table(Organization)} o "
        f"ON o.id = u.organization_id WHERE {where}"
    )


def _member(row) -> Member:
    pk, email, org_id, status, banned, paid, excerpts = row[:7]
    return Member(
        pk=pk,
        email=email,
        organization_id=org_id,
        organization_active=status == Organization.Status.ACTIVE,
        is_banned=bool(banned),
        is_paid=bool(paid),
        store_prompt_excerpts=bool(excerpts),
    )


def members_sql(emails: set[str]) -> Statement | None:
    """The users with these (canonical) emails (read them with :func:`members_of`)."""
    if not emails:
        return None
    ordered = sorted(emails)
    return _member_sql(f"u.email IN ({_in(ordered)})"), ordered


def members_of(rows: list[tuple]) -> dict[str, Member]:
    """The rows of :func:`members_sql`, by email."""
    return {member.email: member for member in map(_member, rows)}


def members(emails: set[str]) -> dict[str, Member]:
    """The users with these (canonical) emails, by email."""
    statement = members_sql(emails)
    return members_of(_rows(*statement)) if statement else {}


@dataclass(frozen=True)
class ModelCheck:
    """The active model with a key, if any, and the organization's allowed-models
    list: ``restricted`` when it lists any, ``permitted`` when it lists this one."""

    model_id: int | None
    restricted: bool
    permitted: bool


def member_and_model_sql(email: str, model_key: str) -> Statement:
    """The user with this (canonical) email and the model of an authorization, in
    one statement (read it with :func:`member_and_model_of`)."""
    allowed = _table(AIModel.allowed_for.through)
    models = _table(AIModel)
    extra = (
        f", (SELECT m.id FROM {models} m WHERE m.{_qn('key')} = %s "  # noqa: S608
        "AND m.is_active = %s), "
        f"EXISTS (SELECT 1 FROM {allowed} a WHERE a.organization_id = "
        "u.organization_id), "
        f"EXISTS (SELECT 1 FROM {allowed} a JOIN {models} m ON m.id = a.aimodel_id "
        f"WHERE a.organization_id = u.organization_id AND m.{_qn('key')} = %s)"
    )
    return _member_sql("u.email = %s", extra), [model_key, True, model_key, email]


def member_and_model_of(rows: list[tuple]) -> tuple[Member, ModelCheck] | None:
    """The row of :func:`member_and_model_sql`; None when no user has the email."""
    if not rows:
        return None
    row = rows[0]
    return _member(row), ModelCheck(row[7], bool(row[8]), bool(row[9]))


@dataclass(frozen=True)
class Rated:
    """A model as a usage event needs it: its id and its rates."""

    pk: int
    input_rate: Decimal
    output_rate: Decimal


def rated_models_sql(keys: set[str]) -> Statement | None:
    """The models with these keys (active or not: usage of a retired model is
    still charged; read them with :func:`rated_models_of`). The rates are read as
    text, so they come back as the exact decimals on every database."""
    if not keys:
        return None
    ordered = sorted(keys)
    key = _qn("key")
    return (
        f"SELECT id, {key}, CAST(input_rate AS TEXT), "  # noqa: S608
        f"CAST(output_rate AS TEXT) FROM {_table(AIModel)} "
        f"WHERE {key} IN ({_in(ordered)})",
        ordered,
    )


def rated_models_of(rows: list[tuple]) -> dict[str, Rated]:
    """The rows of :func:`rated_models_sql`, by key."""
    return {k: Rated(pk, Decimal(i), Decimal(o)) for pk, k, i, o in rows}


# --- holds ---------------------------------------------------------------------------


def hold_id_sql(key_id: int, request_id: str) -> Statement:
    """The id of the hold a key opened for this request_id, if any (one row or
    none; read it with :func:`uuid_of`)."""
    return (
        f"SELECT id FROM {_table(Hold)} "  # noqa: S608
        "WHERE service_key_id = %s AND request_id = %s",
        [key_id, request_id],
    )


def uuid_of(value) -> uuid.UUID:
    """A UUID column's value as read raw (a UUID on PostgreSQL, hex text on SQLite)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _date_of(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


HOLD_COLUMNS = ("id", "organization_id", "user_id", "token_type", "period", "tokens")


def lock_holds_sql(ids: list) -> Statement | None:
    """Step 4 of the lock order (``tokens/locks.py``): these holds, ascending id,
    ``FOR NO KEY UPDATE`` (SQLite's write transaction already excludes every
    other writer), with their status (read them with :func:`holds_of`)."""
    if not ids:
        return None
    id_field = Hold._meta.pk
    values = sorted(id_field.get_db_prep_value(i, connection) for i in ids)
    lock = " FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
    return (
        f"SELECT {', '.join(HOLD_COLUMNS)}, status FROM {_table(Hold)} "  # noqa: S608
        f"WHERE id IN ({_in(values)}) ORDER BY id{lock}",
        values,
    )


def holds_of(rows: list[tuple]) -> dict[uuid.UUID, dict]:
    """The rows of :func:`lock_holds_sql`, by id, as ``HOLD_COLUMNS`` + status."""
    holds = {}
    for row in rows:
        hold = dict(zip((*HOLD_COLUMNS, "status"), row, strict=True))
        hold["id"], hold["period"] = uuid_of(hold["id"]), _date_of(hold["period"])
        holds[hold["id"]] = hold
    return holds


def insert_sql(obj) -> Statement:
    """INSERT one new model instance with every concrete field as given (no
    defaults computed by the database, no signals); :func:`inserted` marks the
    instance saved once the statement ran."""
    fields = [f for f in obj._meta.concrete_fields]
    columns = ", ".join(_qn(f.column) for f in fields)
    return (
        f"INSERT INTO {_table(type(obj))} ({columns}) "  # noqa: S608
        f"VALUES ({_in(fields)})",
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields],
    )


def inserted(obj) -> None:
    obj._state.adding = False
    obj._state.db = connection.alias


def close_holds_sql(ids: list, status: str, closed_at) -> Statement | None:
    """Mark these holds closed if they are still open."""
    if not ids:
        return None
    id_field = Hold._meta.pk
    at = Hold._meta.get_field("closed_at").get_db_prep_save(closed_at, connection)
    return (
        f"UPDATE {_table(Hold)} SET status = %s, closed_at = %s "  # noqa: S608
        f"WHERE status = %s AND id IN ({_in(ids)})",
        [
            status,
            at,
            Hold.Status.OPEN,
            *(id_field.get_db_prep_value(i, connection) for i in ids),
        ],
    )
