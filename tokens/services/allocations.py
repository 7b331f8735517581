"""Purchases, limits and user status: the pool rules (docs/product.md, Tokens: pool,
limits and minimum).

Locks follow the product's one lock order (``tokens/locks.py``): the
organization row, then users, then allocations, each in ascending id order.
Unallocated = pool − allocated, never below zero: a change that would
over-allocate is refused with the unallocated amount in the message.
"""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from accounts.services import ensure_can_manage_organization, ensure_staff_permission
from accounts.sessions import end_user_sessions_on_commit
from tokens import locks, selectors
from tokens.models import Allocation, AllocationChange, Purchase, TokenType

Action = AuditEvent.Action
Source = AllocationChange.Source
TYPES = selectors.TYPES


def fmt(n: int) -> str:
    return f"{n:,}"


def type_label(token_type: str) -> str:
    return TokenType(token_type).label.lower()


def ensure_can_manage(actor: User | None, organization: Organization) -> None:
    """Services re-check tenancy: only the org's admins, superusers and the system
    (``actor=None``: jobs, the gateway) change an organization. Staff status
    alone grants nothing here (Sales act through the staff services)."""
    ensure_can_manage_organization(actor, organization.pk)


# Actions an admin may not take on their own account (issue 14, defect 9): each
# would lock them out, or let them undo another admin's decision about them.
SELF_ACTIONS = {
    "ban": _("You cannot ban or unban yourself."),
    "unban": _("You cannot ban or unban yourself."),
    "paid_off": _(
        "You cannot deactivate yourself (%(email)s): another admin of your "
        "organization must do it. Nothing was changed."
    ),
    "paid_on": _(
        "You cannot reactivate yourself (%(email)s): another admin of your "
        "organization must do it. Nothing was changed."
    ),
}


def self_action_refusal(actor: User | None, users: list[User], action: str) -> str:
    """Why ``action`` on ``users`` is refused because it would act on the actor
    themselves ("" when it is not). Ban and unban are refused whenever the actor is
    selected; paid off and on when the actor's own paid status would change. A bulk
    action that includes the actor is refused whole, never applied to the others
    only, so that "nothing changed" stays true of every refusal."""
    own = next((u for u in users if actor is not None and u.pk == actor.pk), None)
    if own is None or action not in SELF_ACTIONS:
        return ""
    if action == "paid_off" and not own.is_paid:
        return ""
    if action == "paid_on" and own.is_paid:
        return ""
    return SELF_ACTIONS[action] % {"email": own.email}


def lock_organization(organization: Organization) -> Organization:
    """Step 1 of the lock order (``FOR NO KEY UPDATE``)."""
    return locks.lock_organization(organization.pk)


def lock_allocations(users: list[User]) -> dict[tuple[int, str], Allocation]:
    """Each user's allocation rows, created when missing, locked in id order."""
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


def unallocated(organization: Organization, token_type: str) -> int:
    """Pool − allocated for the current month (negative if a pool shrank)."""
    return (
        selectors.pools(organization)[token_type]
        - selectors.allocated(organization)[token_type]
    )


def refuse_over_allocation(needed: int, available: int, token_type: str) -> None:
    if needed > available:
        raise ValidationError(
            _(
                "Not enough unallocated %(type)s tokens: this needs %(needed)s but "
                "only %(available)s are unallocated."
            )
            % {
                "type": type_label(token_type),
                "needed": fmt(needed),
                "available": fmt(max(0, available)),
            },
            code="over_allocation",
        )


def apply_limits(
    *,
    user: User,
    new_limits: dict[str, int],
    allocations: dict[tuple[int, str], Allocation],
    source: str,
    audit_event: AuditEvent,
    actor: User | None,
    note: str = "",
    token_request=None,
    distribution_run=None,
) -> list[AllocationChange]:
    """Write new limits and their AllocationChange rows (linked to the action's one
    audit event, and to the token request or distribution run that caused them).
    The caller holds the locks and has checked the pool."""
    return apply_limit_rows(
        [
            (user, token_type, limit, source, audit_event, note)
            for token_type, limit in new_limits.items()
        ],
        allocations=allocations,
        actor=actor,
        token_request=token_request,
        distribution_run=distribution_run,
    )


def apply_limit_rows(
    rows: list[tuple[User, str, int, str, AuditEvent, str]],
    *,
    allocations: dict[tuple[int, str], Allocation],
    actor: User | None,
    token_request=None,
    distribution_run=None,
) -> list[AllocationChange]:
    """``apply_limits`` for many users at once, in a constant number of queries:
    rows are (user, token type, new limit, source, audit event, note), applied in
    order (a later row for the same allocation continues from the earlier one)."""
    changes, touched = [], {}
    now = timezone.now()
    for user, token_type, limit, source, audit_event, note in rows:
        allocation = allocations[(user.pk, token_type)]
        delta = limit - allocation.limit
        if delta == 0:
            continue
        allocation.limit = limit
        touched[allocation.pk] = allocation
        changes.append(
            AllocationChange(
                organization_id=user.organization_id,
                user=user,
                token_type=token_type,
                delta=delta,
                new_limit=limit,
                source=source,
                actor=actor,
                note=note[:500],
                audit_event=audit_event,
                token_request=token_request,
                distribution_run=distribution_run,
                time=now,
            )
        )
    Allocation.objects.bulk_update(list(touched.values()), ["limit"])
    AllocationChange.objects.bulk_create(changes)
    return changes


def limits_of(user: User, allocations) -> dict[str, int]:
    return {t: allocations[(user.pk, t)].limit for t in TYPES}


# Longest purchase comment (a TextField; the limit is here and in the staff form).
PURCHASE_COMMENT_MAX = 2_000


def purchase_record(
    *,
    actor: User | None,
    organization: Organization,
    payer_email: str,
    inference_tokens: int,
    embedding_tokens: int,
    starts_on: dt.date | None = None,
    expires_on: dt.date | None = None,
    purchased_on: dt.date | None = None,
    comment: str = "",
) -> Purchase:
    """Record tokens an organization bought (in lots of TOKEN_LOT): superusers and
    staff allowed to add purchases (Sales)."""
    ensure_staff_permission(actor, "tokens.add_purchase")
    lot = settings.TOKEN_LOT
    errors = {}
    for field, amount in (
        ("inference_tokens", inference_tokens),
        ("embedding_tokens", embedding_tokens),
    ):
        if amount < 0 or amount % lot:
            errors[field] = _(
                "Tokens are sold in lots of %(lot)s: enter 0 or a multiple of %(lot)s."
            ) % {"lot": fmt(lot)}
    if inference_tokens == 0 and embedding_tokens == 0 and not errors:
        errors["inference_tokens"] = _("A purchase must include some tokens.")
    starts_on = starts_on or timezone.localdate()
    if expires_on is not None and expires_on < starts_on:
        errors["expires_on"] = _("A purchase cannot expire before it starts.")
    if len(comment or "") > PURCHASE_COMMENT_MAX:
        errors["comment"] = _(
            "Keep the comment to %(max)s characters or fewer (it has %(n)s)."
        ) % {"max": fmt(PURCHASE_COMMENT_MAX), "n": fmt(len(comment))}
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        lock_organization(organization)
        purchase = Purchase.objects.create(
            organization=organization,
            payer_email=payer_email,
            inference_tokens=inference_tokens,
            embedding_tokens=embedding_tokens,
            starts_on=starts_on,
            expires_on=expires_on,
            purchased_on=purchased_on or timezone.localdate(),
            comment=comment,
            recorded_by=actor,
        )
        audit.record(
            action=Action.PURCHASE_RECORDED,
            actor=actor,
            organization=organization,
            target=purchase,
            after={
                "inference_tokens": inference_tokens,
                "embedding_tokens": embedding_tokens,
                "starts_on": starts_on.isoformat(),
                "expires_on": expires_on.isoformat() if expires_on else None,
                "payer_email": payer_email,
            },
        )
    return purchase


def _check_limit_value(token_type: str, limit) -> None:
    if token_type not in TYPES:
        raise ValidationError(_("Unknown token type."), code="token_type")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValidationError(
            _("Enter a whole number of tokens, 0 or more."), code="invalid"
        )


def allocation_set_limit(
    *,
    actor: User | None,
    user: User,
    token_type: str,
    limit: int,
    source: str = Source.MANUAL,
    allow_below_minimum: bool = False,
    note: str = "",
) -> AllocationChange | None:
    """Set one user's monthly limit for one type. Refused (nothing changed) when it
    is negative, under the platform minimum for a paid user (unless the admin
    explicitly allows it), or more than the unallocated pool can cover."""
    _check_limit_value(token_type, limit)
    organization = user.organization
    if organization is None:
        raise ValidationError(_("This user is not in an organization."))
    ensure_can_manage(actor, organization)
    minimum = settings.MIN_USER_TOKENS
    if (
        user.is_paid
        and not user.is_banned
        and limit < minimum
        and not allow_below_minimum
    ):
        raise ValidationError(
            _(
                "A paid user needs at least %(min)s %(type)s tokens (the platform "
                "minimum). Confirm explicitly to set a lower limit."
            )
            % {"min": fmt(minimum), "type": type_label(token_type)},
            code="below_minimum",
        )
    with transaction.atomic():
        lock_organization(organization)
        allocations = lock_allocations([user])
        before = limits_of(user, allocations)
        increase = limit - before[token_type]
        if increase > 0:
            refuse_over_allocation(
                increase, unallocated(organization, token_type), token_type
            )
        if increase == 0:
            return None
        event = audit.record(
            action=Action.LIMIT_CHANGED,
            actor=actor,
            organization=organization,
            target=user,
            before={f"{token_type}_limit": before[token_type]},
            after={f"{token_type}_limit": limit},
            message=_("Source: %(source)s.") % {"source": Source(source).label}
            + (f" {note}" if note else ""),
        )
        (change,) = apply_limits(
            user=user,
            new_limits={token_type: limit},
            allocations=allocations,
            source=source,
            audit_event=event,
            actor=actor,
            note=note,
        )
    return change


def _limit_dict(limits: dict[str, int]) -> dict[str, int]:
    return {f"{t}_limit": n for t, n in limits.items()}


def lock_members(organization: Organization, users: list[User]) -> list[User]:
    """Lock the org, then the users (id order), refusing anyone outside the org."""
    lock_organization(organization)
    ids = sorted({u.pk for u in users})
    locked = locks.lock_users(
        User.objects.filter(pk__in=ids, organization=organization)
    )
    if len(locked) != len(ids):
        raise ValidationError(_("Some of these users are not in this organization."))
    return locked


def _set_paid(
    *,
    actor: User | None,
    organization: Organization,
    users: list[User],
    paid: bool,
    partial: bool,
) -> list[User]:
    """Switch paid status for users not already in it. Paid off: limits drop to
    DISABLED_USER_TOKENS (a lower limit is kept); the difference returns to the
    pool. Paid on: limits rise to at least MIN_USER_TOKENS; when the pool cannot
    cover everyone, ``partial`` grants what is left (and says so in the audit
    message), otherwise the whole action is refused with the shortfall."""
    ensure_can_manage(actor, organization)
    with transaction.atomic():
        members = lock_members(organization, users)
        refusal = self_action_refusal(actor, members, "paid_on" if paid else "paid_off")
        if refusal:
            raise ValidationError(refusal, code="self_action")
        locked = [u for u in members if u.is_paid != paid]
        allocations = lock_allocations(locked)
        plans = {}
        free = {t: unallocated(organization, t) for t in TYPES}
        for user in locked:
            before = limits_of(user, allocations)
            if not paid:
                after = {
                    t: min(before[t], settings.DISABLED_USER_TOKENS) for t in TYPES
                }
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
            _top_up_to_floors(organization, locked, plans, free)
        if paid and not partial:
            for t in TYPES:
                if free[t] < 0:
                    raise ValidationError(
                        _(
                            "Not enough unallocated %(type)s tokens to give these "
                            "users the platform minimum: %(short)s more are needed. "
                            "Nothing was changed."
                        )
                        % {"type": type_label(t), "short": fmt(-free[t])},
                        code="over_allocation",
                    )
        for user in locked:
            before, after, short = plans[user.pk]
            user.is_paid = paid
            user.save(update_fields=["is_paid"])
            event = audit.record(
                action=Action.USER_PAID_CHANGED,
                actor=actor,
                organization=organization,
                target=user,
                before={"is_paid": not paid, **_limit_dict(before)},
                after={"is_paid": paid, **_limit_dict(after)},
                message="; ".join(
                    _("%(n)s %(type)s tokens short of the floor: pool exhausted")
                    % {"n": fmt(n), "type": type_label(t)}
                    for t, n in short.items()
                ),
            )
            apply_limits(
                user=user,
                new_limits=after,
                allocations=allocations,
                source=Source.REACTIVATION if paid else Source.DEACTIVATION,
                audit_event=event,
                actor=actor,
            )
        if not paid:
            end_user_sessions_on_commit(user.pk for user in locked)
    return locked


def _top_up_to_floors(organization, users, plans, free) -> None:
    # Imported here: the distribution engine builds on this module.
    from tokens.services.distribution.runs import floors_for

    floors = floors_for(organization, users)
    for user in users:
        _before, after, short = plans[user.pk]
        for t in TYPES:
            extra = max(0, floors[user.pk][t] - after[t])
            grant = min(extra, max(0, free[t]))
            free[t] -= grant
            after[t] += grant
            if after[t] < floors[user.pk][t]:
                # What the floor still lacks (the minimum's shortfall included).
                short[t] = floors[user.pk][t] - after[t]


def user_deactivate(*, actor: User | None, user: User) -> User:
    """Paid off (docs/product.md, Tokens: pool, limits and minimum): limits →
    DISABLED_USER_TOKENS, the rest back to the pool."""
    if not _set_paid(
        actor=actor,
        organization=user.organization,
        users=[user],
        paid=False,
        partial=True,
    ):
        raise ValidationError(_("This user is already deactivated."))
    user.is_paid = False
    return user


def user_reactivate(*, actor: User | None, user: User) -> User:
    """Paid on: limits back to the user's floor (override, else the policy's, never
    below the platform minimum), as far as the pool allows."""
    if not _set_paid(
        actor=actor,
        organization=user.organization,
        users=[user],
        paid=True,
        partial=True,
    ):
        raise ValidationError(_("This user is already active."))
    user.is_paid = True
    return user


def users_set_paid(
    *, actor: User | None, organization: Organization, users: list[User], paid: bool
) -> list[User]:
    """Bulk paid on/off in one transaction; paid on is refused whole when the pool
    cannot give every user the minimum. Returns the users that changed."""
    return _set_paid(
        actor=actor, organization=organization, users=users, paid=paid, partial=False
    )


def users_set_banned(
    *, actor: User | None, organization: Organization, users: list[User], banned: bool
) -> list[User]:
    """Ban or unban users (one audit event each); returns those that changed. A
    banned user cannot sign in and the gateway refuses them."""
    ensure_can_manage(actor, organization)
    refusal = self_action_refusal(actor, users, "ban" if banned else "unban")
    if refusal:
        raise ValidationError(refusal, code="self_action")
    with transaction.atomic():
        changed = [
            u for u in lock_members(organization, users) if u.is_banned != banned
        ]
        for user in changed:
            user.is_banned = banned
            user.save(update_fields=["is_banned"])
            audit.record(
                action=Action.USER_BANNED if banned else Action.USER_UNBANNED,
                actor=actor,
                organization=organization,
                target=user,
                before={"is_banned": not banned},
                after={"is_banned": banned},
            )
        if banned:
            end_user_sessions_on_commit(user.pk for user in changed)
    return changed


def user_ban(*, actor: User | None, user: User) -> User:
    if not users_set_banned(
        actor=actor, organization=user.organization, users=[user], banned=True
    ):
        raise ValidationError(_("This user is already banned."))
    user.is_banned = True
    return user


def user_unban(*, actor: User | None, user: User) -> User:
    if not users_set_banned(
        actor=actor, organization=user.organization, users=[user], banned=False
    ):
        raise ValidationError(_("This user is not banned."))
    user.is_banned = False
    return user


def allocations_bulk_set_limit(
    *,
    actor: User | None,
    organization: Organization,
    users: list[User],
    token_type: str,
    limit: int,
    allow_below_minimum: bool = False,
) -> list[AllocationChange]:
    """Set the same limit for many users in one transaction, one audit event each;
    refused whole (nothing changed) when the net increase exceeds the unallocated
    pool, with the shortfall in the message."""
    _check_limit_value(token_type, limit)
    ensure_can_manage(actor, organization)
    with transaction.atomic():
        locked = lock_members(organization, users)
        if not allow_below_minimum and limit < settings.MIN_USER_TOKENS:
            paid = [u for u in locked if u.is_paid and not u.is_banned]
            if paid:
                raise ValidationError(
                    ngettext(
                        "%(n)d of these users is paid and needs at least %(min)s "
                        "tokens (the platform minimum). Confirm explicitly to set a "
                        "lower limit.",
                        "%(n)d of these users are paid and need at least %(min)s "
                        "tokens (the platform minimum). Confirm explicitly to set a "
                        "lower limit.",
                        len(paid),
                    )
                    % {"n": len(paid), "min": fmt(settings.MIN_USER_TOKENS)},
                    code="below_minimum",
                )
        allocations = lock_allocations(locked)
        net = sum(limit - allocations[(u.pk, token_type)].limit for u in locked)
        available = unallocated(organization, token_type)
        if net > available:
            raise ValidationError(
                ngettext(
                    "Setting %(n)d user to %(limit)s %(type)s tokens needs %(net)s "
                    "more, but only %(available)s are unallocated: %(short)s short. "
                    "Nothing was changed.",
                    "Setting %(n)d users to %(limit)s %(type)s tokens needs %(net)s "
                    "more, but only %(available)s are unallocated: %(short)s short. "
                    "Nothing was changed.",
                    len(locked),
                )
                % {
                    "n": len(locked),
                    "limit": fmt(limit),
                    "type": type_label(token_type),
                    "net": fmt(net),
                    "available": fmt(max(0, available)),
                    "short": fmt(net - max(0, available)),
                },
                code="over_allocation",
            )
        changes = []
        for user in locked:
            current = allocations[(user.pk, token_type)].limit
            if current == limit:
                continue
            event = audit.record(
                action=Action.LIMIT_CHANGED,
                actor=actor,
                organization=organization,
                target=user,
                before={f"{token_type}_limit": current},
                after={f"{token_type}_limit": limit},
                message=_("Source: %(source)s.") % {"source": Source.BULK.label},
            )
            changes += apply_limits(
                user=user,
                new_limits={token_type: limit},
                allocations=allocations,
                source=Source.BULK,
                audit_event=event,
                actor=actor,
            )
    return changes
