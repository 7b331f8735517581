"""Withdrawing one's own pending request (docs/product.md, Token Requests and Sales
flow): a member takes back a token request, a requester an Enterprise Account
request, while it is still pending.

Only the person who asked may withdraw (anyone else, staff and the system included,
is refused with ``PermissionDenied``: a withdrawal speaks for the requester). The
request row is locked first, as a decision locks it, so a withdrawal and an admin's
decision at the same moment cannot both win: the second is told the request is no
longer pending. One audit event per withdrawal; nothing else changes (no limit, no
pool), so no e-mail is sent.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEvent, EnterpriseAccountRequest, User
from accounts.policy import access_own_request
from tokens.models import TokenRequest

Action = AuditEvent.Action


def _not_pending(status_label: str) -> ValidationError:
    return ValidationError(
        _(
            "This request is already %(status)s: only a pending request can be "
            "withdrawn."
        )
        % {"status": status_label.lower()},
        code="not_pending",
    )


def token_request_withdraw(
    *, actor: User | None, request: TokenRequest
) -> TokenRequest:
    """Withdraw the actor's own pending token request: it leaves the admins' queue
    and the member may ask again for that token type."""
    access_own_request(actor, request.user_id)
    with transaction.atomic():
        locked = TokenRequest.objects.select_for_update(no_key=True).get(pk=request.pk)
        if locked.status != TokenRequest.Status.PENDING:
            raise _not_pending(locked.get_status_display())
        locked.status = TokenRequest.Status.WITHDRAWN
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        audit.record(
            action=Action.REQUEST_WITHDRAWN,
            actor=actor,
            organization=locked.organization,
            target=locked,
            before={"status": TokenRequest.Status.PENDING},
            after={"status": TokenRequest.Status.WITHDRAWN},
        )
    request.status = locked.status
    return locked


def enterprise_request_withdraw(
    *, actor: User | None, request: EnterpriseAccountRequest
) -> EnterpriseAccountRequest:
    """Withdraw the actor's own pending Enterprise Account request: staff no
    longer see it as pending and the requester may send a new one."""
    access_own_request(actor, request.requested_by_id)
    with transaction.atomic():
        locked = EnterpriseAccountRequest.objects.select_for_update(no_key=True).get(
            pk=request.pk
        )
        if locked.status != EnterpriseAccountRequest.Status.PENDING:
            raise _not_pending(locked.get_status_display())
        locked.status = EnterpriseAccountRequest.Status.WITHDRAWN
        locked.reviewed_at = timezone.now()
        locked.save(update_fields=["status", "reviewed_at"])
        audit.record(
            action=Action.ORG_REQUEST_WITHDRAWN,
            actor=actor,
            target=locked,
            before={"status": EnterpriseAccountRequest.Status.PENDING},
            after={"status": EnterpriseAccountRequest.Status.WITHDRAWN},
        )
    request.status = locked.status
    return locked


def withdrawn_message(when: dt.datetime) -> str:
    """The refusal an admin sees when deciding a request withdrawn meanwhile."""
    return _("The requester withdrew this request on %(date)s.") % {
        "date": f"{when.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    }
