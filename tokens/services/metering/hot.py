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

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from accounts.models import Organization, User
from tokens.models import AIModel, Hold

_qn = connection.ops.quote_name


def _table(model) -> str:
    return _qn(model._meta.db_table)


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


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


def members(emails: set[str]) -> dict[str, Member]:
    """The users with these (canonical) emails, by email."""
    if not emails:
        return {}
    ordered = sorted(emails)
    return {
        member.email: member
        for member in map(
            _member, _rows(_member_sql(f"u.email IN ({_in(ordered)})"), ordered)
        )
    }


@dataclass(frozen=True)
class ModelCheck:
    """The active model with a key, if any, and the organization's allowed-models
    list: ``restricted`` when it lists any, ``permitted`` when it lists this one."""

    model_id: int | None
    restricted: bool
    permitted: bool


def member_and_model(email: str, model_key: str) -> tuple[Member, ModelCheck] | None:
    """The user with this (canonical) email and the model of an authorization, in
    one statement; None when no user has the email."""
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
    rows = _rows(
        _member_sql("u.email = %s", extra), [model_key, True, model_key, email]
    )
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


def rated_models(keys: set[str]) -> dict[str, Rated]:
    """The models with these keys (active or not: usage of a retired model is
    still charged), by key. The rates are read as text, so they come back as the
    exact decimals on every database."""
    if not keys:
        return {}
    ordered = sorted(keys)
    key = _qn("key")
    return {
        k: Rated(pk, Decimal(i), Decimal(o))
        for pk, k, i, o in _rows(
            f"SELECT id, {key}, CAST(input_rate AS TEXT), "  # noqa: S608
            f"CAST(output_rate AS TEXT) FROM {_table(AIModel)} "
            f"WHERE {key} IN ({_in(ordered)})",
            ordered,
        )
    }


# --- holds ---------------------------------------------------------------------------


def hold_id_for(key_id: int, request_id: str):
    """The id of the hold a key opened for this request_id, if any."""
    rows = _rows(
        f"SELECT id FROM {_table(Hold)} "  # noqa: S608
        "WHERE service_key_id = %s AND request_id = %s",
        [key_id, request_id],
    )
    return rows[0][0] if rows else None


def insert(obj) -> None:
    """INSERT one new model instance with every concrete field as given (no
    defaults computed by the database, no signals)."""
    fields = [f for f in obj._meta.concrete_fields]
    columns = ", ".join(_qn(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(type(obj))} ({columns}) "  # noqa: S608
            f"VALUES ({_in(fields)})",
            [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields],
        )
    obj._state.adding = False
    obj._state.db = connection.alias


def close_holds(ids: list, status: str, closed_at) -> None:
    """Mark these holds closed if they are still open."""
    if not ids:
        return
    id_field = Hold._meta.pk
    at = Hold._meta.get_field("closed_at").get_db_prep_save(closed_at, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(Hold)} SET status = %s, closed_at = %s "  # noqa: S608
            f"WHERE status = %s AND id IN ({_in(ids)})",
            [
                status,
                at,
                Hold.Status.OPEN,
                *(id_field.get_db_prep_value(i, connection) for i in ids),
            ],
        )
