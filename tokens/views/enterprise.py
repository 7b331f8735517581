"""The public side of the sales flow (docs/product.md, Sales flow): a registered user
asks for an Enterprise Account; staff decide in /staff/ (tokens/admin/enterprise.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.models import EnterpriseAccountRequest
from tokens.forms.enterprise import EnterpriseRequestForm
from tokens.services import enterprise_request_submit


def _latest_request(user) -> EnterpriseAccountRequest | None:
    return (
        EnterpriseAccountRequest.objects.filter(requested_by=user)
        .order_by("-created_at", "-id")
        .first()
    )


@login_required
@require_http_methods(["GET", "POST"])
def enterprise_request(request: HttpRequest) -> HttpResponse:
    """The intake form. A member of an organization sees why they cannot use it;
    while the user's request is pending, the page shows that request instead (the
    "done" page, reached again by post/redirect/get)."""
    user = request.user
    if user.organization_id is not None:
        return render(
            request,
            "tokens/enterprise_request.html",
            {"form": None, "organization": user.organization},
        )
    latest = _latest_request(user)
    if request.method == "GET" and latest and latest.status == latest.Status.PENDING:
        return render(
            request, "tokens/enterprise_request_done.html", {"enterprise": latest}
        )

    form = EnterpriseRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            enterprise_request_submit(requester=user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(
                request,
                _("Request sent. Sales will contact you about payment and activation."),
            )
            return redirect("tokens:enterprise_request")
    return render(
        request,
        "tokens/enterprise_request.html",
        {
            "form": form,
            "rejected": latest
            if latest and latest.status == latest.Status.REJECTED
            else None,
        },
    )
