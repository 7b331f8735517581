"""Purchases, limits and user status: the pool rules of SPEC §2.

Lock order (DESIGN §5): the organization row first, then user allocations in
ascending id order. Unallocated = pool − allocated, never below zero: a change that
would over-allocate is refused with the unallocated amount in the message.
"""

import datetime as dt

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from tokens import selectors
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
    (``actor=None``: jobs, the gateway) change an organization."""
    if actor is None or actor.is_superuser or actor.is_staff:
        return
    if actor.is_org_admin and actor.organization_id == organization.pk:
        return
    raise PermissionDenied(_("You cannot manage this organization."))


def lock_organization(organization: Organization) -> Organization:
    return Organization.objects.select_for_update().get(pk=organization.pk)


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
    rows = Allocation.objects.select_for_update().filter(user_id__in=user_ids)
    return {(a.user_id, a.token_type): a for a in rows.order_by("user_id", "id")}


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
) -> list[AllocationChange]:
    """Write new limits and their AllocationChange rows (linked to the action's one
    audit event). The caller holds the locks and has checked the pool."""
    changes = []
    now = timezone.now()
    for token_type, limit in new_limits.items():
        allocation = allocations[(user.pk, token_type)]
        delta = limit - allocation.limit
        if delta == 0:
            continue
        allocation.limit = limit
        allocation.save(update_fields=["limit"])
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
                time=now,
            )
        )
    AllocationChange.objects.bulk_create(changes)
    return changes


def limits_of(user: User, allocations) -> dict[str, int]:
    return {t: allocations[(user.pk, t)].limit for t in TYPES}


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
    """Record tokens an organization bought (in lots of TOKEN_LOT)."""
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
    if token_type not in TYPES:
        raise ValidationError(_("Unknown token type."), code="token_type")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValidationError(
            _("Enter a whole number of tokens, 0 or more."), code="invalid"
        )
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


def user_deactivate(*, actor: User | None, user: User) -> list[AllocationChange]:
    """Paid off: limits drop to DISABLED_USER_TOKENS per type; the difference goes
    back to the pool. A limit already lower is left alone."""
    organization = user.organization
    ensure_can_manage(actor, organization)
    disabled = settings.DISABLED_USER_TOKENS
    with transaction.atomic():
        lock_organization(organization)
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.is_paid:
            raise ValidationError(_("This user is already deactivated."))
        allocations = lock_allocations([locked])
        before = limits_of(locked, allocations)
        after = {t: min(before[t], disabled) for t in TYPES}
        locked.is_paid = False
        locked.save(update_fields=["is_paid"])
        event = audit.record(
            action=Action.USER_PAID_CHANGED,
            actor=actor,
            organization=organization,
            target=locked,
            before={"is_paid": True, **_limit_dict(before)},
            after={"is_paid": False, **_limit_dict(after)},
        )
        changes = apply_limits(
            user=locked,
            new_limits=after,
            allocations=allocations,
            source=Source.DEACTIVATION,
            audit_event=event,
            actor=actor,
        )
    user.is_paid = False
    return changes


def user_reactivate(*, actor: User | None, user: User) -> list[AllocationChange]:
    """Paid on: each limit goes back up to at least the platform minimum, as far as
    the unallocated pool allows (the audit message says when it fell short)."""
    organization = user.organization
    ensure_can_manage(actor, organization)
    minimum = settings.MIN_USER_TOKENS
    with transaction.atomic():
        lock_organization(organization)
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_paid:
            raise ValidationError(_("This user is already active."))
        allocations = lock_allocations([locked])
        before = limits_of(locked, allocations)
        after, short = {}, {}
        for t in TYPES:
            wanted = max(0, minimum - before[t])
            grant = min(wanted, max(0, unallocated(organization, t)))
            after[t] = before[t] + grant
            if grant < wanted:
                short[t] = wanted - grant
        locked.is_paid = True
        locked.save(update_fields=["is_paid"])
        message = "; ".join(
            _("%(n)s %(type)s tokens short of the minimum: the pool is exhausted")
            % {"n": fmt(n), "type": type_label(t)}
            for t, n in short.items()
        )
        event = audit.record(
            action=Action.USER_PAID_CHANGED,
            actor=actor,
            organization=organization,
            target=locked,
            before={"is_paid": False, **_limit_dict(before)},
            after={"is_paid": True, **_limit_dict(after)},
            message=message,
        )
        changes = apply_limits(
            user=locked,
            new_limits=after,
            allocations=allocations,
            source=Source.REACTIVATION,
            audit_event=event,
            actor=actor,
        )
    user.is_paid = True
    return changes


def _limit_dict(limits: dict[str, int]) -> dict[str, int]:
    return {f"{t}_limit": n for t, n in limits.items()}


def _set_banned(*, actor: User | None, user: User, banned: bool) -> User:
    ensure_can_manage(actor, user.organization)
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(_("You cannot ban or unban yourself."))
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_banned == banned:
            raise ValidationError(
                _("This user is already banned.")
                if banned
                else _("This user is not banned.")
            )
        locked.is_banned = banned
        locked.save(update_fields=["is_banned"])
        audit.record(
            action=Action.USER_BANNED if banned else Action.USER_UNBANNED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            before={"is_banned": not banned},
            after={"is_banned": banned},
        )
    user.is_banned = banned
    return user


def user_ban(*, actor: User | None, user: User) -> User:
    """A banned user cannot sign in and the gateway refuses them."""
    return _set_banned(actor=actor, user=user, banned=True)


def user_unban(*, actor: User | None, user: User) -> User:
    return _set_banned(actor=actor, user=user, banned=False)
