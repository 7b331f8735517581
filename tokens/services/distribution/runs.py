"""Distribution runs (docs/product.md, Token Distribution): the plan (the Preview, reads
only) and the run that applies it under the locks. Reclamation, floors and the equal
share, in the order and with the rules of the package docstring."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import Organization, User
from accounts.policy import access_organization_for_admin
from asksage_admin.lib.periods import period_of
from tokens.models import (
    Allocation,
    DistributionPolicy,
    DistributionRun,
    UsageCounter,
    UserOverride,
)
from tokens.services.distribution._common import (
    Action,
    Source,
    _ceiling,
)
from tokens.services.distribution.policy import _policy_for_read, policy_ensure
from tokens.services.pool import kernel
from tokens.services.pool.kernel import (
    TYPES,
    AuditEntry,
    LimitChange,
    headrooms,
    lock_allocations,
    lock_organization,
)

# --- floors and ceilings of one user -----------------------------------------------


def _floor(policy, override, token_type: str) -> int:
    """The floor the platform raises to and reclaims down to (module docstring)."""
    floor = (
        override.floor
        if override is not None and override.floor is not None
        else policy.floor(token_type)
    )
    ceiling = _ceiling(policy, override)
    if ceiling is not None:
        floor = min(floor, ceiling)
    return max(floor, settings.MIN_USER_TOKENS)


def floors_for(organization: Organization, users: list[User]) -> dict[int, dict]:
    """Each user's floor per token type (override, else policy, never below the
    platform minimum): what a reactivation grants, as far as the pool allows."""
    policy = _policy_for_read(organization)
    overrides = {
        o.user_id: o
        for o in UserOverride.objects.filter(
            organization=organization, user_id__in=[u.pk for u in users]
        )
    }
    return {
        u.pk: {t: _floor(policy, overrides.get(u.pk), t) for t in TYPES} for u in users
    }


def _round_up_1000(n: int) -> int:
    return -(-n // 1000) * 1000


def reclaimed_limit(peak: int, headroom_percent: int, floor: int) -> int:
    """max(floor, peak × (1 + headroom %), rounded up to 1,000)."""
    return max(floor, _round_up_1000(-(-peak * (100 + headroom_percent) // 100)))


# --- plans and runs --------------------------------------------------------------


@dataclass(frozen=True)
class PlanChange:
    user_id: int
    email: str
    token_type: str
    current: int
    usage: int
    new_limit: int
    delta: int
    reason: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[PlanChange, ...]
    totals: dict[str, dict]
    shortfall: dict[str, int]

    def source_of(self, change: PlanChange) -> str:
        return REASON_SOURCES[change.reason]


REASON_FLOOR = "floor"
REASON_RECLAMATION = "reclamation"
REASON_EQUAL = "equal share"
REASON_SOURCES = {
    REASON_FLOOR: Source.DISTRIBUTION,
    REASON_RECLAMATION: Source.RECLAMATION,
    REASON_EQUAL: Source.DISTRIBUTION,
}


@dataclass
class _Member:
    user_id: int
    email: str
    limits: dict[str, int]
    used: dict[str, int]
    peak: dict[str, int]
    override: UserOverride | None


def _members(
    organization: Organization,
    policy: DistributionPolicy,
    users: list[tuple[int, str]],
    limits: dict[tuple[int, str], int],
    now: dt.datetime,
) -> list[_Member]:
    """What a plan needs about each paid, unbanned user: limits, this month's usage,
    the peak monthly usage in the lookback, the override."""
    ids = [uid for uid, _email in users]
    overrides = {
        o.user_id: o
        for o in UserOverride.objects.filter(organization=organization, user_id__in=ids)
    }
    current = period_of(now)
    first = period_of(now - dt.timedelta(days=policy.lookback_days))
    used: dict[tuple[int, str], int] = defaultdict(int)
    peak: dict[tuple[int, str], int] = defaultdict(int)
    for uid, token_type, period, amount in UsageCounter.objects.filter(
        user_id__in=ids, period__gte=first, period__lte=current
    ).values_list("user_id", "token_type", "period", "used"):
        peak[(uid, token_type)] = max(peak[(uid, token_type)], amount)
        if period == current:
            used[(uid, token_type)] = amount
    return [
        _Member(
            user_id=uid,
            email=email,
            limits={t: limits.get((uid, t), 0) for t in TYPES},
            used={t: used[(uid, t)] for t in TYPES},
            peak={t: peak[(uid, t)] for t in TYPES},
            override=overrides.get(uid),
        )
        for uid, email in users
    ]


def _plan(
    policy: DistributionPolicy,
    members: list[_Member],
    unallocated: dict[str, int],
    distribute_equally: bool,
) -> Plan:
    """The pure arithmetic of a run (module docstring for the order and rules)."""
    changes: list[PlanChange] = []
    totals: dict[str, dict] = {}
    shortfall: dict[str, int] = {}
    for token_type in TYPES:
        t = str(token_type)
        totals[t], shortfall[t] = _plan_type(
            policy, members, t, unallocated[t], distribute_equally, changes
        )
    return Plan(changes=tuple(changes), totals=totals, shortfall=shortfall)


def _plan_type(
    policy: DistributionPolicy,
    members: list[_Member],
    t: str,
    free: int,
    distribute_equally: bool,
    changes: list[PlanChange],
) -> tuple[dict, int]:
    """One token type's steps; appends to ``changes``, returns (totals, shortfall)."""
    minimum = settings.MIN_USER_TOKENS
    limits = {m.user_id: m.limits[t] for m in members}

    def change(m: _Member, new_limit: int, reason: str, usage: int) -> int:
        delta = new_limit - limits[m.user_id]
        changes.append(
            PlanChange(
                user_id=m.user_id,
                email=m.email,
                token_type=t,
                current=limits[m.user_id],
                usage=usage,
                new_limit=new_limit,
                delta=delta,
                reason=reason,
            )
        )
        limits[m.user_id] = new_limit
        return abs(delta)

    # (1) Reclamation first: what it frees can fund the floors.
    reclaimed = raised = distributed = short = 0
    if policy.reclamation_enabled:
        for m in members:
            if m.override is not None and m.override.exempt_reclamation:
                continue
            target = reclaimed_limit(
                m.peak[t], policy.headroom_percent, _floor(policy, m.override, t)
            )
            if target < limits[m.user_id]:
                reclaimed += change(m, target, REASON_RECLAMATION, m.peak[t])
    available = max(0, free + reclaimed)

    # (2) Floors, largest shortfall first, as far as the pool allows.
    below = []
    for m in members:
        need = _floor(policy, m.override, t) - limits[m.user_id]
        if need > 0:
            below.append((need, m))
    below.sort(key=lambda item: (-item[0], item[1].user_id))
    for need, m in below:
        grant = min(need, available)
        if grant < need and limits[m.user_id] + grant < minimum:
            grant = 0  # would still be under the platform minimum: not made
        if grant:
            available -= grant
            raised += change(m, limits[m.user_id] + grant, REASON_FLOOR, m.used[t])
        short += need - grant

    # (3) Equal shares of what is left, never above a user's ceiling.
    if distribute_equally and available > 0:
        eligible = [m for m in members if limits[m.user_id] >= minimum]
        share = available // len(eligible) if eligible else 0
        for m in eligible:
            ceiling = _ceiling(policy, m.override)
            room = share
            if ceiling is not None:
                room = min(share, ceiling - limits[m.user_id])
            if room > 0:
                available -= room
                distributed += change(
                    m, limits[m.user_id] + room, REASON_EQUAL, m.used[t]
                )

    totals = {
        "raised": raised,
        "reclaimed": reclaimed,
        "distributed": distributed,
        "unallocated_before": max(0, free),
        "unallocated_after": max(0, free + reclaimed - raised - distributed),
    }
    return totals, short


def _paid_users(organization: Organization):
    return User.objects.filter(
        organization=organization, is_paid=True, is_banned=False
    ).order_by("id")


def distribution_plan(
    *, organization: Organization, distribute_equally: bool = False
) -> Plan:
    """What a run would change now (the Preview): reads only, no locks, no writes."""
    policy = _policy_for_read(organization)
    users = list(_paid_users(organization).values_list("id", "email"))
    limits = {
        (uid, t): limit
        for uid, t, limit in Allocation.objects.filter(
            user_id__in=[u for u, _e in users]
        ).values_list("user_id", "token_type", "limit")
    }
    members = _members(organization, policy, users, limits, timezone.now())
    return _plan(policy, members, headrooms(organization), distribute_equally)


def _summary(plan: Plan) -> dict:
    summary: dict = {
        "changes": len(plan.changes),
        "users_changed": len({c.user_id for c in plan.changes}),
    }
    for t in TYPES:
        rows = [c for c in plan.changes if c.token_type == t]
        summary[str(t)] = {
            **plan.totals[t],
            "shortfall": plan.shortfall[t],
            "users_raised": sum(1 for c in rows if c.reason == REASON_FLOOR),
            "users_reclaimed": sum(1 for c in rows if c.reason == REASON_RECLAMATION),
            "users_distributed": sum(1 for c in rows if c.reason == REASON_EQUAL),
        }
    return summary


def distribution_run(
    *,
    actor: User | None,
    organization: Organization,
    distribute_equally: bool = False,
    trigger: str = DistributionRun.Trigger.MANUAL,
    due_at: dt.datetime | None = None,
) -> DistributionRun:
    """Apply the plan of ``distribution_plan``, computed again under the locks, in
    one transaction: each user changed gets one audit event (before/after of their
    limits in this run), the run one DISTRIBUTION_RUN event with its summary."""
    access_organization_for_admin(actor, organization.pk)
    if trigger not in DistributionRun.Trigger.values:
        raise ValidationError(_("Unknown run trigger."))
    with transaction.atomic():
        organization = lock_organization(organization)
        if not organization.is_active:
            raise ValidationError(
                _("Only an active organization's tokens can be distributed.")
            )
        run = DistributionRun.objects.create(
            organization=organization,
            trigger=trigger,
            due_at=due_at,
            actor=actor if actor is not None and actor.pk else None,
            distribute_equally=distribute_equally,
        )
        policy = policy_ensure(organization=organization)
        users = list(_paid_users(organization))
        allocations = lock_allocations(users)
        limits = {key: a.limit for key, a in allocations.items()}
        members = _members(
            organization,
            policy,
            [(u.pk, u.email) for u in users],
            limits,
            timezone.now(),
        )
        plan = _plan(policy, members, headrooms(organization), distribute_equally)

        by_user: dict[int, list[PlanChange]] = defaultdict(list)
        for change in plan.changes:
            by_user[change.user_id].append(change)
        users_by_id = {u.pk: u for u in users}
        # One audit event per changed user; the kernel writes them and the
        # allocations in a constant number of queries whatever the number of users.
        entries = []
        for user_id in sorted(by_user):
            changes = by_user[user_id]
            user = users_by_id[user_id]
            types = list(dict.fromkeys(c.token_type for c in changes))
            entries.append(
                AuditEntry(
                    user=user,
                    action=Action.LIMIT_CHANGED,
                    target=user,
                    before={f"{t}_limit": limits[(user_id, t)] for t in types},
                    after={
                        f"{t}_limit": [c for c in changes if c.token_type == t][
                            -1
                        ].new_limit
                        for t in types
                    },
                    message=_("Distribution run #%(run)d: %(reasons)s.")
                    % {
                        "run": run.pk,
                        "reasons": ", ".join(dict.fromkeys(c.reason for c in changes)),
                    },
                    changes=tuple(
                        LimitChange(
                            user,
                            c.token_type,
                            c.current,
                            c.new_limit,
                            REASON_SOURCES[c.reason],
                            c.reason,
                        )
                        for c in changes
                    ),
                )
            )
        kernel.apply(
            kernel.plan(
                organization=organization,
                actor=actor,
                entries=entries,
                state=kernel.pool_state(organization),
                distribution_run=run,
            )
        )
        run.summary = _summary(plan)
        run.finished_at = timezone.now()
        run.save(update_fields=["summary", "finished_at"])
        audit.record(
            action=Action.DISTRIBUTION_RUN,
            actor=actor,
            organization=organization,
            target=run,
            after=run.summary,
            message=_(
                "%(trigger)s run: %(changes)d changes for %(users)d users%(equal)s."
            )
            % {
                "trigger": DistributionRun.Trigger(trigger).label,
                "changes": run.summary["changes"],
                "users": run.summary["users_changed"],
                "equal": _(", unallocated pool distributed equally")
                if distribute_equally
                else "",
            },
        )
    return run
