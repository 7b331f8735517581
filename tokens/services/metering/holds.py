"""Holds: authorize (reserve tokens), release, expiry, and the balance."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery, Sum
from django.utils import timezone

from accounts.emails import canonical_email
from accounts.models import ServiceKey
from asksage_admin.lib.errors import Conflict, LimitExceeded, NotFound
from asksage_admin.lib.periods import label, next_period, period_of
from tokens.locks import lock_holds
from tokens.models import Allocation, Hold, OrgDailyUsage, UsageCounter
from tokens.services.metering import hot
from tokens.services.metering._common import (
    resolve_user,
    resolve_user_and_model,
    with_retries,
)
from tokens.services.metering.counters import (
    _HOLD_FIELDS,
    _close_holds,
    _ensure_counters,
    _expire_due,
    _sql_value,
)


def _limit_subquery():
    return Subquery(
        Allocation.objects.filter(
            organization_id=OuterRef("organization_id"),
            user_id=OuterRef("user_id"),
            token_type=OuterRef("token_type"),
        ).values("limit")[:1]
    )


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


def _remaining(org_id: int, user_id: int, token_type: str, period: dt.date) -> int:
    """Limit − used − held of the user's counter in ``org_id`` (a counter is per
    organization: usage charged to one the user left is not counted here)."""
    row = (
        UsageCounter.objects.filter(
            organization_id=org_id,
            user_id=user_id,
            token_type=token_type,
            period=period,
        )
        .annotate(limit=_limit_subquery())
        .values("used", "held", "limit")
        .first()
    )
    if row is None:
        limit = (
            Allocation.objects.filter(
                organization_id=org_id, user_id=user_id, token_type=token_type
            )
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
    returns the same hold.

    Lock order (``tokens/locks.py``): holds before counters. A conditional UPDATE
    that does not fit may still leave the counter row locked (PostgreSQL keeps
    the lock it took to re-check a row another transaction had just changed), so
    the lazy expiry of the user's holds never follows it in the same transaction:
    the first try rolls back and a second one expires first, then reserves."""
    try:
        with transaction.atomic():
            return _authorize(
                key, user_email, model_key, token_type, tokens, request_id, False
            )
    except _ExpireFirst:
        with transaction.atomic():
            return _authorize(
                key, user_email, model_key, token_type, tokens, request_id, True
            )


class _ExpireFirst(Exception):
    """The first try of an authorization did not fit: roll back, expire first."""


def _authorize(
    key: ServiceKey,
    user_email: str,
    model_key: str,
    token_type: str,
    tokens: int,
    request_id: str,
    expire_first: bool,
) -> Authorization:
    # Whether this request_id was seen, the user and the model: one round trip.
    existing, member = hot.run_together(
        hot.hold_id_sql(key.pk, request_id),
        hot.member_and_model_sql(canonical_email(user_email), model_key),
    )
    if existing.rows:  # a retry: the same request_id returns its hold
        existing = Hold.objects.select_related("user").get(
            pk=hot.uuid_of(existing.rows[0][0])
        )
        if (
            existing.user.email != canonical_email(user_email)
            or existing.tokens != tokens
            or existing.token_type != token_type
        ):
            raise Conflict(
                "This request_id was already used for a different authorization."
            )
        return Authorization(
            existing,
            _remaining(
                existing.organization_id, existing.user_id, token_type, existing.period
            ),
        )
    user, model_id = resolve_user_and_model(
        key, model_key, hot.member_and_model_of(member.rows)
    )
    now = timezone.now()
    period = period_of(now)
    # The hold first: the counter row, which every request of this user
    # updates, is then locked only from the conditional UPDATE to the commit.
    # A refusal rolls the hold back with the rest.
    hold = Hold(
        organization_id=user.organization_id,
        user_id=user.pk,
        service_key_id=key.pk,
        model_id=model_id,
        token_type=token_type,
        period=period,
        tokens=tokens,
        request_id=request_id,
        expires_at=now + dt.timedelta(seconds=settings.HOLD_TTL_SECONDS),
        created_at=now,
    )
    insert = hot.insert_sql(hold)
    if expire_first:
        hot.run_together(insert)
        # Not enough left, or no counter yet this month: give back this user's
        # holds past their time (lazy expiry: a stale hold matters only when
        # its tokens are needed, so a granted request skips this query), create
        # the counter if missing, and try again. This authorization's own hold
        # is not given back: its tokens are not held yet.
        _expire_due(
            Hold.objects.filter(user_id=user.pk, token_type=token_type).exclude(
                pk=hold.pk
            ),
            now,
        )
        _ensure_counters({(user.organization_id, user.pk, token_type, period)})
        insert = None
    # The hold and the reservation: one round trip.
    granted = _reserve(
        user.organization_id, user.pk, token_type, period, tokens, after=insert
    )
    hot.inserted(hold)
    if granted is None and not expire_first:
        raise _ExpireFirst
    if granted is None:
        remaining = _remaining(user.organization_id, user.pk, token_type, period)
        raise LimitExceeded(
            f"Only {remaining:,} {token_type} tokens remain this month "
            f"({label(period)}); {tokens:,} were asked for.",
            remaining=remaining,
        )
    return Authorization(hold, granted)


def _reserve(
    org_id: int,
    user_id: int,
    token_type: str,
    period: dt.date,
    tokens: int,
    *,
    after: hot.Statement | None = None,
) -> int | None:
    """The conditional update (docs/architecture.md, Concurrency and locks) on the
    user's counter in ``org_id``: held += tokens where used + held + tokens ≤ limit (the
    limit in that organization). Returns the tokens remaining after it, None when
    nothing was updated (no counter row, or not enough left). ``after``: a
    statement to run first, in the same round trip."""
    qn = connection.ops.quote_name
    counters = qn(UsageCounter._meta.db_table)
    limit = (
        f"(SELECT a.{qn('limit')} FROM {qn(Allocation._meta.db_table)} a "  # noqa: S608
        "WHERE a.organization_id = %s AND a.user_id = %s AND a.token_type = %s)"
    )
    # Only quoted identifiers and placeholders are formatted in; values are params.
    sql = (
        f"UPDATE {counters} SET held = held + %s "  # noqa: S608
        "WHERE organization_id = %s AND user_id = %s AND token_type = %s "
        "AND period = %s "
        f"AND used + held + %s <= COALESCE({limit}, 0) "
        f"RETURNING used, held, {limit}"
    )
    key = (org_id, user_id, token_type)
    *_, reserved = hot.run_together(
        after, (sql, [tokens, *key, _sql_value(period), tokens, *key, *key])
    )
    if not reserved.rows:
        return None
    used, held, limit_value = reserved.rows[0]
    return max(0, (limit_value or 0) - used - held)


# --- release and expiry ------------------------------------------------------------


def _scoped_hold(key: ServiceKey, hold_id) -> Hold:
    try:
        hold_uuid = uuid.UUID(str(hold_id))
    except ValueError as error:
        raise NotFound("No such hold.", code="unknown_hold") from error
    holds = Hold.objects.filter(pk=hold_uuid)
    if key.organization_id:
        holds = holds.filter(organization_id=key.organization_id)
    hold = lock_holds(holds).values(*_HOLD_FIELDS, "status").first()
    if hold is None:
        raise NotFound("No such hold.", code="unknown_hold")
    return hold


@with_retries
def hold_release(*, key: ServiceKey, hold_id) -> int:
    """Give a hold's tokens back; returns how many (0 if it was no longer open)."""
    with transaction.atomic():
        hold = _scoped_hold(key, hold_id)
        if hold["status"] != Hold.Status.OPEN:
            return 0
        _close_holds([hold], Hold.Status.RELEASED, timezone.now())
        return hold["tokens"]


@with_retries
def holds_expire(*, now: dt.datetime | None = None) -> int:
    """Expire every open hold past its time (the scheduled form of lazy expiry)."""
    with transaction.atomic():
        return _expire_due(Hold.objects.all(), now or timezone.now())


# --- balance -----------------------------------------------------------------------


def balance(*, key: ServiceKey, user_email: str, token_type: str) -> dict[str, Any]:
    """The user's month (limit, used, held) and what is left of the organization's
    pool: the pool less the month's usage (the organization's daily rollup: a few
    rows per day) and its open holds. No read grows with the organization."""
    from tokens.selectors.pool import pools

    user = resolve_user(key, user_email)
    period = period_of()
    org_id = user.organization_id
    row = (
        UsageCounter.objects.filter(
            organization_id=org_id,
            user_id=user.pk,
            token_type=token_type,
            period=period,
        )
        .annotate(limit=_limit_subquery())
        .values("limit", "used", "held")
        .first()
    ) or {
        "limit": Allocation.objects.filter(
            organization_id=org_id, user_id=user.pk, token_type=token_type
        )
        .values_list("limit", flat=True)
        .first()
    }
    limit, used, held = (row.get(k) or 0 for k in ("limit", "used", "held"))
    org_used = OrgDailyUsage.objects.filter(
        organization_id=org_id,
        day__gte=period,
        day__lt=next_period(period),
        token_type=token_type,
    ).aggregate(total=Sum("tokens"))["total"]
    org_held = Hold.objects.filter(
        status=Hold.Status.OPEN,
        organization_id=org_id,
        token_type=token_type,
        period=period,
    ).aggregate(total=Sum("tokens"))["total"]
    pool = pools(org_id, period)[token_type]
    return {
        "period": label(period),
        "limit": limit,
        "used": used,
        "held": held,
        "remaining": max(0, limit - used - held),
        "overage": max(0, used + held - limit),
        "org_remaining": max(0, pool - (org_used or 0) - (org_held or 0)),
    }
