"""What a bulk action on users would do, for the panel's confirmation page and the
admin API's ``dry_run`` (docs/admin-api.md, Users): one function, so both show the
same effect whatever computes it."""

import dataclasses

from accounts.models import Organization, User
from tokens import selectors, services


def bulk_preview(
    org: Organization, actor: User, users: list[User], data: dict
) -> selectors.BulkEffect:
    """The pool effect of ``data`` (the bulk form's cleaned data: action,
    token_type, limit, confirm_below_minimum) on ``users``, refused up front when
    the selection includes the actor and the action may not be taken on oneself
    (the service would refuse it whole). Nothing changes."""
    effect = selectors.bulk_effect(org, users, data)
    refusal = services.self_action_refusal(actor, users, data["action"])
    if refusal and not effect.refusal:
        effect = dataclasses.replace(effect, refusal=refusal)
    return effect
