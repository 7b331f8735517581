"""The plans of membership changes (docs/product.md, Sales flow): a member joining
or leaving an organization, and an organization's activation. Like ``plans.py``:
each reads the pool of the organization it is given and returns the ``LimitPlan``
that ``kernel.apply`` executes."""

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import AuditEvent, Organization, User
from asksage_admin.lib.errors import OverAllocation
from tokens.models import AllocationChange
from tokens.services.pool.kernel import (
    TYPES,
    AuditEntry,
    LimitPlan,
    changes_between,
    fmt,
    limit_dict,
    over_allocation,
    plan,
    pool_state,
    type_label,
)

Action = AuditEvent.Action
Source = AllocationChange.Source


# --- members -------------------------------------------------------------------------


def plan_member_join(
    organization: Organization,
    *,
    actor: User | None,
    user: User,
    role: str,
    current: dict[str, int],
) -> LimitPlan:
    """A registered user added to ``organization`` with the platform minimum per
    type, from the headroom; refused, naming the missing tokens, when it is
    short."""
    state = pool_state(organization)
    minimum = settings.MIN_USER_TOKENS
    after = {t: max(current[t], minimum) for t in TYPES}
    shortfalls = []
    for t in TYPES:
        needed = after[t] - current[t]
        available = max(0, state[t][0] - state[t][1])
        if needed > available:
            shortfalls.append(
                _(
                    "%(missing)s %(type)s tokens are missing (%(needed)s needed, "
                    "%(available)s unallocated)"
                )
                % {
                    "missing": fmt(needed - available),
                    "type": type_label(t),
                    "needed": fmt(needed),
                    "available": fmt(available),
                }
            )
    refusals = []
    if shortfalls:
        refusals.append(
            OverAllocation(
                _(
                    "The pool of %(org)s cannot give %(email)s the platform minimum "
                    "of %(min)s tokens per type: %(shortfalls)s. Record a purchase or "
                    "lower other users' limits first."
                )
                % {
                    "org": organization.name,
                    "email": user.email,
                    "min": fmt(minimum),
                    "shortfalls": "; ".join(shortfalls),
                }
            )
        )
    note = _("Added to the organization.")
    entry = AuditEntry(
        user=user,
        action=Action.MEMBER_ADDED,
        target=user,
        before={"organization": None, **limit_dict(current)},
        after={"organization": organization.name, "role": role, **limit_dict(after)},
        changes=tuple(changes_between(user, current, after, Source.MANUAL, note)),
    )
    return plan(
        organization=organization,
        actor=actor,
        entries=[entry],
        state=state,
        refusals=refusals,
        source=Source.MANUAL,
        note=note,
    )


def plan_member_leave(
    organization: Organization,
    *,
    actor: User | None,
    user: User,
    current: dict[str, int],
) -> LimitPlan:
    """A member leaves ``organization``: their limits go back to the pool (0 per
    type). Never refused by the pool (it only gives tokens back)."""
    after = {t: 0 for t in TYPES}
    note = _("Removed from the organization.")
    entry = AuditEntry(
        user=user,
        action=Action.MEMBER_REMOVED,
        target=user,
        before={
            "organization": organization.name,
            "role": user.role,
            **limit_dict(current),
        },
        after={"organization": None, "role": User.Role.USER, **limit_dict(after)},
        changes=tuple(changes_between(user, current, after, Source.MANUAL, note)),
    )
    return plan(
        organization=organization,
        actor=actor,
        entries=[entry],
        state=pool_state(organization),
        source=Source.MANUAL,
        note=note,
    )


def plan_activation(
    organization: Organization,
    *,
    actor: User | None,
    users: list[User],
    shares: dict[str, int],
    limits: dict[tuple[int, str], int],
) -> LimitPlan:
    """A new organization's users each get an equal share of its pool per type."""
    note = _("Equal share on activation.")
    entries = []
    for user in users:
        before = {t: limits[(user.pk, t)] for t in TYPES}
        entries.append(
            AuditEntry(
                user=user,
                action=Action.LIMIT_CHANGED,
                target=user,
                before=limit_dict(before),
                after=limit_dict(shares),
                message=_("Source: %(source)s.") % {"source": Source.ACTIVATION.label},
                changes=tuple(
                    changes_between(user, before, dict(shares), Source.ACTIVATION, note)
                ),
            )
        )
    state = pool_state(organization)
    refusals = []
    for t, share in shares.items():
        needed, available = share * len(users), state[t][0] - state[t][1]
        if needed > available:
            refusals.append(over_allocation(needed, available, t))
            break
    return plan(
        organization=organization,
        actor=actor,
        entries=entries,
        state=state,
        refusals=refusals,
        source=Source.ACTIVATION,
        note=note,
    )
