"""Enterprise accounts (docs/product.md, Sales flow): the intake request, its activation
or rejection by sales staff, and adding or removing members of an organization
afterwards.

Every rule lives here, so the public form, the staff admin and any future API
enforce the same ones. The requester must be among the users: the request is made
on behalf of a team they belong to, and it gives the organization its contact.
"""

import re
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from accounts import audit
from accounts.emails import canonical_email
from accounts.models import AuditEvent, EnterpriseAccountRequest, Organization, User
from accounts.policy import access_staff_action
from accounts.sessions import end_user_sessions_on_commit
from asksage_admin.lib.errors import Conflict
from tokens import locks
from tokens.models import TYPE_FIELDS, AllocationChange
from tokens.services import sales_emails
from tokens.services.distribution import policy_ensure
from tokens.services.pool import kernel
from tokens.services.pool.kernel import (
    TYPES,
    fmt,
    limits_of,
    lock_allocations,
    lock_organization,
    type_label,
)
from tokens.services.pool.membership import (
    plan_activation,
    plan_member_join,
    plan_member_leave,
)
from tokens.services.pool.purchases import purchase_record

Action = AuditEvent.Action
Source = AllocationChange.Source
RequestStatus = EnterpriseAccountRequest.Status

MIN_USERS = 2
_EMAIL_SEPARATORS = re.compile(r"[\s,;]+")
_TOKEN_FIELDS = TYPE_FIELDS


# --- helpers -------------------------------------------------------------------


def split_emails(value: str | Iterable[str]) -> list[str]:
    """Emails from text (one per line, or separated by commas, semicolons or
    spaces) or from a list: in their canonical form (accounts.emails), duplicates
    dropped, in order."""
    parts = _EMAIL_SEPARATORS.split(value) if isinstance(value, str) else value
    seen: dict[str, None] = {}
    for part in parts:
        email = canonical_email(part)
        if email:
            seen.setdefault(email, None)
    return list(seen)


def _invalid_emails(emails: list[str]) -> list[str]:
    invalid = []
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            invalid.append(email)
    return invalid


def _join(emails: Iterable[str]) -> str:
    return ", ".join(emails)


def _membership_problems(emails: list[str], users: dict[str, User]) -> list[str]:
    """Why some of ``emails`` cannot join a new organization (empty when all can):
    unknown, terms not accepted, already in an organization."""
    problems = []
    unknown = [e for e in emails if e not in users]
    if unknown:
        problems.append(
            _(
                "These emails do not belong to a registered user: %(emails)s. Each "
                "person must register (and accept the terms) before the request."
            )
            % {"emails": _join(unknown)}
        )
    no_terms = [e for e in emails if e in users and users[e].terms_accepted_at is None]
    if no_terms:
        problems.append(
            _("These users have not accepted the terms of service yet: %(emails)s.")
            % {"emails": _join(no_terms)}
        )
    taken = [e for e in emails if e in users and users[e].organization_id is not None]
    if taken:
        problems.append(
            _("These users already belong to an organization: %(emails)s.")
            % {"emails": _join(taken)}
        )
    return problems


def _users_by_email(emails: list[str], *, lock: bool = False) -> dict[str, User]:
    queryset = User.objects.filter(email__in=emails).order_by("pk")
    if lock:
        queryset = queryset.select_for_update(no_key=True)
    return {user.email: user for user in queryset}


def _check_amount(amount: int, token_type: str, user_count: int) -> str | None:
    """The message for a token amount that breaks the lot or minimum rule."""
    lot, minimum = settings.TOKEN_LOT, settings.MIN_USER_TOKENS
    if isinstance(amount, bool) or not isinstance(amount, int):
        return _("Enter a whole number of tokens.")
    if amount % lot:
        return _("Tokens are sold in lots of %(lot)s: enter a multiple of %(lot)s.") % {
            "lot": fmt(lot)
        }
    needed = minimum * max(user_count, MIN_USERS)
    if amount < needed:
        at_least = -(-needed // lot) * lot
        return _(
            "%(users)d users need at least %(needed)s %(type)s tokens (%(min)s each): "
            "enter %(at_least)s or more."
        ) % {
            "users": max(user_count, MIN_USERS),
            "needed": fmt(needed),
            "type": type_label(token_type),
            "min": fmt(minimum),
            "at_least": fmt(at_least),
        }
    return None


def _ensure_pending(request: EnterpriseAccountRequest) -> None:
    if request.status != RequestStatus.PENDING:
        raise Conflict(
            _("This request is already %(status)s.")
            % {"status": request.get_status_display().lower()},
            code="not_pending",
        )


def _join_organization(
    user: User, organization: Organization, allocations: dict
) -> None:
    """Point the user's allocation rows at their new organization. Rows left by a
    former organization hold 0 (removal returns the tokens), so nothing moves."""
    for token_type in TYPES:
        allocation = allocations[(user.pk, token_type)]
        if allocation.organization_id != organization.pk:
            allocation.organization_id = organization.pk
            allocation.save(update_fields=["organization"])


# --- the intake ------------------------------------------------------------------

# Longest free text accepted (TextFields in the model; the limits are here).
BILLING_ADDRESS_MAX = 500
OTHER_INFORMATION_MAX = 2_000
EMAIL_LIST_MAX = 200_000  # some 5,000 addresses


def enterprise_request_submit(
    *,
    requester: User,
    organization_name: str,
    billing_address: str,
    user_emails: str | Iterable[str],
    admin_emails: str | Iterable[str],
    inference_tokens: int,
    embedding_tokens: int,
    other_information: str = "",
) -> EnterpriseAccountRequest:
    """Save a pending request for an Enterprise Account, or refuse it with every
    problem at once, each naming the offending emails (ValidationError keyed by
    field; ``__all__`` for the one-pending-request rule)."""
    organization_name = organization_name.strip()
    billing_address = billing_address.strip()
    users = split_emails(user_emails)
    admins = split_emails(admin_emails)
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not organization_name:
        add("organization_name", _("Enter the organization's name."))
    elif len(organization_name) > 200:
        add("organization_name", _("Keep the name to 200 characters or fewer."))
    if not billing_address:
        add("billing_address", _("Enter the billing address."))
    elif len(billing_address) > BILLING_ADDRESS_MAX:
        add(
            "billing_address",
            _("Keep the billing address to %(max)s characters or fewer (it has %(n)s).")
            % {"max": fmt(BILLING_ADDRESS_MAX), "n": fmt(len(billing_address))},
        )
    if len(other_information or "") > OTHER_INFORMATION_MAX:
        add(
            "other_information",
            _(
                "Keep the other information to %(max)s characters or fewer (it has "
                "%(n)s)."
            )
            % {"max": fmt(OTHER_INFORMATION_MAX), "n": fmt(len(other_information))},
        )

    for field, emails in (("user_emails", users), ("admin_emails", admins)):
        invalid = _invalid_emails(emails)
        if invalid:
            add(
                field,
                _("These are not valid email addresses: %(emails)s.")
                % {"emails": _join(invalid)},
            )
    users = [e for e in users if e not in _invalid_emails(users)]
    admins = [e for e in admins if e not in _invalid_emails(admins)]

    if len(users) < MIN_USERS:
        add(
            "user_emails",
            _("An Enterprise Account needs at least %(min)d users; you listed %(n)d.")
            % {"min": MIN_USERS, "n": len(users)},
        )
    if canonical_email(requester.email) not in users:
        add(
            "user_emails",
            _("Include your own email (%(email)s) among the users.")
            % {"email": requester.email},
        )
    if not admins:
        add("admin_emails", _("Name at least one admin."))
    outsiders = [a for a in admins if a not in users]
    if outsiders:
        add(
            "admin_emails",
            _(
                "Every admin must also be listed among the users; these are not: "
                "%(emails)s."
            )
            % {"emails": _join(outsiders)},
        )
    for token_type, amount in (
        ("inference", inference_tokens),
        ("embedding", embedding_tokens),
    ):
        message = _check_amount(amount, token_type, len(users))
        if message:
            add(_TOKEN_FIELDS[token_type], message)

    with transaction.atomic():
        # The requester's row serialises their submissions: one pending at a time.
        User.objects.select_for_update(no_key=True).filter(pk=requester.pk).first()
        pending = (
            EnterpriseAccountRequest.objects.filter(
                requested_by=requester, status=RequestStatus.PENDING
            )
            .order_by("created_at")
            .first()
        )
        if pending is not None:
            add(
                NON_FIELD_ERRORS,
                _(
                    "You already have a pending request (%(name)s, sent on %(date)s). "
                    "Sales will contact you; you can send another once it is decided."
                )
                % {
                    "name": pending.organization_name,
                    "date": date_format(pending.created_at, "DATE_FORMAT"),
                },
            )
        for problem in _membership_problems(users, _users_by_email(users)):
            add("user_emails", problem)
        if errors:
            raise ValidationError(errors)
        request = EnterpriseAccountRequest.objects.create(
            requested_by=requester,
            organization_name=organization_name,
            billing_address=billing_address,
            user_emails=users,
            admin_emails=admins,
            inference_tokens=inference_tokens,
            embedding_tokens=embedding_tokens,
            other_information=other_information.strip(),
        )
        audit.record(
            action=Action.ORG_REQUESTED,
            actor=requester,
            target=request,
            after={
                "organization_name": organization_name,
                "users": users,
                "admins": admins,
                "inference_tokens": inference_tokens,
                "embedding_tokens": embedding_tokens,
            },
        )
        sales_emails.queue(
            "new enterprise request", sales_emails.send_new_request, request.pk
        )
    return request


# --- staff decisions -------------------------------------------------------------


def enterprise_request_activate(
    *, actor: User | None, request: EnterpriseAccountRequest
) -> Organization:
    """Create the organization of a pending request: record its purchase, attach
    its users (admins as admins), give each an equal share of the pool per type,
    and mark the request activated. Refused, with nothing changed, when the request
    is not pending or a user can no longer join."""
    access_staff_action(actor, "accounts.change_enterpriseaccountrequest")
    with transaction.atomic():
        locked = EnterpriseAccountRequest.objects.select_for_update(no_key=True).get(
            pk=request.pk
        )
        _ensure_pending(locked)
        emails = split_emails(locked.user_emails)
        admins = set(split_emails(locked.admin_emails))
        users_by_email = _users_by_email(emails, lock=True)
        problems = _membership_problems(emails, users_by_email)
        if problems:
            raise ValidationError([_("This request cannot be activated."), *problems])
        amounts = {
            "inference": locked.inference_tokens,
            "embedding": locked.embedding_tokens,
        }
        count = len(emails)
        shares = {t: amounts[t] // count for t in TYPES}
        for token_type, share in shares.items():
            if share < settings.MIN_USER_TOKENS:
                raise ValidationError(
                    _(
                        "The %(type)s tokens requested (%(amount)s) cannot give each "
                        "of the %(n)d users the platform minimum of %(min)s."
                    )
                    % {
                        "type": type_label(token_type),
                        "amount": fmt(amounts[token_type]),
                        "n": count,
                        "min": fmt(settings.MIN_USER_TOKENS),
                    },
                    code="below_minimum",
                )

        requester = locked.requested_by
        now = timezone.now()
        organization = Organization.objects.create(
            name=locked.organization_name,
            billing_address=locked.billing_address,
            contact_name=requester.get_full_name(),
            email=requester.email,
            status=Organization.Status.ACTIVE,
            activated_at=now,
        )
        policy_ensure(organization=organization)
        purchase_record(
            actor=actor,
            organization=organization,
            payer_email=requester.email,
            inference_tokens=amounts["inference"],
            embedding_tokens=amounts["embedding"],
            starts_on=timezone.localdate(),
            comment=_("Enterprise account activation (request #%(id)s).")
            % {"id": locked.pk},
        )
        lock_organization(organization)
        users = list(users_by_email.values())
        for user in users:
            user.organization = organization
            user.role = User.Role.ADMIN if user.email in admins else User.Role.USER
            user.is_paid = True
            user.save(update_fields=["organization", "role", "is_paid"])
        allocations = lock_allocations(users)
        plan = plan_activation(
            organization,
            actor=actor,
            users=users,
            shares=shares,
            limits={key: a.limit for key, a in allocations.items()},
        )
        if plan.refused:
            raise plan.refusals[0]
        for user in users:
            _join_organization(user, organization, allocations)
        kernel.apply(plan)
        audit.record(
            action=Action.ORG_ACTIVATED,
            actor=actor,
            organization=organization,
            target=organization,
            before={"request": locked.pk, "status": RequestStatus.PENDING},
            after={
                "name": organization.name,
                "users": count,
                "admins": sorted(admins),
                "inference_tokens": amounts["inference"],
                "embedding_tokens": amounts["embedding"],
                "inference_share": shares["inference"],
                "embedding_share": shares["embedding"],
            },
        )
        locked.status = RequestStatus.ACTIVATED
        locked.reviewed_by = actor
        locked.reviewed_at = now
        locked.organization = organization
        locked.save(
            update_fields=["status", "reviewed_by", "reviewed_at", "organization"]
        )
        sales_emails.queue("activation", sales_emails.send_activated, locked.pk)
        for user in users:
            if user.pk != requester.pk:
                sales_emails.queue(
                    "member added",
                    sales_emails.send_member_added,
                    user.pk,
                    organization.pk,
                )
    request.status, request.organization = locked.status, organization
    return organization


def enterprise_request_reject(
    *, actor: User | None, request: EnterpriseAccountRequest, reason: str
) -> EnterpriseAccountRequest:
    """Turn a pending request down, with a reason the requester can act on."""
    access_staff_action(actor, "accounts.change_enterpriseaccountrequest")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            {"reason": _("Give a reason for the rejection.")}, code="required"
        )
    with transaction.atomic():
        locked = EnterpriseAccountRequest.objects.select_for_update(no_key=True).get(
            pk=request.pk
        )
        _ensure_pending(locked)
        locked.status = RequestStatus.REJECTED
        locked.reviewed_by = actor
        locked.reviewed_at = timezone.now()
        locked.rejection_reason = reason
        locked.save(
            update_fields=["status", "reviewed_by", "reviewed_at", "rejection_reason"]
        )
        audit.record(
            action=Action.ORG_REQUEST_REJECTED,
            actor=actor,
            target=locked,
            before={"status": RequestStatus.PENDING},
            after={"status": RequestStatus.REJECTED, "reason": reason},
            message=reason,
        )
        sales_emails.queue("rejection", sales_emails.send_rejected, locked.pk)
    request.status = locked.status
    return locked


# --- members after activation ----------------------------------------------------


def organization_add_member(
    *, actor: User | None, organization: Organization, user: User, role: str
) -> list[AllocationChange]:
    """Add a registered user (terms accepted, in no organization) to an active
    organization with the platform minimum per type, taken from the unallocated
    pool; refused, naming the missing tokens, when the pool cannot cover it."""
    access_staff_action(actor, "accounts.change_organization")
    if role not in User.Role.values:
        raise ValidationError({"role": _("Choose a role: user or admin.")})
    with transaction.atomic():
        org = lock_organization(organization)
        if not org.is_active:
            raise ValidationError(
                _(
                    "%(org)s is not active: members can be added to active "
                    "organizations only."
                )
                % {"org": org.name}
            )
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if locked.organization_id == org.pk:
            raise ValidationError(
                _("%(email)s is already a member of %(org)s.")
                % {"email": locked.email, "org": org.name}
            )
        if locked.organization_id is not None:
            raise ValidationError(
                _("%(email)s already belongs to another organization.")
                % {"email": locked.email}
            )
        if locked.terms_accepted_at is None:
            raise ValidationError(
                _("%(email)s has not accepted the terms of service yet.")
                % {"email": locked.email}
            )
        locked.organization = org
        locked.role = role
        locked.is_paid = True
        locked.save(update_fields=["organization", "role", "is_paid"])
        allocations = lock_allocations([locked])
        _join_organization(locked, org, allocations)
        plan = plan_member_join(
            org,
            actor=actor,
            user=locked,
            role=role,
            current=limits_of(locked, allocations),
        )
        changes = kernel.apply(plan)
        sales_emails.queue(
            "member added", sales_emails.send_member_added, locked.pk, org.pk
        )
    user.organization, user.role, user.is_paid = org, role, True
    return changes


def organization_remove_member(
    *, actor: User | None, user: User
) -> list[AllocationChange]:
    """Take a user out of their organization: their limits go back to the pool
    (0 per type), and they become a plain user in no organization. Their usage and
    history stay with the organization. The last admin cannot be removed."""
    access_staff_action(actor, "accounts.change_organization")
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(
            _(
                "You cannot remove yourself from your organization: another admin "
                "or a superuser must do it. Nothing was changed."
            ),
            code="self_action",
        )
    organization_id = (
        User.objects.filter(pk=user.pk).values_list("organization", flat=True).first()
    )
    if organization_id is None:
        raise ValidationError(
            _("%(email)s is not a member of any organization.") % {"email": user.email}
        )
    with transaction.atomic():
        # The lock order (tokens/locks.py): the organization, then the user.
        org = locks.lock_organization(organization_id)
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if locked.organization_id != org.pk:
            raise Conflict(
                _("%(email)s changed organization meanwhile; reload and try again.")
                % {"email": locked.email}
            )
        if (
            locked.role == User.Role.ADMIN
            and not org.members.filter(role=User.Role.ADMIN)
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise ValidationError(
                _(
                    "%(email)s is the only admin of %(org)s: make another member an "
                    "admin first."
                )
                % {"email": locked.email, "org": org.name}
            )
        allocations = lock_allocations([locked])
        # The changes belong to the organization the tokens return to, so they are
        # applied before the user leaves it.
        changes = kernel.apply(
            plan_member_leave(
                org,
                actor=actor,
                user=locked,
                current=limits_of(locked, allocations),
            )
        )
        locked.organization = None
        locked.role = User.Role.USER
        locked.save(update_fields=["organization", "role"])
        end_user_sessions_on_commit([locked.pk])
    user.organization, user.role = None, User.Role.USER
    return changes
