"""The e-mails of the sales flow (docs/product.md, Sales flow): sales staff on a new
Enterprise Account request; the requester when it is activated or rejected; a user
added to an organization (at activation or later by staff).

Each is queued by its service with ``queue`` (``transaction.on_commit``), so nothing
is sent for a change that rolls back, and each is sent by ``_deliver``, which logs a
failure (the SMTP server down, a template error) and never raises: the action has
already happened and stays done. Links are absolute, built from ``SITE_URL``
(docs/operations.md, Configuration).
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.urls import reverse

from accounts.models import EnterpriseAccountRequest, Organization, User
from accounts.services import send_templated_email
from tokens.services.pool import fmt

logger = logging.getLogger("tokens.emails")

SALES_GROUP = "Sales"


def absolute(name: str, **kwargs) -> str:
    """The absolute link to a named URL: ``SITE_URL`` + its path."""
    return settings.SITE_URL + reverse(name, kwargs=kwargs or None)


def _deliver(what: str, send: Callable[..., None], *args) -> None:
    try:
        send(*args)
    except Exception:
        logger.exception("Could not send the %s e-mail %r.", what, args)


def queue(what: str, send: Callable[..., None], *args) -> None:
    """Send after the current transaction commits; a failure is logged."""
    transaction.on_commit(lambda: _deliver(what, send, *args), robust=True)


def _request(pk: int) -> EnterpriseAccountRequest:
    return EnterpriseAccountRequest.objects.select_related(
        "requested_by", "organization"
    ).get(pk=pk)


def _request_context(enterprise: EnterpriseAccountRequest) -> dict:
    return {
        "enterprise": enterprise,
        "requester": enterprise.requested_by,
        "user_count": len(enterprise.user_emails or []),
        "inference": fmt(enterprise.inference_tokens),
        "embedding": fmt(enterprise.embedding_tokens),
    }


def sales_recipients() -> list[str]:
    """Active staff of the Sales group (superusers review too, but are not the
    sales desk)."""
    group = Group.objects.filter(name=SALES_GROUP).first()
    if group is None:
        return []
    return list(
        User.objects.filter(Q(groups=group), is_active=True, is_staff=True)
        .order_by("email")
        .values_list("email", flat=True)
        .distinct()
    )


def send_new_request(request_pk: int) -> None:
    """A new Enterprise Account request, to the sales desk."""
    recipients = sales_recipients()
    if not recipients:
        return
    enterprise = _request(request_pk)
    send_templated_email(
        to=recipients,
        template="enterprise_request_new",
        context={
            **_request_context(enterprise),
            "review_url": absolute(
                "admin:accounts_enterpriseaccountrequest_change",
                object_id=enterprise.pk,
            ),
        },
    )


def send_activated(request_pk: int) -> None:
    """The requester's organization exists: where to go next."""
    enterprise = _request(request_pk)
    send_templated_email(
        to=[enterprise.requested_by.email],
        template="enterprise_request_activated",
        context={
            **_request_context(enterprise),
            "organization": enterprise.organization,
            "panel_url": absolute("panel"),
            "me_url": absolute("tokens:me"),
        },
    )


def send_rejected(request_pk: int) -> None:
    """The reason the request was turned down, and how to send a new one."""
    enterprise = _request(request_pk)
    send_templated_email(
        to=[enterprise.requested_by.email],
        template="enterprise_request_rejected",
        context={
            **_request_context(enterprise),
            "request_url": absolute("tokens:enterprise_request"),
        },
    )


def send_member_added(user_pk: int, organization_pk: int) -> None:
    """A user now belongs to an organization (activation or staff's Add member)."""
    user = User.objects.get(pk=user_pk)
    organization = Organization.objects.get(pk=organization_pk)
    send_templated_email(
        to=[user.email],
        template="member_added",
        context={
            "user": user,
            "organization": organization,
            "role": User.Role(user.role).label.lower(),
            "is_admin": user.role == User.Role.ADMIN,
            "me_url": absolute("tokens:me"),
            "panel_url": absolute("panel"),
        },
    )
