"""Withdrawing one's own pending request (docs/product.md, Token Requests and Sales
flow). POST only; someone else's request is a 404, as if it did not exist."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import EnterpriseAccountRequest
from tokens.models import TokenRequest
from tokens.services.pool import fmt, type_label
from tokens.services.withdrawal import (
    enterprise_request_withdraw,
    token_request_withdraw,
)


@login_required
@require_POST
def token_request_withdraw_view(request: HttpRequest, pk: int) -> HttpResponse:
    """/me/requests/<pk>/withdraw/: the member's own pending token request."""
    token_request = (
        TokenRequest.objects.filter(user=request.user, pk=pk)
        .select_related("organization")
        .first()
    )
    if token_request is None:
        raise Http404
    try:
        token_request_withdraw(actor=request.user, request=token_request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            _("Withdrawn: your request for %(amount)s %(type)s tokens.")
            % {
                "amount": fmt(token_request.amount),
                "type": type_label(token_request.token_type),
            },
        )
    return redirect(reverse("tokens:me") + "#requests")


@login_required
@require_POST
def enterprise_request_withdraw_view(request: HttpRequest, pk: int) -> HttpResponse:
    """/enterprise/request/<pk>/withdraw/: the user's own pending request."""
    enterprise = EnterpriseAccountRequest.objects.filter(
        requested_by=request.user, pk=pk
    ).first()
    if enterprise is None:
        raise Http404
    try:
        enterprise_request_withdraw(actor=request.user, request=enterprise)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            _("Withdrawn: your request for %(name)s. You can send a new one.")
            % {"name": enterprise.organization_name},
        )
    return redirect("tokens:enterprise_request")
