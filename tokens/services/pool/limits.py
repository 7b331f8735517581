"""Setting users' limits by hand: one user, or many at once (docs/product.md, Tokens:
pool, limits and minimum). Plan, then apply (``kernel.py``)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Organization, User
from accounts.policy import access_organization_for_admin
from tokens.models import AllocationChange
from tokens.services.pool import kernel
from tokens.services.pool.kernel import TYPES, fmt, lock_allocations, type_label
from tokens.services.pool.plans import plan_bulk_set_limit, plan_set_limit
from tokens.services.pool.status import lock_members

Source = AllocationChange.Source


def check_limit_value(token_type: str, limit) -> None:
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
    explicitly allows it), or more than the headroom can cover."""
    check_limit_value(token_type, limit)
    organization = user.organization
    if organization is None:
        raise ValidationError(_("This user is not in an organization."))
    access_organization_for_admin(actor, organization.pk)
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
        kernel.lock_organization(organization)
        allocations = lock_allocations([user])
        plan = plan_set_limit(
            organization,
            actor=actor,
            user=user,
            token_type=token_type,
            limit=limit,
            current=allocations[(user.pk, token_type)].limit,
            source=source,
            note=note,
        )
        if not plan.entries and not plan.refused:
            return None
        (change,) = kernel.apply(plan)
    return change


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
    refused whole (nothing changed) when the net increase exceeds the headroom,
    with the shortfall in the message."""
    check_limit_value(token_type, limit)
    access_organization_for_admin(actor, organization.pk)
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
        plan = plan_bulk_set_limit(
            organization,
            actor=actor,
            users=locked,
            token_type=token_type,
            limit=limit,
            limits={key: a.limit for key, a in allocations.items()},
        )
        return kernel.apply(plan)
