"""Auto-increase (docs/product.md, Token Distribution, auto-increase), called from usage
recording inside the usage batch's transaction: one query finds the counters past their
organization's lowest trigger; organizations are locked only when an increase is due.

Lock order (``tokens/locks.py``): the organization and the allocations come
before the holds and counters the batch has already locked when it finds an
increase due, so it then asks the batch to start again with them locked first
(``LockFirst``); the batch's second run takes them before anything else."""

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Organization, User
from asksage_admin.lib.periods import period_of
from tokens.locks import LockFirst, lock_organizations
from tokens.models import Allocation, DistributionPolicy, UsageCounter, UserOverride
from tokens.services.distribution._common import (
    Action,
    BumpMode,
    Source,
    _ceiling,
    _decimal,
    _plain,
)
from tokens.services.pool import kernel
from tokens.services.pool.kernel import (
    AuditEntry,
    LimitChange,
    fmt,
    headrooms,
    lock_allocations,
    type_label,
)

_POLICY = "organization__distribution_policy__"
_OVERRIDE = "user__distribution_override__"


def _percent(value) -> str:
    return f"{_plain(value)}%"


def _reached(triggers, used: int, limit: int) -> Decimal | None:
    """The highest trigger ≤ usage % (used / limit × 100), exactly."""
    if limit <= 0:
        return None
    hit = [_decimal(t) for t in triggers or [] if used * 100 >= _decimal(t) * limit]
    return max(hit) if hit else None


def _fires(
    *,
    triggers,
    cooldown_minutes: int,
    ceiling: int | None,
    exempt: bool,
    limit: int,
    used: int,
    last_at: dt.datetime | None,
    last_tier: Decimal | None,
    now: dt.datetime,
) -> Decimal | None:
    """The tier that fires now, or None: at or past a trigger, not exempt, below
    the ceiling, and the cooldown passed or a higher tier reached within it."""
    if exempt or (ceiling is not None and limit >= ceiling):
        return None
    reached = _reached(triggers, used, limit)
    if reached is None:
        return None
    cooling = last_at is not None and now - last_at < dt.timedelta(
        minutes=cooldown_minutes
    )
    if cooling and last_tier is not None and reached <= last_tier:
        return None
    return reached


def _bump_rate(policy: DistributionPolicy, reached: Decimal) -> Decimal:
    """Percent (or flat tokens) of the bump: the tier's own percent in tiers mode."""
    if policy.bump_mode == BumpMode.TIERS:
        tiers = [_decimal(t) for t in policy.triggers]
        bumps = list(policy.tier_bumps or [])
        index = tiers.index(reached)
        if index < len(bumps):
            return _decimal(bumps[index])
    return _decimal(policy.bump_value)


def _bump(policy: DistributionPolicy, reached: Decimal, limit: int, free: int) -> int:
    """The bump before the ceiling and pool caps (docs/product.md, Token
    Distribution: the four bump modes)."""
    rate = _bump_rate(policy, reached)
    if policy.bump_mode == BumpMode.FLAT:
        return int(rate)
    if policy.bump_mode == BumpMode.PERCENT_POOL:
        bump = math.ceil(max(0, free) * rate / 100)
        return min(bump, limit) if policy.bump_cap_at_current else bump
    return math.ceil(limit * rate / 100)


def _candidates_sql(organizations: int, users: int, types: int) -> str:
    """The candidates query for ``users`` user ids and ``types`` token types, as
    SQL: it runs in every usage batch, while the batch holds its counters' locks,
    so it is not rebuilt by the ORM each time (~4 ms of Python per batch).

    The counters past their organization's lowest trigger are found first (a
    materialized CTE: counters, their allocations and policies, by their unique
    keys), and only those few rows are joined to the organization, the user and the
    override. Joining everything first made PostgreSQL hash the whole user and
    allocation tables: 14 ms for a 500-event batch at 10,000 users, now ~4."""
    qn = connection.ops.quote_name

    def table(model) -> str:
        return qn(model._meta.db_table)

    if connection.vendor == "postgresql":
        lowest = "(p.triggers ->> 0)::numeric"
        materialized = "MATERIALIZED "
    else:
        lowest = "CAST(json_extract(p.triggers, '$[0]') AS REAL)"
        materialized = ""
    limit = qn("limit")
    in_organizations = ", ".join(["%s"] * organizations)
    in_users = ", ".join(["%s"] * users)
    in_types = ", ".join(["%s"] * types)
    # Only quoted identifiers and placeholders are formatted in; values are params.
    return (
        f"WITH hot AS {materialized}("  # noqa: S608
        f"SELECT c.user_id, c.token_type, c.used, a.organization_id, a.{limit}, "
        "a.last_auto_increase_at, a.last_auto_increase_tier, p.triggers, "
        "p.cooldown_minutes, p.ceiling "
        f"FROM {table(UsageCounter)} c "
        # The counter of the organization the user is in now (its allocation's):
        # usage charged to one they left never raises their limit here.
        f"JOIN {table(Allocation)} a ON a.user_id = c.user_id "
        "AND a.token_type = c.token_type AND a.organization_id = c.organization_id "
        f"JOIN {table(DistributionPolicy)} p ON p.organization_id = a.organization_id "
        # Counters are keyed (organization, user, type, period): the organizations
        # first, so that the lookup is a range of that key's index.
        f"WHERE c.organization_id IN ({in_organizations}) AND c.period = %s "
        f"AND c.user_id IN ({in_users}) "
        f"AND c.token_type IN ({in_types}) AND a.{limit} > 0 "
        f"AND p.auto_increase_enabled AND c.used * 100 >= {lowest} * a.{limit}) "
        f"SELECT h.user_id, h.organization_id, h.token_type, h.{limit}, h.used, "
        "h.last_auto_increase_at, h.last_auto_increase_tier, h.triggers, "
        "h.cooldown_minutes, h.ceiling, o.organization_id, o.ceiling, "
        "o.exempt_auto_increase FROM hot h "
        f"JOIN {table(Organization)} org ON org.id = h.organization_id "
        f"JOIN {table(User)} u ON u.id = h.user_id "
        f"LEFT JOIN {table(UserOverride)} o ON o.user_id = h.user_id "
        "WHERE org.status = %s AND u.organization_id = h.organization_id "
        "AND u.is_paid AND NOT u.is_banned"
    )


_CANDIDATE_COLUMNS = (
    "user_id",
    "organization_id",
    "token_type",
    "limit",
    "used",
    "last_auto_increase_at",
    "last_auto_increase_tier",
    _POLICY + "triggers",
    _POLICY + "cooldown_minutes",
    _POLICY + "ceiling",
    _OVERRIDE + "organization_id",
    _OVERRIDE + "ceiling",
    _OVERRIDE + "exempt_auto_increase",
)


def _candidates(
    organizations: set[int], keys: set[tuple[int, str]], period: dt.date
) -> list[dict]:
    """ONE query: this month's counters of these users that reached at least their
    organization's lowest trigger, with what deciding needs."""
    users = sorted({u for u, _t in keys})
    types = sorted({t for _u, t in keys})
    params = [
        *sorted(organizations),
        connection.ops.adapt_datefield_value(period),
        *users,
        *types,
        Organization.Status.ACTIVE.value,
    ]
    # Values as the ORM would return them (JSON decoded, dates and decimals typed).
    convert = {
        "last_auto_increase_at": Allocation._meta.get_field("last_auto_increase_at"),
        "last_auto_increase_tier": Allocation._meta.get_field(
            "last_auto_increase_tier"
        ),
        _POLICY + "triggers": DistributionPolicy._meta.get_field("triggers"),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            _candidates_sql(len(organizations), len(users), len(types)), params
        )
        rows = [
            dict(zip(_CANDIDATE_COLUMNS, row, strict=True)) for row in cursor.fetchall()
        ]
    for name, field in convert.items():
        column = field.get_col(field.model._meta.db_table)
        converters = [
            *connection.ops.get_db_converters(column),
            *field.get_db_converters(connection),
        ]
        for row in rows:
            for converter in converters:
                row[name] = converter(row[name], column, connection)
    return [r for r in rows if (r["user_id"], r["token_type"]) in keys]


def _row_fires(row: dict, now: dt.datetime) -> bool:
    # An override left from another organization (the user moved) does not apply.
    own = row[_OVERRIDE + "organization_id"] == row["organization_id"]
    override_ceiling = row[_OVERRIDE + "ceiling"] if own else None
    reached = _fires(
        triggers=row[_POLICY + "triggers"],
        cooldown_minutes=row[_POLICY + "cooldown_minutes"],
        ceiling=override_ceiling
        if override_ceiling is not None
        else row[_POLICY + "ceiling"],
        exempt=own and bool(row[_OVERRIDE + "exempt_auto_increase"]),
        limit=row["limit"],
        used=row["used"] or 0,
        last_at=row["last_auto_increase_at"],
        last_tier=row["last_auto_increase_tier"],
        now=now,
    )
    return reached is not None


_MODE_TEXT = {
    BumpMode.PERCENT_CURRENT: gettext_lazy("%(value)s of the current limit"),
    BumpMode.FLAT: gettext_lazy("a flat %(value)s tokens"),
    BumpMode.PERCENT_POOL: gettext_lazy("%(value)s of the remaining unallocated pool"),
    BumpMode.TIERS: gettext_lazy("%(value)s of the current limit for this tier"),
}


def _pool_left(organization_id: int, keys: list[tuple[int, str]]) -> bool:
    """Whether the organization has unallocated tokens of a type due for an
    increase: checked before locking, so an empty pool never serializes the
    organization's usage."""
    organization = Organization.objects.get(pk=organization_id)
    types = {t for _u, t in keys}
    return any(v > 0 for t, v in headrooms(organization).items() if t in types)


def lock_for_auto_increase(organization_ids: set[int], users: list[User]) -> None:
    """The first locks of a usage batch that an increase is due in: the
    organizations (step 1 of the lock order), then the allocations of the batch's
    users in them (step 3)."""
    locked = lock_organizations(organization_ids)
    members = [u for u in users if u.organization_id in {o.pk for o in locked}]
    if members:
        lock_allocations(members)


def _auto_increase_org(
    organization_id: int, keys: list[tuple[int, str]], now: dt.datetime
) -> int:
    """The increases due in one organization, which the batch has locked."""
    organization = Organization.objects.get(pk=organization_id)
    if not organization.is_active:
        return 0
    policy = DistributionPolicy.objects.filter(organization=organization).first()
    if policy is None or not policy.auto_increase_enabled:
        return 0
    users = {
        u.pk: u
        for u in User.objects.filter(
            pk__in={u for u, _t in keys},
            organization=organization,
            is_paid=True,
            is_banned=False,
        )
    }
    allocations = lock_allocations(list(users.values()))
    overrides = {
        o.user_id: o
        for o in UserOverride.objects.filter(
            organization=organization, user_id__in=list(users)
        )
    }
    period = period_of(now)
    used = {
        (u, t): n
        for u, t, n in UsageCounter.objects.filter(
            organization=organization, user_id__in=list(users), period=period
        ).values_list("user_id", "token_type", "used")
    }
    free = headrooms(organization)
    increases = 0
    entries: list[AuditEntry] = []
    fired = []
    for user_id, token_type in sorted(keys):
        if user_id not in users:
            continue
        allocation = allocations[(user_id, token_type)]
        override = overrides.get(user_id)
        ceiling = _ceiling(policy, override)
        reached = _fires(
            triggers=policy.triggers,
            cooldown_minutes=policy.cooldown_minutes,
            ceiling=ceiling,
            exempt=override is not None and override.exempt_auto_increase,
            limit=allocation.limit,
            used=used.get((user_id, token_type), 0),
            last_at=allocation.last_auto_increase_at,
            last_tier=allocation.last_auto_increase_tier,
            now=now,
        )
        if reached is None or free[token_type] <= 0:
            continue
        wanted = _bump(policy, reached, allocation.limit, free[token_type])
        bump = min(wanted, free[token_type])
        if ceiling is not None:
            bump = min(bump, ceiling - allocation.limit)
        if bump <= 0:
            continue
        increases += 1
        before = allocation.limit
        after = before + bump
        free[token_type] -= bump
        rate = _bump_rate(policy, reached)
        limited = ""
        if bump < wanted:
            limited = (
                _(" (limited by the ceiling of %(n)s)") % {"n": fmt(ceiling)}
                if ceiling is not None and after == ceiling
                else _(" (limited by the unallocated pool)")
            )
        message = _(
            "Usage of %(used)s %(type)s tokens reached the %(trigger)s trigger of "
            "the %(limit)s limit: +%(bump)s, %(mode)s%(limited)s."
        ) % {
            "used": fmt(used.get((user_id, token_type), 0)),
            "type": type_label(token_type),
            "trigger": _percent(reached),
            "limit": fmt(before),
            "bump": fmt(bump),
            "mode": str(_MODE_TEXT[policy.bump_mode])
            % {
                "value": fmt(int(rate))
                if policy.bump_mode == BumpMode.FLAT
                else _percent(rate)
            },
            "limited": limited,
        }
        entries.append(
            AuditEntry(
                user=users[user_id],
                action=Action.AUTO_INCREASE,
                target=users[user_id],
                before={f"{token_type}_limit": before},
                after={f"{token_type}_limit": after},
                message=message,
                changes=(
                    LimitChange(
                        users[user_id],
                        token_type,
                        before,
                        after,
                        Source.AUTO_INCREASE,
                        message,
                    ),
                ),
            )
        )
        fired.append((allocation, reached))
    if entries:
        kernel.apply(
            kernel.plan(
                organization=organization,
                actor=None,
                entries=entries,
                state=kernel.pool_state(organization),
                source=Source.AUTO_INCREASE,
            )
        )
    for allocation, reached in fired:
        allocation.last_auto_increase_at = now
        allocation.last_auto_increase_tier = reached
        allocation.save(
            update_fields=["last_auto_increase_at", "last_auto_increase_tier"]
        )
    return increases


def auto_increase_for_batch(
    counters: list[tuple[int, str, dt.date]],
    locked: set[int] = frozenset(),
    *,
    organizations: set[int],
    now: dt.datetime | None = None,
) -> int:
    """Raise the limits of the counters a usage batch just increased (docs/product.md,
    Token Distribution, auto-increase).

    Called inside the batch's transaction, after the counters were updated, with
    their (user_id, token_type, period) keys, the organizations they are charged
    to (``organizations``) and the organizations the batch locked first
    (``lock_for_auto_increase``). The common path is one query that finds
    nothing. When an increase is due in an organization with a pool left that the
    batch has not locked, raises ``LockFirst`` naming it: the batch starts again
    with it locked first, and everything is re-read under the lock.
    ``now`` is the batch's own instant: a batch that began in the last moment of
    a month is judged in that month even if the clock has passed the edge since.
    Returns the number of increases."""
    now = now or timezone.now()
    period = period_of(now)
    keys = {(u, str(t)) for u, t, p in counters if p == period}
    if not keys:
        return 0
    due = [
        row for row in _candidates(organizations, keys, period) if _row_fires(row, now)
    ]
    if not due:
        return 0
    by_org: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in due:
        by_org[row["organization_id"]].append((row["user_id"], row["token_type"]))
    missing = {o for o in by_org if o not in locked and _pool_left(o, by_org[o])}
    if missing:
        raise LockFirst(organizations=missing | set(locked), what="auto-increase")
    by_org = {o: keys for o, keys in by_org.items() if o in locked}
    return sum(
        _auto_increase_org(org_id, by_org[org_id], now) for org_id in sorted(by_org)
    )
