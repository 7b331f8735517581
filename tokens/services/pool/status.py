"""Users' status: paid on and off (which moves limits, so plan then apply) and
banned (docs/product.md, Tokens: pool, limits and minimum; User Management)."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from accounts.policy import access_organization_for_admin
from accounts.sessions import end_user_sessions_on_commit
from tokens import locks
from tokens.services.pool import kernel
from tokens.services.pool.kernel import LimitPlan, lock_allocations
from tokens.services.pool.plans import current_limits, plan_set_paid

Action = AuditEvent.Action

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


def lock_members(organization: Organization, users: list[User]) -> list[User]:
    """Lock the org, then the users (id order), refusing anyone outside the org."""
    kernel.lock_organization(organization)
    ids = sorted({u.pk for u in users})
    locked = locks.lock_users(
        User.objects.filter(pk__in=ids, organization=organization)
    )
    if len(locked) != len(ids):
        raise ValidationError(_("Some of these users are not in this organization."))
    return locked


def _floors(organization: Organization, users: list[User]) -> dict[int, dict]:
    # Imported here: the distribution engine builds on this package.
    from tokens.services.distribution.runs import floors_for

    return floors_for(organization, users)


def plan_paid_change(
    organization: Organization,
    *,
    actor: User | None,
    users: list[User],
    paid: bool,
    partial: bool,
    limits: dict | None = None,
) -> LimitPlan:
    """``plan_set_paid`` with the floors of the users it reactivates; ``limits``
    read unlocked when not given (a confirmation page)."""
    targets = [u for u in users if u.is_paid != paid]
    return plan_set_paid(
        organization,
        actor=actor,
        users=users,
        paid=paid,
        partial=partial,
        limits=limits if limits is not None else current_limits(organization, users),
        floors=_floors(organization, targets) if paid and targets else {},
    )


def _set_paid(
    *,
    actor: User | None,
    organization: Organization,
    users: list[User],
    paid: bool,
    partial: bool,
) -> list[User]:
    """Switch paid status for users not already in it (``plan_set_paid``): one
    audit event per user, with their limits before and after."""
    access_organization_for_admin(actor, organization.pk)
    with transaction.atomic():
        members = lock_members(organization, users)
        refusal = self_action_refusal(actor, members, "paid_on" if paid else "paid_off")
        if refusal:
            raise ValidationError(refusal, code="self_action")
        locked = [u for u in members if u.is_paid != paid]
        allocations = lock_allocations(locked)
        plan = plan_paid_change(
            organization,
            actor=actor,
            users=locked,
            paid=paid,
            partial=partial,
            limits={key: a.limit for key, a in allocations.items()},
        )
        if plan.refused:
            raise plan.refusals[0]
        for user in locked:
            user.is_paid = paid
            user.save(update_fields=["is_paid"])
        kernel.apply(plan)
        if not paid:
            end_user_sessions_on_commit(user.pk for user in locked)
    return locked


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
    access_organization_for_admin(actor, organization.pk)
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
