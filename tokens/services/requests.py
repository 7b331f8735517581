"""Token requests (docs/product.md, Token Requests): a member asks for more tokens of
one type, an admin approves (any amount ≥ 1, as far as the pool allows) or denies, and
the organization's auto-approval rule may approve small requests on submission.

Locks: a decision locks the request row first (approve then takes the organization
row and the user's allocations, in the lock order of docs/architecture.md), so two
admins deciding the same request queue on that row and the second finds it decided and
is told by whom. A submission that may be auto-approved locks the organization, then the
allocations, and only inserts the request; the rule's per-user limits (tokens a month,
approvals in 24 hours) are counted under that organization lock, so simultaneous
submissions are counted one after the other. Emails go out after commit.
"""

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from accounts.policy import access_organization_for_admin
from accounts.services import send_templated_email
from asksage_admin.lib.errors import Conflict
from tokens import selectors
from tokens.models import (
    Allocation,
    AutoApprovalRule,
    TokenRequest,
)
from tokens.services.pool import kernel
from tokens.services.pool.kernel import (
    LimitPlan,
    fmt,
    lock_allocations,
    lock_organization,
    type_label,
)
from tokens.services.pool.plans import plan_request_approval
from tokens.services.withdrawal import withdrawn_message

Action = AuditEvent.Action
Status = TokenRequest.Status
TYPES = selectors.TYPES

REASON_MAX = 500
NOTE_MAX = 500
AUTO_APPROVED_NOTE = "auto-approved"
# Far above any pool; keeps absurd numbers out of the BigIntegerField.
AMOUNT_CEILING = 10**15
# Auto-approvals per user in 24 hours: beyond this the rule is no limit at all.
MAX_APPROVALS_PER_DAY = 1_000


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ValidationError(
            {
                "note": _(
                    "Keep the note to %(max)d characters or fewer (it has %(n)d)."
                )
                % {"max": NOTE_MAX, "n": len(note)}
            }
        )
    return note


def _check_decision_amount(amount) -> None:
    if not _is_whole(amount) or amount < 1 or amount > AMOUNT_CEILING:
        raise ValidationError(
            {"amount": _("Enter a whole number of tokens, 1 or more.")},
            code="invalid",
        )


def _percent(used: int, pool: int) -> Decimal:
    """The org's consumption of its pool this month, in %."""
    return Decimal(used * 100) / Decimal(pool) if pool else Decimal(100)


def rule_description(rule: AutoApprovalRule) -> str:
    """The rule in one line, as the audit trail and the queue page name it."""
    return _(
        "≤ %(amount)s tokens while consumption < %(percent)s%%; per user at most "
        "%(month)s tokens of a type a month (UTC) and %(count)s approvals in 24 hours"
    ) % {
        "amount": fmt(rule.max_amount),
        "percent": _percent_text(rule.max_consumption_percent),
        "month": fmt(rule.max_per_user_month),
        "count": fmt(rule.max_approvals_per_day),
    }


def _percent_text(value: Decimal) -> str:
    """50 for 50.0, 62.5 for 62.5."""
    return f"{Decimal(value).normalize():f}"


def already_decided(request: TokenRequest) -> Conflict:
    """The refusal for a request that is no longer pending: who decided, and when."""
    if request.status == Status.WITHDRAWN:
        return ValidationError(
            withdrawn_message(request.decided_at or request.created_at),
            code="withdrawn",
        )
    who = request.decided_by.email if request.decided_by_id else _("auto-approval")
    when = request.decided_at or request.created_at
    return Conflict(
        _("This request was already decided by %(who)s on %(date)s.")
        % {"who": who, "date": f"{when.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"},
        code="already_decided",
    )


def _lock_pending(request: TokenRequest) -> TokenRequest:
    """The request's row, locked; refused when it is no longer pending."""
    locked = TokenRequest.objects.select_for_update(no_key=True).get(pk=request.pk)
    if locked.status != Status.PENDING:
        raise already_decided(locked)
    return locked


# --- submission -------------------------------------------------------------------


def check_requester(user: User) -> Organization:
    """The member's organization, or why they cannot request tokens."""
    organization = user.organization
    if organization is None:
        raise ValidationError(
            _("Only members of an organization can request tokens."),
            code="no_organization",
        )
    if not organization.is_active:
        raise ValidationError(
            _("Your organization is not active, so tokens cannot be requested."),
            code="inactive_organization",
        )
    if user.is_banned:
        raise ValidationError(
            _("Your account is banned, so it cannot request tokens."), code="banned"
        )
    if not user.is_paid:
        raise ValidationError(
            _(
                "Your account is deactivated. Ask your organization's admin to "
                "reactivate it before requesting tokens."
            ),
            code="unpaid",
        )
    return organization


def _pending_refusal(token_type: str) -> ValidationError:
    return ValidationError(
        {
            "token_type": _(
                "You already have a pending request for %(type)s tokens. Wait for "
                "an admin to decide it before asking again."
            )
            % {"type": type_label(token_type)}
        },
        code="pending_exists",
    )


def token_request_submit(
    *, user: User, token_type: str, amount: int, reason: str
) -> TokenRequest:
    """File a request for ``amount`` more tokens of one type. Refused when the
    amount is not 1 … the org's pool for that type this month, the reason is empty
    or too long, or a request of this type is already pending. When the org's
    auto-approval rule allows it, the request is approved in the same transaction."""
    organization = check_requester(user)
    reason = (reason or "").strip()
    errors = {}
    if token_type not in TYPES:
        errors["token_type"] = _("Choose inference or embedding tokens.")
    if not _is_whole(amount) or amount < 1:
        errors["amount"] = _("Enter a whole number of tokens, 1 or more.")
    if not reason:
        errors["reason"] = _("Tell your admin why you need more tokens.")
    elif len(reason) > REASON_MAX:
        errors["reason"] = _(
            "Keep the reason to %(max)d characters or fewer (it has %(n)d)."
        ) % {"max": REASON_MAX, "n": len(reason)}
    if errors:
        raise ValidationError(errors)
    summary = selectors.org_summary(organization)[token_type]
    if amount > summary.pool:
        raise ValidationError(
            {
                "amount": _(
                    "You can request at most %(max)s %(type)s tokens: your "
                    "organization's pool for this month."
                )
                % {"max": fmt(summary.pool), "type": type_label(token_type)}
                if summary.pool
                else _(
                    "Your organization has no %(type)s tokens this month, so none "
                    "can be requested."
                )
                % {"type": type_label(token_type)}
            },
            code="over_pool",
        )
    with transaction.atomic():
        rule = AutoApprovalRule.objects.filter(organization=organization).first()
        may_auto = rule is not None and rule.enabled and amount <= rule.max_amount
        allocations = None
        if may_auto:
            # An approval may follow: take the allocation locks now, in order.
            lock_organization(organization)
            allocations = lock_allocations([user])
            limit = allocations[(user.pk, token_type)].limit
        else:
            limit = (
                Allocation.objects.filter(user=user, token_type=token_type)
                .values_list("limit", flat=True)
                .first()
            ) or 0
        if TokenRequest.objects.filter(
            user=user, token_type=token_type, status=Status.PENDING
        ).exists():
            raise _pending_refusal(token_type)
        try:
            # The partial unique index decides between two simultaneous submissions.
            with transaction.atomic():
                request = TokenRequest.objects.create(
                    organization=organization,
                    user=user,
                    token_type=token_type,
                    amount=amount,
                    reason=reason,
                    limit_at_request=limit,
                )
        except IntegrityError:
            raise _pending_refusal(token_type) from None
        approval = (
            _rule_allows(rule, organization, request, summary, allocations)
            if may_auto
            else None
        )
        if approval is not None:
            # Read under the organization lock taken above, so two simultaneous
            # submissions of one user cannot both pass under a limit.
            request.hold_note = _limit_reached(rule, request)
            if request.hold_note:
                approval = None
                request.save(update_fields=["hold_note"])
        audit.record(
            action=Action.REQUEST_SUBMITTED,
            actor=user,
            organization=organization,
            target=request,
            after={
                "token_type": token_type,
                "amount": amount,
                f"{token_type}_limit": limit,
                "reason": reason,
                **({"held_back": request.hold_note} if request.hold_note else {}),
            },
        )
        if approval is not None:
            _mark_approved(
                request,
                amount=request.amount,
                note=AUTO_APPROVED_NOTE,
                actor=None,
                auto=True,
            )
            kernel.apply(approval)
            transaction.on_commit(lambda: _email_decision(request.pk), robust=True)
        else:
            transaction.on_commit(lambda: _email_admins(request.pk), robust=True)
    return request


def _rule_allows(rule, organization, request, summary, allocations) -> LimitPlan | None:
    """The auto-approval's plan when the rule allows it: consumption (used ÷ pool,
    before the grant) under the rule's maximum, and a plan the pool, read under the
    organization lock, does not refuse. None otherwise."""
    if _percent(summary.used, summary.pool) >= rule.max_consumption_percent:
        return None
    approval = plan_request_approval(
        organization,
        actor=None,
        request=request,
        user=request.user,
        amount=request.amount,
        current=allocations[(request.user.pk, request.token_type)].limit,
        note=AUTO_APPROVED_NOTE,
        message=_("Auto-approved by the organization's rule: %(rule)s.")
        % {"rule": rule_description(rule)},
        auto=True,
    )
    return None if approval.refused else approval


def _limit_reached(rule: AutoApprovalRule, request: TokenRequest) -> str:
    """Which of the rule's per-user limits keeps ``request`` for an admin (a note
    for the queue), or "" when none does: at most ``max_approvals_per_day``
    auto-approvals of the user in the last 24 hours (any type), and at most
    ``max_per_user_month`` tokens of the type auto-approved this calendar month
    (UTC), this request included. Counted within the organization."""
    now = timezone.now()
    approved = TokenRequest.objects.filter(
        organization_id=request.organization_id,
        user_id=request.user_id,
        status=Status.APPROVED,
        auto_approved=True,
    )
    recent = approved.filter(decided_at__gt=now - dt.timedelta(hours=24)).count()
    if recent >= rule.max_approvals_per_day:
        return _(
            "Held for an admin: %(n)s requests of this user were auto-approved in "
            "the last 24 hours (the rule allows %(max)s)."
        ) % {"n": fmt(recent), "max": fmt(rule.max_approvals_per_day)}
    month_start = now.astimezone(dt.UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    this_month = (
        approved.filter(
            token_type=request.token_type, decided_at__gte=month_start
        ).aggregate(total=Sum("approved_amount"))["total"]
        or 0
    )
    if this_month + request.amount > rule.max_per_user_month:
        return _(
            "Held for an admin: %(done)s %(type)s tokens were already auto-approved "
            "for this user this month; with %(amount)s more it would pass the "
            "rule's %(max)s a month."
        ) % {
            "done": fmt(this_month),
            "type": type_label(request.token_type),
            "amount": fmt(request.amount),
            "max": fmt(rule.max_per_user_month),
        }
    return ""


def _mark_approved(
    request: TokenRequest,
    *,
    amount: int,
    note: str,
    actor: User | None,
    auto: bool = False,
) -> None:
    request.status = Status.APPROVED
    request.auto_approved = auto
    request.approved_amount = amount
    request.admin_note = note
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(
        update_fields=[
            "status",
            "approved_amount",
            "admin_note",
            "decided_by",
            "decided_at",
            "auto_approved",
        ]
    )


# --- decisions --------------------------------------------------------------------


def token_request_approve(
    *, actor: User, request: TokenRequest, amount: int, note: str = ""
) -> TokenRequest:
    """Approve a pending request for ``amount`` tokens (the requested amount or
    any other whole number ≥ 1): the user's limit rises by it at once. Refused with
    the unallocated amount when the pool cannot cover it, and with who decided when
    the request is no longer pending."""
    _check_decision_amount(amount)
    note = _check_note(note)
    organization = request.organization
    access_organization_for_admin(actor, organization.pk)
    with transaction.atomic():
        # The request row first, as deny does: deny's audit insert takes a key-share
        # lock on the organization row, so org-then-request here could deadlock.
        request = _lock_pending(request)
        lock_organization(organization)
        user = User.objects.get(pk=request.user_id)
        if user.organization_id != organization.pk:
            raise ValidationError(
                _(
                    "%(user)s is no longer in this organization: deny the request "
                    "instead."
                )
                % {"user": user.email},
                code="not_member",
            )
        allocations = lock_allocations([user])
        approval = plan_request_approval(
            organization,
            actor=actor,
            request=request,
            user=user,
            amount=amount,
            current=allocations[(user.pk, request.token_type)].limit,
            note=note,
            message=note,
        )
        if approval.refused:
            raise approval.refusals[0]
        _mark_approved(request, amount=amount, note=note, actor=actor)
        kernel.apply(approval)
        transaction.on_commit(lambda: _email_decision(request.pk), robust=True)
    return request


def token_request_deny(
    *, actor: User, request: TokenRequest, note: str = ""
) -> TokenRequest:
    """Deny a pending request, with an optional note for the user."""
    note = _check_note(note)
    organization = request.organization
    access_organization_for_admin(actor, organization.pk)
    with transaction.atomic():
        request = _lock_pending(request)
        request.status = Status.DENIED
        request.admin_note = note
        request.decided_by = actor
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "admin_note", "decided_by", "decided_at"])
        audit.record(
            action=Action.REQUEST_DENIED,
            actor=actor,
            organization=organization,
            target=request,
            before={"status": Status.PENDING},
            after={"status": Status.DENIED},
            message=note,
        )
        transaction.on_commit(lambda: _email_decision(request.pk), robust=True)
    return request


# --- the auto-approval rule --------------------------------------------------------


def _check_percent(value) -> Decimal:
    # 0% would be a rule that can never fire (consumption is never below 0%).
    message = _(
        "Enter a percentage from 0.1 to 100, with at most one decimal place: at "
        "0% no request could ever be approved automatically."
    )
    if isinstance(value, bool) or value is None:
        raise ValidationError({"max_consumption_percent": message})
    try:
        percent = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError({"max_consumption_percent": message}) from None
    if (
        not percent.is_finite()
        or percent <= 0
        or percent > 100
        or percent != percent.quantize(Decimal("0.1"))
    ):
        raise ValidationError({"max_consumption_percent": message})
    return percent.quantize(Decimal("0.1"))


def auto_approval_rule_update(
    *,
    actor: User,
    organization: Organization,
    enabled: bool,
    max_amount: int,
    max_consumption_percent,
    max_per_user_month: int | None = None,
    max_approvals_per_day: int | None = None,
) -> AutoApprovalRule:
    """Save the organization's auto-approval rule (created on first save); one
    audit event with the fields that changed, none when nothing did. A per-user
    limit given as None keeps its current value."""
    access_organization_for_admin(actor, organization.pk)
    errors = {}
    if not _is_whole(max_amount) or max_amount < 1 or max_amount > AMOUNT_CEILING:
        errors["max_amount"] = _(
            "Enter the maximum amount as a whole number of tokens, 1 or more."
        )
    if max_per_user_month is not None and (
        not _is_whole(max_per_user_month)
        or not 1 <= max_per_user_month <= AMOUNT_CEILING
    ):
        errors["max_per_user_month"] = _(
            "Enter the monthly maximum per user as a whole number of tokens, 1 or more."
        )
    if max_approvals_per_day is not None and (
        not _is_whole(max_approvals_per_day)
        or not 1 <= max_approvals_per_day <= MAX_APPROVALS_PER_DAY
    ):
        errors["max_approvals_per_day"] = _(
            "Enter the number of auto-approvals per user in 24 hours, from 1 to "
            "%(max)s."
        ) % {"max": MAX_APPROVALS_PER_DAY}
    try:
        percent = _check_percent(max_consumption_percent)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        rule, _created = AutoApprovalRule.objects.select_for_update(
            no_key=True
        ).get_or_create(organization=organization)
        # A fresh rule holds its defaults as given (50, not Decimal("50.0")).
        rule.max_consumption_percent = Decimal(rule.max_consumption_percent)
        wanted = {
            "enabled": bool(enabled),
            "max_amount": max_amount,
            "max_consumption_percent": percent,
            "max_per_user_month": (
                rule.max_per_user_month
                if max_per_user_month is None
                else max_per_user_month
            ),
            "max_approvals_per_day": (
                rule.max_approvals_per_day
                if max_approvals_per_day is None
                else max_approvals_per_day
            ),
        }
        changed = {
            field: value
            for field, value in wanted.items()
            if getattr(rule, field) != value
        }
        if not changed:
            return rule
        before = {field: _json(getattr(rule, field)) for field in changed}
        for field, value in changed.items():
            setattr(rule, field, value)
        rule.updated_at = timezone.now()
        rule.save(update_fields=[*changed, "updated_at"])
        audit.record(
            action=Action.AUTO_APPROVAL_CHANGED,
            actor=actor,
            organization=organization,
            target=rule,
            before=before,
            after={field: _json(value) for field, value in changed.items()},
            message=(
                _("On: %(rule)s.") % {"rule": rule_description(rule)}
                if rule.enabled
                else _("Off.")
            ),
        )
    return rule


def _json(value):
    """Audit JSON: the percentage (one decimal place) as a number."""
    return float(value) if isinstance(value, Decimal | float) else value


# --- emails (after commit) ----------------------------------------------------------


def _email_context(request: TokenRequest) -> dict:
    return {
        "request": request,
        "user": request.user,
        "organization": request.organization,
        "type_label": type_label(request.token_type),
        "amount": fmt(request.amount),
        "approved_amount": fmt(request.approved_amount or 0),
        "limit_at_request": fmt(request.limit_at_request),
    }


def _email_admins(request_pk: int) -> None:
    """A new pending request: every unbanned admin of the organization except the
    one who asked (an admin may request tokens too)."""
    request = TokenRequest.objects.select_related("user", "organization").get(
        pk=request_pk
    )
    admins = list(
        User.objects.filter(
            organization_id=request.organization_id,
            role=User.Role.ADMIN,
            is_banned=False,
            is_active=True,
        )
        .exclude(pk=request.user_id)
        .order_by("email")
        .values_list("email", flat=True)
    )
    if not admins:
        return
    send_templated_email(
        to=admins,
        template="token_request_new",
        context={
            **_email_context(request),
            "queue_url": settings.SITE_URL + reverse("tokens:request_list"),
        },
    )


def _email_decision(request_pk: int) -> None:
    """The decision, its amount and note, to the user who asked."""
    request = TokenRequest.objects.select_related(
        "user", "organization", "decided_by"
    ).get(pk=request_pk)
    send_templated_email(
        to=[request.user.email],
        template="token_request_decided",
        context={
            **_email_context(request),
            "approved": request.status == Status.APPROVED,
            "me_url": settings.SITE_URL + reverse("tokens:me"),
        },
    )
