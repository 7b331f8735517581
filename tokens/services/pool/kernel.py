"""The pool kernel: the one place that decides whether a change of limits fits the
pool, and the one place that writes limits (docs/architecture.md, Three questions,
three places; the rule is in docs/product.md, Tokens: pool, limits and minimum).

Every change of limits is two steps:

1. **Plan** (``LimitPlan``): what changes, per user and token type (old limit, new
   limit, delta, source, note), the audit event each changed user gets, the pool
   effect per type (pool, allocated before and after, headroom), and the reasons it
   is refused (domain errors with their messages). Plans are computed by the
   functions of ``plans.py`` (and by the distribution engine) from numbers read
   beforehand; confirmation pages render a plan and change nothing.
2. **Apply** (``apply``): lock in the one order of ``tokens/locks.py`` (the
   organization, then the users' allocations), re-read and re-check against
   ``headroom``, then write the audit events and the allocation changes. A refused
   plan raises its first refusal before anything is written.

``headroom(organization, token_type)`` = this month's pool − allocated (negative when
a pool shrank below what is allocated): the only definition of "unallocated".
"""

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import Organization, User
from asksage_admin.lib.errors import Conflict, DomainError, OverAllocation
from tokens import locks, selectors
from tokens.models import Allocation, AllocationChange, TokenType

TYPES = selectors.TYPES


def fmt(n: int) -> str:
    return f"{n:,}"


def type_label(token_type: str) -> str:
    return TokenType(token_type).label.lower()


# --- the pool ------------------------------------------------------------------------


def pool_state(organization: Organization) -> dict[str, tuple[int, int]]:
    """(pool, allocated) per type for the current month: two queries."""
    pool = selectors.pools(organization)
    allocated = selectors.allocated(organization)
    return {t: (pool[t], allocated[t]) for t in TYPES}


def headroom(organization: Organization, token_type: str) -> int:
    """Pool − allocated this month (negative when a pool shrank)."""
    pool, allocated = pool_state(organization)[token_type]
    return pool - allocated


def headrooms(organization: Organization) -> dict[str, int]:
    """``headroom`` of every type, in the same two queries."""
    return {
        t: pool - allocated for t, (pool, allocated) in pool_state(organization).items()
    }


def over_allocation(needed: int, available: int, token_type: str) -> OverAllocation:
    """The refusal of a change that needs more than the headroom."""
    return OverAllocation(
        _(
            "Not enough unallocated %(type)s tokens: this needs %(needed)s but "
            "only %(available)s are unallocated."
        )
        % {
            "type": type_label(token_type),
            "needed": fmt(needed),
            "available": fmt(max(0, available)),
        }
    )


# --- the plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitChange:
    """One user's limit of one type: ``old`` → ``new``."""

    user: User
    token_type: str
    old: int
    new: int
    source: str
    note: str = ""

    @property
    def delta(self) -> int:
        return self.new - self.old


@dataclass(frozen=True)
class AuditEntry:
    """One audit event and the limit changes it covers (one per changed user, or
    one per increase for auto-increase)."""

    user: User
    action: str
    target: models.Model
    before: dict[str, Any]
    after: dict[str, Any]
    message: str = ""
    changes: tuple[LimitChange, ...] = ()


@dataclass(frozen=True)
class PoolEffect:
    """What a plan does to one type's pool."""

    token_type: str
    pool: int
    allocated_before: int
    allocated_after: int

    @property
    def net(self) -> int:
        return self.allocated_after - self.allocated_before

    @property
    def headroom(self) -> int:
        return self.pool - self.allocated_before

    @property
    def headroom_after(self) -> int:
        return self.pool - self.allocated_after


@dataclass(frozen=True)
class LimitPlan:
    """Everything one action would change, and why it would be refused."""

    organization: Organization
    actor: User | None
    entries: tuple[AuditEntry, ...]
    effects: dict[str, PoolEffect]
    refusals: tuple[DomainError, ...] = ()
    source: str = ""
    note: str = ""
    token_request: models.Model | None = None
    distribution_run: models.Model | None = None

    @property
    def changes(self) -> tuple[LimitChange, ...]:
        return tuple(c for entry in self.entries for c in entry.changes)

    @property
    def refused(self) -> bool:
        return bool(self.refusals)


def effects_of(
    state: dict[str, tuple[int, int]], changes: tuple[LimitChange, ...] | list
) -> dict[str, PoolEffect]:
    """The pool effect per type of ``changes`` on ``state`` (``pool_state``)."""
    net = {t: 0 for t in TYPES}
    for change in changes:
        net[change.token_type] += change.delta
    return {
        t: PoolEffect(
            token_type=t,
            pool=state[t][0],
            allocated_before=state[t][1],
            allocated_after=state[t][1] + net[t],
        )
        for t in TYPES
    }


def plan(
    *,
    organization: Organization,
    actor: User | None,
    entries: list[AuditEntry],
    state: dict[str, tuple[int, int]],
    refusals: list[DomainError] | None = None,
    check_pool: bool = True,
    **fields: Any,
) -> LimitPlan:
    """A ``LimitPlan`` of ``entries`` on ``state``; with ``check_pool`` an increase
    beyond a type's headroom adds the standard refusal (when the caller found no
    refusal of its own)."""
    entries = tuple(entries)
    changes = tuple(c for e in entries for c in e.changes)
    effects = effects_of(state, changes)
    refusals = list(refusals or [])
    if check_pool and not refusals:
        for effect in effects.values():
            if effect.net > 0 and effect.net > effect.headroom:
                refusals.append(
                    over_allocation(effect.net, effect.headroom, effect.token_type)
                )
    return LimitPlan(
        organization=organization,
        actor=actor,
        entries=entries,
        effects=effects,
        refusals=tuple(refusals),
        **fields,
    )


def limit_entry(
    *,
    user: User,
    action: str,
    changes: list[LimitChange],
    target: models.Model | None = None,
    before: dict | None = None,
    after: dict | None = None,
    message: str = "",
) -> AuditEntry:
    """An audit entry whose before/after default to the changed limits."""
    return AuditEntry(
        user=user,
        action=action,
        target=target if target is not None else user,
        before=before
        if before is not None
        else {f"{c.token_type}_limit": c.old for c in changes},
        after=after
        if after is not None
        else {f"{c.token_type}_limit": c.new for c in changes},
        message=message,
        changes=tuple(changes),
    )


def limit_dict(limits: dict[str, int]) -> dict[str, int]:
    return {f"{t}_limit": n for t, n in limits.items()}


def changes_between(
    user: User, before: dict, after: dict, source: str, note: str = ""
) -> list[LimitChange]:
    """The changes from limits ``before`` to ``after`` (types that differ)."""
    return [
        LimitChange(user, t, before[t], after[t], source, note)
        for t in after
        if after[t] != before[t]
    ]


# --- locks and reads -----------------------------------------------------------------


def lock_organization(organization: Organization) -> Organization:
    """Step 1 of the lock order (``FOR NO KEY UPDATE``)."""
    return locks.lock_organization(organization.pk)


def lock_allocations(users: list[User]) -> dict[tuple[int, str], Allocation]:
    """Step 3: each user's allocation rows, created when missing, locked in id
    order."""
    user_ids = sorted({u.pk for u in users})
    by_id = {u.pk: u for u in users}
    existing = set(
        Allocation.objects.filter(user_id__in=user_ids).values_list(
            "user_id", "token_type"
        )
    )
    missing = [
        Allocation(
            organization_id=by_id[uid].organization_id, user_id=uid, token_type=t
        )
        for uid in user_ids
        for t in TYPES
        if (uid, t) not in existing
    ]
    if missing:
        Allocation.objects.bulk_create(missing, ignore_conflicts=True)
    return {(a.user_id, a.token_type): a for a in locks.lock_allocations(user_ids)}


def limits_of(user: User, allocations) -> dict[str, int]:
    return {t: allocations[(user.pk, t)].limit for t in TYPES}


# --- apply ---------------------------------------------------------------------------


def _recheck(plan: LimitPlan, allocations: dict) -> None:
    """Under the locks: every change starts from the limit it was planned on, and
    the net increase of each type fits ``headroom``."""
    seen = set()
    net = {t: 0 for t in TYPES}
    for change in plan.changes:
        key = (change.user.pk, change.token_type)
        if key not in seen:
            seen.add(key)
            if allocations[key].limit != change.old:
                raise Conflict(
                    _(
                        "The limits of %(email)s changed meanwhile; reload and try "
                        "again. Nothing was changed."
                    )
                    % {"email": change.user.email}
                )
        net[change.token_type] += change.delta
    for token_type, increase in net.items():
        if increase > 0:
            available = headroom(plan.organization, token_type)
            if increase > available:
                raise over_allocation(increase, available, token_type)


def apply(plan: LimitPlan) -> list[AllocationChange]:
    """Execute ``plan`` inside the caller's transaction: refuse it when it is
    refused, lock (organization, then allocations), re-check, write one audit event
    per entry and the allocation changes linked to it. Returns the changes."""
    if plan.refusals:
        raise plan.refusals[0]
    organization = plan.organization
    lock_organization(organization)
    users = list({c.user.pk: c.user for c in plan.changes}.values())
    allocations = lock_allocations(users) if users else {}
    _recheck(plan, allocations)
    events = audit.record_many(
        [
            audit.build(
                action=entry.action,
                actor=plan.actor,
                organization=organization,
                target=entry.target,
                before=entry.before,
                after=entry.after,
                message=entry.message,
            )
            for entry in plan.entries
        ]
    )
    rows = [
        (change, event)
        for entry, event in zip(plan.entries, events, strict=True)
        for change in entry.changes
    ]
    return _write(plan, rows, allocations)


def _write(plan: LimitPlan, rows, allocations) -> list[AllocationChange]:
    """The limits and their AllocationChange rows, in a constant number of
    queries; rows are applied in order (a later row for the same allocation
    continues from the earlier one)."""
    changes, touched = [], {}
    now = timezone.now()
    for change, event in rows:
        allocation = allocations[(change.user.pk, change.token_type)]
        delta = change.new - allocation.limit
        if delta == 0:
            continue
        allocation.limit = change.new
        touched[allocation.pk] = allocation
        changes.append(
            AllocationChange(
                organization_id=change.user.organization_id,
                user=change.user,
                token_type=change.token_type,
                delta=delta,
                new_limit=change.new,
                source=change.source,
                actor=plan.actor,
                note=change.note[:500],
                audit_event=event,
                token_request=plan.token_request,
                distribution_run=plan.distribution_run,
                time=now,
            )
        )
    Allocation.objects.bulk_update(list(touched.values()), ["limit"])
    AllocationChange.objects.bulk_create(changes)
    return changes
