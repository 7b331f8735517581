"""The confirmation pages of the staff's decisions on Enterprise Account requests
(docs/product.md, Sales flow): the list actions Activate… and Reject… and the same
buttons on a request's own page show what will happen first; confirming posts to
the list action (``apply``), which calls the services. Read-only: nothing here
changes anything."""

from django.conf import settings
from django.contrib.admin import helpers
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import EnterpriseAccountRequest
from tokens.services.activation import (
    _membership_problems,
    _users_by_email,
    split_emails,
)

# A hidden field naming the request whose own page the decision started from, so
# that the answer goes back there instead of the list.
BACK_FIELD = "_back_to"

TEMPLATES = {
    "activate_requests": "admin/tokens/activate_requests.html",
    "reject_requests": "admin/tokens/reject_requests.html",
}
TITLES = {
    "activate_requests": gettext_lazy("Activate enterprise account requests"),
    "reject_requests": gettext_lazy("Reject enterprise account requests"),
}


def activation_plan(enterprise: EnterpriseAccountRequest) -> dict:
    """What activating ``enterprise`` would do now: the users with their role and
    equal share per type, the purchase, and why it would be refused (if so)."""
    emails = split_emails(enterprise.user_emails)
    admins = set(split_emails(enterprise.admin_emails))
    count = max(len(emails), 1)
    pending = enterprise.status == EnterpriseAccountRequest.Status.PENDING
    problems = _membership_problems(emails, _users_by_email(emails)) if pending else []
    shares = {
        "inference": enterprise.inference_tokens // count,
        "embedding": enterprise.embedding_tokens // count,
    }
    for token_type, share in shares.items():
        if share < settings.MIN_USER_TOKENS:
            problems.append(
                _("Each user's %(type)s share (%(share)s) is below the minimum.")
                % {"type": token_type, "share": f"{share:,}"}
            )
    return {
        "request": enterprise,
        "pending": pending,
        "users": [(email, email in admins) for email in emails],
        "shares": shares,
        "problems": problems,
    }


def confirmation_page(
    model_admin, request: HttpRequest, queryset, action: str, *, form=None, back=None
) -> TemplateResponse:
    requests = list(queryset.select_related("requested_by").order_by("created_at"))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": TITLES[action],
        "opts": model_admin.model._meta,
        "queryset": requests,
        "plans": [activation_plan(r) for r in requests],
        "not_pending": [
            r for r in requests if r.status != EnterpriseAccountRequest.Status.PENDING
        ],
        "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action_name": action,
        "changelist_url": reverse("admin:accounts_enterpriseaccountrequest_changelist"),
        "back_field": BACK_FIELD,
        "back": back or "",
        "back_url": (
            reverse("admin:accounts_enterpriseaccountrequest_change", args=[back])
            if back
            else reverse("admin:accounts_enterpriseaccountrequest_changelist")
        ),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, TEMPLATES[action], context)


def back_to_detail(request: HttpRequest) -> HttpResponseRedirect | None:
    """After a decision: the request's own page when it started there, else the
    list (``None`` lets the admin redirect to it)."""
    back = request.POST.get(BACK_FIELD, "")
    if back.isdigit():
        return HttpResponseRedirect(
            reverse("admin:accounts_enterpriseaccountrequest_change", args=[back])
        )
    return None
