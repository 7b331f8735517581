"""Metering for the gateway (SPEC §10, DESIGN §5): authorize, usage, release,
expiry.

- An authorization is a conditional update of the user's counter row
  (used + held + n ≤ limit) plus a hold; users never contend with each other and the
  org pool needs no lock (allocated ≤ pool already bounds the organization).
- A usage batch runs a constant number of queries whatever its size: one lookup per
  kind of thing (users, models, holds), one insert with ON CONFLICT (event_id) DO
  NOTHING RETURNING (then one lookup of the events it did not insert, if any),
  and for counters and rollups one upsert each (INSERT … ON CONFLICT DO UPDATE
  SET n = n + excluded.n), plus one UPDATE of ``held`` when holds were settled.
- Lock order everywhere: holds in id order, then counters, then rollups, each in
  the order of their unique key (the upsert takes its row locks in the order of its
  VALUES, which are sorted).
- An authorization writes its hold before the conditional update of the counter, so
  the user's counter row (the hot row) stays locked only from that UPDATE to the
  commit.
- Every public function is one transaction, retried on serialization failure or
  deadlock up to 3 times; if it still fails, ``ServiceUnavailable``.
"""

import datetime as dt
import hashlib
import json
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import ServiceKey, User
from asksage_admin.lib.periods import label, period_of
from tokens.models import (
    AIModel,
    Allocation,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    TokenType,
    UsageCounter,
    UsageEvent,
)
from tokens.services.distribution import auto_increase_for_batch

TYPES = {TokenType.INFERENCE.value, TokenType.EMBEDDING.value}
MAX_BATCH = 1000
MAX_ID = 128
EXCERPT_CHARS = 2000
RETRIES = 3
# Usage may be reported a little ahead of our clock; further ahead is an error.
FUTURE_SKEW = dt.timedelta(minutes=5)


class MeteringError(Exception):
    """A refusal with its API error code and HTTP status."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class ServiceUnavailable(Exception):
    """The database is unreachable or a transaction kept failing: nothing saved."""


def _retryable(error: DatabaseError) -> bool:
    cause = getattr(error, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate in {"40001", "40P01"}:
        return True
    return "database is locked" in str(error)


def with_retries(func):
    """Run ``func`` (which opens its own transaction) up to RETRIES times on
    serialization failures and deadlocks; ServiceUnavailable when it still fails
    or the database cannot be reached."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        for attempt in range(1, RETRIES + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as error:
                if not _retryable(error) or attempt == RETRIES:
                    raise ServiceUnavailable(str(error)) from error
            except IntegrityError:
                # A concurrent request created the same row (a hold's request_id,
                # a counter): run again and find it.
                if attempt == RETRIES:
                    raise
        raise AssertionError("unreachable")

    return wrapper


# --- resolution shared by authorize, balance and usage ------------------------------


def _user_refusal(key: ServiceKey, user: User | None, email: str) -> MeteringError:
    if user is None:
        return MeteringError(404, "unknown_user", f"No user with email {email!r}.")
    if key.organization_id and user.organization_id != key.organization_id:
        return MeteringError(
            403, "forbidden", "This service key cannot act for this user."
        )
    if user.organization is None or not user.organization.is_active:
        return MeteringError(
            403, "forbidden", "This user is not in an active Enterprise Account."
        )
    if user.is_banned:
        return MeteringError(403, "user_banned", "This user is banned.")
    if not user.is_paid:
        return MeteringError(
            403, "user_not_paid", "This user's account is deactivated (not paid)."
        )
    return None


def resolve_user(key: ServiceKey, email: str) -> User:
    user = (
        User.objects.select_related("organization")
        .filter(email=str(email).strip().lower())
        .first()
    )
    refusal = _user_refusal(key, user, email)
    if refusal:
        raise refusal
    return user


def _model_refusal(model: AIModel | None, key: str, allowed: set[int] | None):
    if model is None or not model.is_active:
        return MeteringError(404, "unknown_model", f"No active model {key!r}.")
    if allowed and model.pk not in allowed:
        return MeteringError(
            403,
            "model_not_allowed",
            f"Model {key!r} is not allowed for this organization.",
        )
    return None


def allowed_model_ids(org_id: int) -> set[int]:
    """The org's allowed models; empty means all."""
    return set(
        AIModel.allowed_for.through.objects.filter(organization_id=org_id).values_list(
            "aimodel_id", flat=True
        )
    )


def resolve_model(key: str, org_id: int) -> AIModel:
    """The model, with the organization's allowed-models check in the same query."""
    allowed = AIModel.allowed_for.through.objects.filter(organization_id=org_id)
    model = (
        AIModel.objects.filter(key=key)
        .annotate(
            restricted=Exists(allowed),
            permitted=Exists(allowed.filter(aimodel_id=OuterRef("pk"))),
        )
        .first()
    )
    # The set _model_refusal expects: empty = every model is allowed.
    allowed_ids: set[int] = set()
    if model is not None and model.restricted:
        allowed_ids = {model.pk} if model.permitted else {0}
    refusal = _model_refusal(model, key, allowed_ids)
    if refusal:
        raise refusal
    return model


def _limit_subquery():
    return Subquery(
        Allocation.objects.filter(
            user_id=OuterRef("user_id"), token_type=OuterRef("token_type")
        ).values("limit")[:1]
    )


def _ensure_counters(keys: set[tuple[int, int, str, dt.date]]) -> None:
    """Create missing counter rows (organization, user, type, period)."""
    UsageCounter.objects.bulk_create(
        [
            UsageCounter(organization_id=o, user_id=u, token_type=t, period=p)
            for o, u, t, p in sorted(keys, key=lambda k: (k[1], k[2], k[3]))
        ],
        ignore_conflicts=True,
    )


def _update_counters(
    used: dict[tuple, int] | None = None, released: dict[tuple, int] | None = None
) -> None:
    """Add ``used`` and subtract ``released`` (held tokens) on counter rows keyed
    (organization, user, type, period): one upsert creates missing rows and adds
    ``used``, locking every row in key order; then, when holds were closed, one
    UPDATE takes their tokens off ``held`` (rows this transaction already locked)."""
    used, released = used or {}, released or {}
    # A counter is unique per (user, type, period): merge keys that differ only in
    # the organization (a hold opened before its user moved); a new row gets the
    # first organization seen.
    rows: dict[tuple, dict[str, int]] = {}
    orgs: dict[tuple, int] = {}
    for (o, *unique), n in [*used.items(), *((k, 0) for k in released)]:
        unique = tuple(unique)
        orgs.setdefault(unique, o)
        cell = rows.setdefault(unique, {"used": 0, "held": 0})
        cell["used"] += n
    if not rows:
        return
    _case_update(
        UsageCounter,
        ("user_id", "token_type", "period"),
        {(orgs[k], *k): amounts for k, amounts in rows.items()},
    )
    taken: dict[tuple, int] = defaultdict(int)
    for (_o, *unique), n in released.items():
        taken[tuple(unique)] += n
    if taken:
        table = connection.ops.quote_name(UsageCounter._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET held = held - %s "  # noqa: S608
                "WHERE user_id = %s AND token_type = %s AND period = %s",
                [(n, u, t, _sql_value(p)) for (u, t, p), n in sorted(taken.items())],
            )


def _close_holds(holds: list[dict], status: str, now: dt.datetime) -> dict:
    """Mark open holds closed; returns the held tokens to take off each counter."""
    released: dict[tuple, int] = defaultdict(int)
    if not holds:
        return released
    Hold.objects.filter(
        pk__in=[h["id"] for h in holds], status=Hold.Status.OPEN
    ).update(status=status, closed_at=now)
    for h in holds:
        key = (h["organization_id"], h["user_id"], h["token_type"], h["period"])
        released[key] += h["tokens"]
    return released


_HOLD_FIELDS = ("id", "organization_id", "user_id", "token_type", "period", "tokens")


def _expire_due(queryset, now: dt.datetime) -> int:
    due = list(
        queryset.filter(status=Hold.Status.OPEN, expires_at__lte=now)
        .select_for_update()
        .order_by("id")
        .values(*_HOLD_FIELDS)
    )
    _update_counters(released=_close_holds(due, Hold.Status.EXPIRED, now))
    return len(due)


# --- authorize ---------------------------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    hold: Hold
    remaining: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "hold_id": str(self.hold.pk),
            "tokens": self.hold.tokens,
            "remaining": self.remaining,
            "expires_at": self.hold.expires_at.isoformat(),
            "status": self.hold.status,
        }


def _remaining(user_id: int, token_type: str, period: dt.date) -> int:
    row = (
        UsageCounter.objects.filter(
            user_id=user_id, token_type=token_type, period=period
        )
        .annotate(limit=_limit_subquery())
        .values("used", "held", "limit")
        .first()
    )
    if row is None:
        limit = (
            Allocation.objects.filter(user_id=user_id, token_type=token_type)
            .values_list("limit", flat=True)
            .first()
        )
        return limit or 0
    return max(0, (row["limit"] or 0) - row["used"] - row["held"])


@with_retries
def authorize(
    *,
    key: ServiceKey,
    user_email: str,
    model_key: str,
    token_type: str,
    tokens: int,
    request_id: str,
) -> Authorization:
    """Reserve ``tokens`` for a user, or refuse. The same request_id (per key)
    returns the same hold."""
    with transaction.atomic():
        existing = (
            Hold.objects.select_related("user")
            .filter(service_key=key, request_id=request_id)
            .first()
        )
        if existing is not None:
            if (
                existing.user.email != str(user_email).strip().lower()
                or existing.tokens != tokens
                or existing.token_type != token_type
            ):
                raise MeteringError(
                    409,
                    "conflict",
                    "This request_id was already used for a different authorization.",
                )
            return Authorization(
                existing, _remaining(existing.user_id, token_type, existing.period)
            )
        user = resolve_user(key, user_email)
        model = resolve_model(model_key, user.organization_id)
        now = timezone.now()
        period = period_of(now)
        # The hold first: the counter row, which every request of this user
        # updates, is then locked only from the conditional UPDATE to the commit.
        # A refusal rolls the hold back with the rest.
        hold = Hold.objects.create(
            organization_id=user.organization_id,
            user=user,
            service_key=key,
            model=model,
            token_type=token_type,
            period=period,
            tokens=tokens,
            request_id=request_id,
            expires_at=now + dt.timedelta(seconds=settings.HOLD_TTL_SECONDS),
            created_at=now,
        )
        granted = _reserve(user.pk, token_type, period, tokens)
        if granted is None:
            # Not enough left, or no counter yet this month: give back this user's
            # holds past their time (lazy expiry: a stale hold matters only when
            # its tokens are needed, so a granted request skips this query), create
            # the counter if missing, and try again.
            _expire_due(Hold.objects.filter(user=user, token_type=token_type), now)
            _ensure_counters({(user.organization_id, user.pk, token_type, period)})
            granted = _reserve(user.pk, token_type, period, tokens)
        if granted is None:
            remaining = _remaining(user.pk, token_type, period)
            raise MeteringError(
                402,
                "insufficient_tokens",
                f"Only {remaining:,} {token_type} tokens remain this month "
                f"({label(period)}); {tokens:,} were asked for.",
                remaining=remaining,
            )
        return Authorization(hold, granted)


def _reserve(user_id: int, token_type: str, period: dt.date, tokens: int) -> int | None:
    """The conditional update of DESIGN §5: held += tokens where used + held +
    tokens ≤ limit. Returns the tokens remaining after it, None when nothing was
    updated (no counter row, or not enough left)."""
    qn = connection.ops.quote_name
    counters = qn(UsageCounter._meta.db_table)
    limit = (
        f"(SELECT a.{qn('limit')} FROM {qn(Allocation._meta.db_table)} a "  # noqa: S608
        "WHERE a.user_id = %s AND a.token_type = %s)"
    )
    # Only quoted identifiers and placeholders are formatted in; values are params.
    sql = (
        f"UPDATE {counters} SET held = held + %s "  # noqa: S608
        "WHERE user_id = %s AND token_type = %s AND period = %s "
        f"AND used + held + %s <= COALESCE({limit}, 0) "
        f"RETURNING used, held, {limit}"
    )
    key = (user_id, token_type)
    with connection.cursor() as cursor:
        cursor.execute(sql, (tokens, *key, _sql_value(period), tokens, *key, *key))
        row = cursor.fetchone()
    if row is None:
        return None
    used, held, limit_value = row
    return max(0, (limit_value or 0) - used - held)


# --- release and expiry ------------------------------------------------------------


def _scoped_hold(key: ServiceKey, hold_id) -> Hold:
    try:
        hold_uuid = uuid.UUID(str(hold_id))
    except ValueError as error:
        raise MeteringError(404, "unknown_hold", "No such hold.") from error
    holds = Hold.objects.filter(pk=hold_uuid)
    if key.organization_id:
        holds = holds.filter(organization_id=key.organization_id)
    hold = holds.select_for_update().values(*_HOLD_FIELDS, "status").first()
    if hold is None:
        raise MeteringError(404, "unknown_hold", "No such hold.")
    return hold


@with_retries
def hold_release(*, key: ServiceKey, hold_id) -> int:
    """Give a hold's tokens back; returns how many (0 if it was no longer open)."""
    with transaction.atomic():
        hold = _scoped_hold(key, hold_id)
        if hold["status"] != Hold.Status.OPEN:
            return 0
        _update_counters(
            released=_close_holds([hold], Hold.Status.RELEASED, timezone.now())
        )
        return hold["tokens"]


@with_retries
def holds_expire(*, now: dt.datetime | None = None) -> int:
    """Expire every open hold past its time (the scheduled form of lazy expiry)."""
    with transaction.atomic():
        return _expire_due(Hold.objects.all(), now or timezone.now())


# --- balance -----------------------------------------------------------------------


def balance(*, key: ServiceKey, user_email: str, token_type: str) -> dict[str, Any]:
    from tokens.selectors import pools

    user = resolve_user(key, user_email)
    period = period_of()
    row = (
        UsageCounter.objects.filter(user=user, token_type=token_type, period=period)
        .values("used", "held")
        .first()
    ) or {"used": 0, "held": 0}
    limit = (
        Allocation.objects.filter(user=user, token_type=token_type)
        .values_list("limit", flat=True)
        .first()
    ) or 0
    org_usage = UsageCounter.objects.filter(
        organization_id=user.organization_id, token_type=token_type, period=period
    ).values_list("used", "held")
    org_spent = sum(u + h for u, h in org_usage)
    pool = pools(user.organization, period)[token_type]
    return {
        "period": label(period),
        "limit": limit,
        "used": row["used"],
        "held": row["held"],
        "remaining": max(0, limit - row["used"] - row["held"]),
        "overage": max(0, row["used"] + row["held"] - limit),
        "org_remaining": max(0, pool - org_spent),
    }


# --- usage -------------------------------------------------------------------------


@dataclass
class _Event:
    index: int
    raw: dict
    event_id: str
    digest: str
    user: User | None = None
    model: AIModel | None = None
    token_type: str = ""
    prompt: int = 0
    completion: int = 0
    occurred_at: dt.datetime | None = None
    hold_id: uuid.UUID | None = None
    application: str = ""
    prompt_excerpt: str = ""
    response_excerpt: str = ""
    charge: int = 0
    error: tuple[str, str] | None = None


@dataclass
class UsageResult:
    results: list[dict] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "recorded": self.count("recorded"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
        }


def digest_of(raw: dict) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _non_negative_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_event(index: int, raw: Any, now: dt.datetime) -> _Event:
    """Shape checks that need no database."""
    if not isinstance(raw, dict):
        return _Event(index, {}, "", "", error=("invalid_event", "Not an object."))
    event_id = raw.get("event_id")
    ev = _Event(
        index, raw, event_id if isinstance(event_id, str) else "", digest_of(raw)
    )

    def bad(detail: str) -> _Event:
        ev.error = ("invalid_event", detail)
        return ev

    if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_ID:
        return bad(f"event_id must be a string of 1 to {MAX_ID} characters.")
    if not isinstance(raw.get("user"), str) or not raw["user"].strip():
        return bad("user must be the user's email.")
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        return bad("model must be a model key.")
    if not isinstance(raw.get("token_type"), str) or raw["token_type"] not in TYPES:
        return bad("token_type must be 'inference' or 'embedding'.")
    ev.token_type = raw["token_type"]
    for name in ("prompt_tokens", "completion_tokens"):
        if not _non_negative_int(raw.get(name, None if name == "prompt_tokens" else 0)):
            return bad(f"{name} must be an integer ≥ 0.")
    ev.prompt = raw["prompt_tokens"]
    ev.completion = raw.get("completion_tokens", 0)
    if ev.token_type == TokenType.EMBEDDING and ev.completion:
        return bad("Embedding usage has prompt tokens only (completion_tokens = 0).")
    occurred = raw.get("occurred_at")
    try:
        # ValueError: well formed but impossible ("2026-13-01T00:00:00").
        parsed = parse_datetime(occurred) if isinstance(occurred, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return bad("occurred_at must be an ISO-8601 date and time.")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        # In UTC: every database stores it, whatever the offset (±23:59 is legal
        # ISO-8601, beyond PostgreSQL's ±15:59).
        parsed = parsed.astimezone(dt.UTC)
    except OverflowError:
        return bad("occurred_at is out of range (years 1 to 9999 in UTC).")
    if parsed > now + FUTURE_SKEW:
        return bad("occurred_at is in the future.")
    ev.occurred_at = parsed
    if raw.get("hold_id") is not None:
        try:
            ev.hold_id = uuid.UUID(str(raw["hold_id"]))
        except ValueError:
            return bad("hold_id must be a UUID.")
    for name, limit in (("application", 100),):
        value = raw.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            return bad(f"{name} must be a string of at most {limit} characters.")
    ev.application = raw.get("application", "")
    for name in ("prompt_excerpt", "response_excerpt"):
        value = raw.get(name, "")
        if value is not None and not isinstance(value, str):
            return bad(f"{name} must be a string.")
    return ev


def _charge(ev: _Event) -> int:
    cost = (
        Decimal(ev.prompt) * ev.model.input_rate
        + Decimal(ev.completion) * ev.model.output_rate
    )
    return math.ceil(cost)


_INSERT_FIELDS = [
    "event_id",
    "organization",
    "user",
    "model",
    "token_type",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "input_rate",
    "output_rate",
    "occurred_at",
    "received_at",
    "hold",
    "application",
    "prompt_excerpt",
    "response_excerpt",
    "payload_digest",
]


def _insert_events(rows: list[tuple]) -> set[str]:
    """INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING event_id: the ids this
    batch actually wrote (a concurrent copy may have written the others). ``rows``
    are prepared values in ``_INSERT_FIELDS`` order (``_event_rows``)."""
    if not rows:
        return set()
    meta = UsageEvent._meta
    fields = [meta.get_field(name) for name in _INSERT_FIELDS]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    source, params = _rows_source(
        UsageEvent,
        [f.column for f in fields],
        sorted(rows),  # by event_id
    )
    # Only quoted identifiers and placeholders are formatted in; values are params.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) {source} "
        f"ON CONFLICT ({qn('event_id')}) DO NOTHING RETURNING {qn('event_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {r[0] for r in cursor.fetchall()}


def _event_rows(events: list[_Event], now: dt.datetime) -> list[tuple]:
    """The values of each event's row, in ``_INSERT_FIELDS`` order, prepared for
    the database as the fields would (without building model instances: a batch
    has up to 1,000)."""
    meta = UsageEvent._meta
    ops = connection.ops
    rate_fields = (meta.get_field("input_rate"), meta.get_field("output_rate"))
    hold_field = meta.get_field("hold")
    received = ops.adapt_datetimefield_value(now)
    rates: dict[int, tuple] = {}
    rows = []
    for ev in events:
        model = ev.model
        if model.pk not in rates:
            rates[model.pk] = tuple(
                f.get_db_prep_save(getattr(model, f.attname), connection)
                for f in rate_fields
            )
        rows.append(
            (
                ev.event_id,
                ev.user.organization_id,
                ev.user.pk,
                model.pk,
                ev.token_type,
                ev.prompt,
                ev.completion,
                ev.charge,
                *rates[model.pk],
                ops.adapt_datetimefield_value(ev.occurred_at),
                received,
                hold_field.get_db_prep_save(ev.hold_id, connection)
                if ev.hold_id
                else None,
                ev.application,
                ev.prompt_excerpt,
                ev.response_excerpt,
                ev.digest,
            )
        )
    return rows


def _rows_source(model, columns: list[str], rows: list[list]) -> tuple[str, list]:
    """The rows to INSERT, as SQL and parameters. On PostgreSQL one array per
    column, ``SELECT * FROM unnest(%s::type[], …)``: a short statement with a
    parameter per column, whatever the number of rows (a VALUES list of 1,000 rows
    has 17,000 placeholders, which the driver parses again on every call). Elsewhere
    a VALUES list. ``rows`` are in the order to insert (and to lock) them."""
    if connection.vendor == "postgresql":
        by_column = {f.column: f for f in model._meta.concrete_fields}
        casts = ", ".join(f"%s::{by_column[c].db_type(connection)}[]" for c in columns)
        arrays = [list(column) for column in zip(*rows, strict=True)]
        return f"SELECT * FROM unnest({casts})", arrays  # noqa: S608
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return "VALUES " + ", ".join([row] * len(rows)), [v for r in rows for v in r]


def _sql_value(value):
    """A key value as a raw-SQL parameter (dates as ISO text on every backend)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return connection.ops.adapt_datefield_value(value)
    return value


def _case_update(
    model,
    unique: tuple[str, ...],
    rows: dict[tuple, dict[str, int]],
    *,
    by_organization: bool = False,
    greatest: tuple[str, ...] = (),
) -> None:
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
        return
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
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@with_retries
def usage_record(*, key: ServiceKey, events: list[Any]) -> UsageResult:
    """Record a batch of at most 1,000 usage events, each exactly once."""
    if len(events) > MAX_BATCH:
        raise MeteringError(
            400,
            "invalid_request",
            f"At most {MAX_BATCH:,} events per request.",
            fields={"events": f"at most {MAX_BATCH:,} events"},
        )
    now = timezone.now()
    parsed = [_parse_event(i, raw, now) for i, raw in enumerate(events)]
    with transaction.atomic():
        return _record_batch(key, parsed, now)


def _record_batch(key: ServiceKey, parsed: list[_Event], now: dt.datetime):
    result = UsageResult([{} for _ in parsed])

    def reject(ev: _Event, code: str, detail: str) -> None:
        ev.error = (code, detail)

    live = [ev for ev in parsed if ev.error is None]
    # Repeats inside the batch: the first occurrence is processed, the others are
    # duplicates (same payload) or conflicts.
    first_by_id: dict[str, _Event] = {}
    repeats: list[_Event] = []
    for ev in live:
        if ev.event_id in first_by_id:
            repeats.append(ev)
        else:
            first_by_id[ev.event_id] = ev
    live = list(first_by_id.values())

    emails = {ev.raw["user"].strip().lower() for ev in live}
    users = {
        u.email: u
        for u in User.objects.select_related("organization")
        .only("email", "organization", "organization__store_prompt_excerpts")
        .filter(email__in=emails)
    }
    models = {
        m.key: m
        for m in AIModel.objects.filter(key__in={ev.raw["model"] for ev in live})
    }
    hold_ids = sorted({ev.hold_id for ev in live if ev.hold_id})
    holds = (
        {
            h["id"]: h
            for h in Hold.objects.filter(pk__in=hold_ids)
            .select_for_update()
            .order_by("id")
            .values(*_HOLD_FIELDS, "status")
        }
        if hold_ids
        else {}
    )

    to_insert: list[_Event] = []
    for ev in live:
        user = users.get(ev.raw["user"].strip().lower())
        if user is None:
            reject(ev, "unknown_user", f"No user with email {ev.raw['user']!r}.")
            continue
        if key.organization_id and user.organization_id != key.organization_id:
            reject(ev, "forbidden", "This service key cannot act for this user.")
            continue
        if user.organization_id is None:
            reject(ev, "forbidden", "This user is not in an Enterprise Account.")
            continue
        model = models.get(ev.raw["model"])
        if model is None:
            reject(ev, "unknown_model", f"No model {ev.raw['model']!r}.")
            continue
        if ev.hold_id:
            hold = holds.get(ev.hold_id)
            if (
                hold is None
                or hold["user_id"] != user.pk
                or hold["token_type"] != ev.token_type
            ):
                reject(ev, "invalid_hold", "No such hold for this user and token type.")
                continue
        ev.user, ev.model = user, model
        ev.charge = _charge(ev)
        keep = user.organization.store_prompt_excerpts
        ev.prompt_excerpt = (
            (ev.raw.get("prompt_excerpt") or "")[:EXCERPT_CHARS] if keep else ""
        )
        ev.response_excerpt = (
            (ev.raw.get("response_excerpt") or "")[:EXCERPT_CHARS] if keep else ""
        )
        to_insert.append(ev)

    inserted = _insert_events(_event_rows(to_insert, now))
    # Events already recorded (a retry, or a copy another batch wrote first) are
    # duplicates or conflicts whatever the checks above say of them now. The
    # insert's RETURNING tells which were written, so the common path needs no
    # lookup; the events it did not write are looked up in one query. An event
    # refused as another organization's stays refused (no probing of their ids).
    missing = [ev for ev in live if ev.event_id not in inserted]
    if missing:
        existing = dict(
            UsageEvent.objects.filter(
                event_id__in=[ev.event_id for ev in missing]
            ).values_list("event_id", "payload_digest")
        )
        for ev in missing:
            if ev.error and ev.error[0] == "forbidden":
                continue
            if ev.event_id in existing or ev.error is None:
                ev.error = (
                    ("duplicate", "")
                    if existing.get(ev.event_id) == ev.digest
                    else (
                        "conflict",
                        "This event_id was recorded with different data.",
                    )
                )
    recorded = [ev for ev in to_insert if ev.event_id in inserted]

    # Settle the open holds that recorded events name (each hold once).
    settling: dict[uuid.UUID, dict] = {}
    for ev in recorded:
        hold = holds.get(ev.hold_id) if ev.hold_id else None
        if hold and hold["status"] == Hold.Status.OPEN and ev.hold_id not in settling:
            settling[ev.hold_id] = hold
    released = _close_holds(list(settling.values()), Hold.Status.SETTLED, now)
    _add_usage(recorded, released)
    if recorded:
        # Auto-increase (SPEC §6.4) in the same transaction, on the counters just
        # updated: one query when nothing fires.
        auto_increase_for_batch(
            sorted(
                {
                    (ev.user.pk, ev.token_type, period_of(ev.occurred_at))
                    for ev in recorded
                }
            )
        )
        # The organization-level rows are written by every batch of the
        # organization, so they are written last, to be locked only until the commit.
        _add_rollups(recorded)

    for ev in parsed:
        if ev.error is None:
            result.results[ev.index] = {"event_id": ev.event_id, "status": "recorded"}
        elif ev.error[0] == "duplicate":
            result.results[ev.index] = {"event_id": ev.event_id, "status": "duplicate"}
        else:
            result.results[ev.index] = {
                "event_id": ev.event_id,
                "status": "rejected",
                "error": ev.error[0],
                "detail": ev.error[1],
            }
    for ev in repeats:
        first = first_by_id[ev.event_id]
        same = first.digest == ev.digest
        result.results[ev.index] = (
            {"event_id": ev.event_id, "status": "duplicate"}
            if same
            else {
                "event_id": ev.event_id,
                "status": "rejected",
                "error": "conflict",
                "detail": "This event_id appears twice in the batch with "
                "different data.",
            }
        )
    return result


def _add_usage(recorded: list[_Event], released: dict[tuple, int]) -> None:
    """Counters (used, and held released by settled holds) and daily rollups for
    the events this batch wrote."""
    if not recorded and not released:
        return
    used: dict[tuple, int] = defaultdict(int)
    daily: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for ev in recorded:
        used[
            (
                ev.user.organization_id,
                ev.user.pk,
                ev.token_type,
                period_of(ev.occurred_at),
            )
        ] += ev.charge
        day = ev.occurred_at.astimezone(dt.UTC).date()
        cell = daily[
            (ev.user.organization_id, ev.user.pk, ev.model.pk, ev.token_type, day)
        ]
        cell[0] += ev.charge
        cell[1] += 1

    _update_counters(used, released)
    if not daily:
        return
    _case_update(
        DailyUsage,
        ("user_id", "model_id", "token_type", "day"),
        {key: {"tokens": cell[0], "events": cell[1]} for key, cell in daily.items()},
        by_organization=True,
    )


def _add_rollups(recorded: list[_Event]) -> None:
    """The organization-level rollups for the events this batch wrote: usage per
    organization, model, type and day, and per organization, user and month (one
    row: each type's tokens, events and last day with usage, and their totals),
    keyed by the organization the event is recorded under."""
    if not recorded:
        return
    org_daily: dict[tuple, dict[str, int]] = defaultdict(
        lambda: {"tokens": 0, "events": 0}
    )
    monthly: dict[tuple, dict] = {}
    for ev in recorded:
        org = ev.user.organization_id
        day = ev.occurred_at.astimezone(dt.UTC).date()
        cell = org_daily[(org, ev.model.pk, ev.token_type, day)]
        cell["tokens"] += ev.charge
        cell["events"] += 1
        cell = monthly.setdefault(
            (org, ev.user.pk, day.replace(day=1)),
            # A type without usage in this batch adds nothing and has no last day
            # (NULL: the upsert keeps the row's own).
            {
                f"{prefix}{column}": None if column == "last_day" else 0
                for prefix in ("", "inference_", "embedding_")
                for column in ("tokens", "events", "last_day")
            },
        )
        for prefix in ("", f"{ev.token_type}_"):
            cell[f"{prefix}tokens"] += ev.charge
            cell[f"{prefix}events"] += 1
            last = cell[f"{prefix}last_day"]
            cell[f"{prefix}last_day"] = day if last is None else max(last, day)
    _case_update(
        MonthlyUsage,
        ("user_id", "month"),
        monthly,
        by_organization=True,
        greatest=("last_day", "inference_last_day", "embedding_last_day"),
    )
    # Last: every batch of the organization writes these rows, so they stay locked
    # only until the commit.
    _case_update(
        OrgDailyUsage,
        ("model_id", "token_type", "day"),
        org_daily,
        by_organization=True,
    )
