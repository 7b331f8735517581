"""The plans of every kind of limit change (docs/architecture.md, Three questions,
three places): each function reads the organization's pool once and returns the
``LimitPlan`` that ``kernel.apply`` executes. Services call them under their locks;
confirmation pages call them to show what would happen (nothing changes).

Each takes the organization the change belongs to and reads nothing outside it.
"""

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import AuditEvent, Organization, User
from asksage_admin.lib.errors import OverAllocation
from tokens.models import Allocation, AllocationChange
from tokens.services.pool.kernel import (
    TYPES,
    AuditEntry,
    LimitChange,
    LimitPlan,
    changes_between,
    fmt,
    limit_dict,
    limit_entry,
    over_allocation,
    plan,
    pool_state,
    type_label,
)

Action = AuditEvent.Action
Source = AllocationChange.Source


def current_limits(
    organization: Organization, users: list[User]
) -> dict[tuple[int, str], int]:
    """The users' limits in ``organization`` (0 where none was set), unlocked: for
    a confirmation page."""
    limits = {(u.pk, t): 0 for u in users for t in TYPES}
    limits.update(
        {
            (uid, t): n
            for uid, t, n in Allocation.objects.filter(
                organization=organization, user__in=users
            ).values_list("user_id", "token_type", "limit")
        }
    )
    return limits


# --- limits --------------------------------------------------------------------------


def plan_set_limit(
    organization: Organization,
    *,
    actor: User | None,
    user: User,
    token_type: str,
    limit: int,
    current: int,
    source: str = Source.MANUAL,
    note: str = "",
) -> LimitPlan:
    """One user's limit of one type (``current`` → ``limit``); an increase beyond
    the headroom is refused."""
    changes = (
        []
        if limit == current
        else [LimitChange(user, token_type, current, limit, source, note)]
    )
    entries = []
    if changes:
        entries.append(
            limit_entry(
                user=user,
                action=Action.LIMIT_CHANGED,
                changes=changes,
                message=_("Source: %(source)s.") % {"source": Source(source).label}
                + (f" {note}" if note else ""),
            )
        )
    return plan(
        organization=organization,
        actor=actor,
        entries=entries,
        state=pool_state(organization),
        source=source,
        note=note,
    )


def plan_bulk_set_limit(
    organization: Organization,
    *,
    actor: User | None,
    users: list[User],
    token_type: str,
    limit: int,
    limits: dict[tuple[int, str], int],
) -> LimitPlan:
    """The same limit for many users, refused whole when the net increase exceeds
    the headroom, with the shortfall."""
    state = pool_state(organization)
    entries = [
        limit_entry(
            user=user,
            action=Action.LIMIT_CHANGED,
            changes=[
                LimitChange(
                    user, token_type, limits[(user.pk, token_type)], limit, Source.BULK
                )
            ],
            message=_("Source: %(source)s.") % {"source": Source.BULK.label},
        )
        for user in users
        if limits[(user.pk, token_type)] != limit
    ]
    net = sum(limit - limits[(u.pk, token_type)] for u in users)
    pool, allocated = state[token_type]
    available = pool - allocated
    refusals = []
    if net > available:
        refusals.append(
            OverAllocation(
                ngettext(
                    "Setting %(n)d user to %(limit)s %(type)s tokens needs %(net)s "
                    "more, but only %(available)s are unallocated: %(short)s short. "
                    "Nothing was changed.",
                    "Setting %(n)d users to %(limit)s %(type)s tokens needs %(net)s "
                    "more, but only %(available)s are unallocated: %(short)s short. "
                    "Nothing was changed.",
                    len(users),
                )
                % {
                    "n": len(users),
                    "limit": fmt(limit),
                    "type": type_label(token_type),
                    "net": fmt(net),
                    "available": fmt(max(0, available)),
                    "short": fmt(net - max(0, available)),
                }
            )
        )
    return plan(
        organization=organization,
        actor=actor,
        entries=entries,
        state=state,
        refusals=refusals,
        source=Source.BULK,
    )


# --- paid on and off -----------------------------------------------------------------


def plan_set_paid(
    organization: Organization,
    *,
    actor: User | None,
    users: list[User],
    paid: bool,
    partial: bool,
    limits: dict[tuple[int, str], int],
    floors: dict[int, dict[str, int]] | None = None,
) -> LimitPlan:
    """Paid status for ``users`` (those not already in it; docs/product.md, Tokens:
    pool, limits and minimum). Paid off: limits drop to DISABLED_USER_TOKENS (a
    lower limit is kept). Paid on: limits rise to at least MIN_USER_TOKENS, then to
    each user's floor (``floors``), as far as the headroom allows; without
    ``partial`` a pool that cannot give everyone the minimum refuses the whole
    action with the shortfall, with ``partial`` what is left is granted and the
    shortfall goes in the audit message."""
    state = pool_state(organization)
    targets = [u for u in users if u.is_paid != paid]
    free = {t: state[t][0] - state[t][1] for t in TYPES}
    plans = {}
    for user in targets:
        before = {t: limits[(user.pk, t)] for t in TYPES}
        if not paid:
            after = {t: min(before[t], settings.DISABLED_USER_TOKENS) for t in TYPES}
            plans[user.pk] = (before, after, {})
            continue
        after, short = {}, {}
        for t in TYPES:
            wanted = max(0, settings.MIN_USER_TOKENS - before[t])
            grant = min(wanted, max(0, free[t])) if partial else wanted
            free[t] -= grant
            after[t] = before[t] + grant
            if grant < wanted:
                short[t] = wanted - grant
        plans[user.pk] = (before, after, short)
    if paid:
        # The platform minimum first for everyone, then up to each user's floor
        # (override or policy) as far as the pool still allows.
        for user in targets:
            _before, after, short = plans[user.pk]
            for t in TYPES:
                floor = (floors or {}).get(user.pk, {}).get(t, 0)
                grant = min(max(0, floor - after[t]), max(0, free[t]))
                free[t] -= grant
                after[t] += grant
                if after[t] < floor:
                    # What the floor still lacks (the minimum's shortfall included).
                    short[t] = floor - after[t]
    refusals = []
    if paid and not partial:
        refusals = [
            OverAllocation(
                _(
                    "Not enough unallocated %(type)s tokens to give these "
                    "users the platform minimum: %(short)s more are needed. "
                    "Nothing was changed."
                )
                % {"type": type_label(t), "short": fmt(-free[t])}
            )
            for t in TYPES
            if free[t] < 0
        ][:1]
    source = Source.REACTIVATION if paid else Source.DEACTIVATION
    entries = [
        AuditEntry(
            user=user,
            action=Action.USER_PAID_CHANGED,
            target=user,
            before={"is_paid": not paid, **limit_dict(plans[user.pk][0])},
            after={"is_paid": paid, **limit_dict(plans[user.pk][1])},
            message="; ".join(
                _("%(n)s %(type)s tokens short of the floor: pool exhausted")
                % {"n": fmt(n), "type": type_label(t)}
                for t, n in plans[user.pk][2].items()
            ),
            changes=tuple(changes_between(user, *plans[user.pk][:2], source)),
        )
        for user in targets
    ]
    return plan(
        organization=organization,
        actor=actor,
        entries=entries,
        state=state,
        refusals=refusals,
        source=source,
    )


# --- token requests ------------------------------------------------------------------


def plan_request_approval(
    organization: Organization,
    *,
    actor: User | None,
    request,
    user: User,
    amount: int,
    current: int,
    note: str = "",
    message: str = "",
    auto: bool = False,
) -> LimitPlan:
    """A token request approved for ``amount``: the user's limit rises by it, as
    far as the headroom allows (docs/product.md, Token Requests)."""
    token_type = request.token_type
    Status = type(request).Status
    change = LimitChange(
        user, token_type, current, current + amount, Source.REQUEST, note
    )
    after = {
        "status": Status.APPROVED,
        "requested_amount": request.amount,
        "approved_amount": amount,
        f"{token_type}_limit": current + amount,
    }
    if auto:
        after["auto_approved"] = True
    entry = AuditEntry(
        user=user,
        action=Action.REQUEST_APPROVED,
        target=request,
        before={"status": Status.PENDING, f"{token_type}_limit": current},
        after=after,
        message=message,
        changes=(change,),
    )
    state = pool_state(organization)
    refusals = []
    pool, allocated = state[token_type]
    if amount > pool - allocated:
        refusals.append(over_allocation(amount, pool - allocated, token_type))
    return plan(
        organization=organization,
        actor=actor,
        entries=[entry],
        state=state,
        refusals=refusals,
        source=Source.REQUEST,
        note=note,
        token_request=request,
    )
