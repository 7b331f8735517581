"""Usage events: shape checks (no database), charge, and the rows of the events
table with their one INSERT … ON CONFLICT DO NOTHING RETURNING."""

import datetime as dt
import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from tokens.models import AIModel, TokenType, UsageEvent
from tokens.services.metering._common import FUTURE_SKEW, MAX_ID, TYPES
from tokens.services.metering.counters import _rows_source


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
    # The organization charged and whose scope the event_id is in (None: none).
    organization_id: int | None = None

    @property
    def scope(self) -> tuple[int | None, str]:
        """The event's idempotency key within its reporter's scope."""
        return (self.organization_id, self.event_id)

    @property
    def day(self) -> dt.date:
        """The UTC day it occurred on: the day of every rollup it adds to."""
        return self.occurred_at.astimezone(dt.UTC).date()


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
    "org_key",
]


def _insert_events(rows: list[tuple]) -> set[tuple[int, str]]:
    """INSERT … ON CONFLICT (organization, org_key, event_id) DO NOTHING RETURNING
    organization, event_id: the (organization, event_id) this batch actually wrote
    (a concurrent copy may have written the others; one batch has one ``org_key``).
    ``rows`` are prepared values in ``_INSERT_FIELDS`` order (``_event_rows``)."""
    if not rows:
        return set()
    meta = UsageEvent._meta
    fields = [meta.get_field(name) for name in _INSERT_FIELDS]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    source, params = _rows_source(
        UsageEvent,
        [f.column for f in fields],
        sorted(rows),  # by event_id, then organization
    )
    # Only quoted identifiers and placeholders are formatted in; values are params.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) {source} "
        f"ON CONFLICT ({qn('organization_id')}, {qn('org_key')}, {qn('event_id')}) "
        f"DO NOTHING RETURNING {qn('organization_id')}, {qn('event_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(r[0], r[1]) for r in cursor.fetchall()}


def _event_rows(
    events: list[_Event], now: dt.datetime, *, org_key: bool
) -> list[tuple]:
    """The values of each event's row, in ``_INSERT_FIELDS`` order, prepared for
    the database as the fields would (without building model instances: a batch
    has up to 1,000). ``org_key``: reported with a key bound to the organization."""
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
                ev.organization_id,
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
                org_key,
            )
        )
    return rows
