"""The confirmation page of a bulk action on User Management (docs/product.md, User
Management): what the action's plan (``tokens/services/pool/plans.py``) would do,
in words. The service computes the same plan again under its locks and applies it,
so the page and the action cannot disagree about the pool."""

import dataclasses
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Organization, User
from tokens import services
from tokens.services.pool import TYPES, fmt, plan_paid_change
from tokens.services.pool.kernel import LimitPlan
from tokens.services.pool.plans import current_limits, plan_bulk_set_limit


@dataclass(frozen=True)
class BulkEffect:
    title: str
    summary: str
    button: str
    destructive: bool = False
    pool_lines: tuple[str, ...] = ()
    refusal: str = ""
    plan: LimitPlan | None = None


def _refusal(plan: LimitPlan) -> str:
    return str(plan.refusals[0].message) if plan.refusals else ""


def bulk_review(
    org: Organization, actor: User | None, users: list[User], data: dict
) -> BulkEffect:
    """What a bulk action would do, for its confirmation page (nothing changes)."""
    n = len(users)
    action = data["action"]
    if action in ("paid_on", "paid_off"):
        paid = action == "paid_on"
        plan = plan_paid_change(org, actor=actor, users=users, paid=paid, partial=False)
        count = len(plan.entries)
        if not paid:
            return BulkEffect(
                title=ngettext("Deactivate %(n)d user?", "Deactivate %(n)d users?", n)
                % {"n": n},
                summary=ngettext(
                    "%(n)d paid user will be deactivated: their limits drop to "
                    "%(floor)s tokens per type.",
                    "%(n)d paid users will be deactivated: their limits drop to "
                    "%(floor)s tokens per type.",
                    count,
                )
                % {"n": count, "floor": fmt(settings.DISABLED_USER_TOKENS)},
                button=ngettext(
                    "Deactivate %(n)d user", "Deactivate %(n)d users", count
                )
                % {"n": count},
                destructive=True,
                pool_lines=tuple(
                    _("%(n)s %(type)s tokens return to the pool.")
                    % {"n": fmt(-plan.effects[t].net), "type": t}
                    for t in TYPES
                ),
                plan=plan,
            )
        return BulkEffect(
            title=ngettext("Reactivate %(n)d user?", "Reactivate %(n)d users?", n)
            % {"n": n},
            summary=ngettext(
                "%(n)d unpaid user will be reactivated with at least %(min)s tokens "
                "per type.",
                "%(n)d unpaid users will be reactivated with at least %(min)s tokens "
                "per type.",
                count,
            )
            % {"n": count, "min": fmt(settings.MIN_USER_TOKENS)},
            button=ngettext("Reactivate %(n)d user", "Reactivate %(n)d users", count)
            % {"n": count},
            pool_lines=tuple(
                _("Needs %(need)s of %(free)s unallocated %(type)s tokens.")
                % {
                    "need": fmt(plan.effects[t].net),
                    "free": fmt(max(0, plan.effects[t].headroom)),
                    "type": t,
                }
                for t in TYPES
            ),
            refusal=_refusal(plan),
            plan=plan,
        )
    if action in ("ban", "unban"):
        ban = action == "ban"
        targets = [u for u in users if u.is_banned != ban]
        return BulkEffect(
            title=(
                ngettext("Ban %(n)d user?", "Ban %(n)d users?", n)
                if ban
                else ngettext("Unban %(n)d user?", "Unban %(n)d users?", n)
            )
            % {"n": n},
            summary=(
                ngettext(
                    "%(n)d user will be banned: they cannot sign in and the gateway "
                    "refuses them.",
                    "%(n)d users will be banned: they cannot sign in and the gateway "
                    "refuses them.",
                    len(targets),
                )
                if ban
                else ngettext(
                    "%(n)d user will be unbanned.",
                    "%(n)d users will be unbanned.",
                    len(targets),
                )
            )
            % {"n": len(targets)},
            button=(
                ngettext("Ban %(n)d user", "Ban %(n)d users", len(targets))
                if ban
                else ngettext("Unban %(n)d user", "Unban %(n)d users", len(targets))
            )
            % {"n": len(targets)},
            destructive=ban,
        )
    t, limit = data["token_type"], data["limit"]
    plan = plan_bulk_set_limit(
        org,
        actor=actor,
        users=users,
        token_type=t,
        limit=limit,
        limits=current_limits(org, users),
    )
    effect = plan.effects[t]
    free = max(0, effect.headroom)
    return BulkEffect(
        title=ngettext(
            "Set the %(type)s limit of %(n)d user to %(limit)s?",
            "Set the %(type)s limit of %(n)d users to %(limit)s?",
            n,
        )
        % {"type": t, "n": n, "limit": fmt(limit)},
        summary=_("Every selected user's max %(type)s tokens becomes %(limit)s.")
        % {"type": t, "limit": fmt(limit)},
        button=ngettext("Set %(n)d limit", "Set %(n)d limits", n) % {"n": n},
        pool_lines=(
            _(
                "Net change to allocated %(type)s tokens: %(net)s; unallocated now "
                "%(free)s, after %(after)s."
            )
            % {
                "type": t,
                "net": f"{effect.net:+,}",
                "free": fmt(free),
                "after": fmt(free - effect.net),
            },
        ),
        refusal=_refusal(plan),
        plan=plan,
    )


def bulk_preview(
    org: Organization, actor: User, users: list[User], data: dict
) -> BulkEffect:
    """What the panel's bulk confirmation page and the admin API's ``dry_run``
    show (docs/admin-api.md, Users): :func:`bulk_review`, refused up front when the
    selection includes the actor and the action may not be taken on oneself (the
    service would refuse it whole). Nothing changes."""
    effect = bulk_review(org, actor, users, data)
    refusal = services.self_action_refusal(actor, users, data["action"])
    if refusal and not effect.refusal:
        effect = dataclasses.replace(effect, refusal=refusal)
    return effect
