"""Purchases: the tokens an organization bought, which make its monthly pool
(docs/product.md, Tokens: pool, limits and minimum)."""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from accounts.policy import access_staff_action
from tokens.models import Purchase
from tokens.services.pool.kernel import fmt, lock_organization

Action = AuditEvent.Action

# Longest purchase comment (a TextField; the limit is here and in the staff form).
PURCHASE_COMMENT_MAX = 2_000


def purchase_check(
    *,
    inference_tokens: int,
    embedding_tokens: int,
    starts_on: dt.date | None = None,
    expires_on: dt.date | None = None,
    comment: str = "",
    **_ignored,
) -> None:
    """The rules of a purchase (lots, dates, comment), without recording it:
    raises a ValidationError keyed by field. ``purchase_record`` and the staff
    form both call it."""
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
    access_staff_action(actor, "tokens.add_purchase")
    purchase_check(
        inference_tokens=inference_tokens,
        embedding_tokens=embedding_tokens,
        starts_on=starts_on,
        expires_on=expires_on,
        comment=comment,
    )
    starts_on = starts_on or timezone.localdate()
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
