"""Management → Token Requests (docs/product.md, Token Requests): the admin queue with
its tabs, the approve and deny forms, the auto-approval rule; and the member's request
form on /me/."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView
from django_tables2 import SingleTableMixin

from accounts.access import PanelAccessMixin
from asksage_admin.lib.next_url import safe_next
from tokens import selectors
from tokens.forms.requests import (
    ApproveForm,
    AutoApprovalForm,
    DenyForm,
    TokenRequestForm,
)
from tokens.models import TokenRequest
from tokens.services.pool import fmt, type_label
from tokens.services.pool.plans import plan_request_approval
from tokens.services.requests import (
    already_decided,
    auto_approval_rule_update,
    rule_description,
    token_request_approve,
    token_request_deny,
    token_request_submit,
)
from tokens.tables.requests import TokenRequestTable
from tokens.views.me import MeView

TABS = [
    ("pending", gettext_lazy("Pending")),
    ("approved", gettext_lazy("Approved")),
    ("denied", gettext_lazy("Denied")),
    ("all", gettext_lazy("All")),
]


class RequestsPanelMixin(PanelAccessMixin):
    nav_active = "requests"

    def list_url(self, status: str = "") -> str:
        url = reverse("tokens:request_list")
        org_query = self.panel_context()["org_query"]
        if status:
            return f"{url}{org_query}{'&' if org_query else '?'}status={status}"
        return url + org_query

    def back_url(self) -> str:
        """Where to go after a decision: the queue page the admin came from."""
        return safe_next(self.request, self.list_url())

    def get_request(self, pk: int) -> TokenRequest:
        """The org's request or 404: another organization's request does not exist
        here."""
        return get_object_or_404(
            selectors.token_requests_in(self.org).select_related("user", "decided_by"),
            pk=pk,
        )


class RequestListView(RequestsPanelMixin, SingleTableMixin, TemplateView):
    """The queue: totals, tabs with counts, the unallocated pool, the table and the
    auto-approval card."""

    template_name = "tokens/request_list.html"
    table_class = TokenRequestTable
    table_pagination = {"per_page": 25}

    def status(self) -> str:
        status = self.request.GET.get("status", "pending")
        return status if status in selectors.REQUEST_TABS else "pending"

    def get_queryset(self):
        return selectors.token_requests_for_panel(self.org, self.status())

    def get_table_kwargs(self):
        return {
            "org_query": self.panel_context()["org_query"],
            "back": self.request.get_full_path(),
        }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = selectors.token_request_counts(self.org)
        rule = selectors.auto_approval_rule(self.org)
        summary = selectors.org_summary(self.org)
        status = self.status()
        context.update(
            status=status,
            counts=counts,
            tabs=[
                {
                    "status": key,
                    "label": label,
                    "count": counts[key],
                    "url": self.list_url(key),
                    "current": key == status,
                }
                for key, label in TABS
            ],
            summary=summary,
            consumption=[
                {
                    "label": type_label(t),
                    "percent": (
                        round(100 * summary[t].used / summary[t].pool, 1)
                        if summary[t].pool
                        else None
                    ),
                }
                for t in selectors.TYPES
            ],
            rule=rule,
            rule_text=rule_description(rule),
            rule_form=kwargs.get("rule_form")
            or AutoApprovalForm(
                initial={
                    "enabled": rule.enabled,
                    "max_amount": rule.max_amount,
                    "max_consumption_percent": rule.max_consumption_percent,
                    "max_per_user_month": rule.max_per_user_month,
                    "max_approvals_per_day": rule.max_approvals_per_day,
                }
            ),
        )
        return context


class AutoApprovalUpdateView(RequestListView):
    """POST only: save the auto-approval rule; bad input re-renders the queue with
    the card's errors."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = AutoApprovalForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            before = selectors.auto_approval_rule(self.org)
            try:
                rule = auto_approval_rule_update(
                    actor=request.user,
                    organization=self.org,
                    enabled=data["enabled"],
                    max_amount=data["max_amount"],
                    max_consumption_percent=data["max_consumption_percent"],
                    max_per_user_month=data["max_per_user_month"],
                    max_approvals_per_day=data["max_approvals_per_day"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                fields = (
                    "enabled",
                    "max_amount",
                    "max_consumption_percent",
                    "max_per_user_month",
                    "max_approvals_per_day",
                )
                if all(getattr(before, f) == getattr(rule, f) for f in fields):
                    messages.info(request, _("The auto-approval rule is unchanged."))
                elif rule.enabled:
                    messages.success(
                        request,
                        _("Auto-approval is on: %(rule)s.")
                        % {"rule": rule_description(rule)},
                    )
                else:
                    messages.success(
                        request,
                        _("Auto-approval is off: every request waits for an admin."),
                    )
                return redirect(self.back_url())
        return self.render_to_response(
            self.get_context_data(rule_form=form), status=400
        )


class RequestDecisionView(RequestsPanelMixin, TemplateView):
    """GET: a small form for one pending request; POST: the decision, then back to
    the queue with a message. A request decided meanwhile sends the admin back to
    the queue with who decided it."""

    template_name = "tokens/request_decide.html"
    form_class = None
    decision = ""
    error_field = ""  # where a refusal without a field goes

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        token_request = self.get_request(pk)
        if token_request.status != TokenRequest.Status.PENDING:
            messages.info(request, already_decided(token_request).messages[0])
            return redirect(self.back_url())
        return self.render(token_request, self.initial_form(token_request))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        token_request = self.get_request(pk)
        form = self.form_class(request.POST)
        if form.is_valid():
            try:
                self.decide(token_request, form.cleaned_data)
            except ValidationError as error:
                if getattr(error, "code", None) == "already_decided":
                    messages.error(request, error.messages[0])
                    return redirect(self.back_url())
                if hasattr(error, "error_dict"):
                    form.add_error(None, error)
                else:
                    form.add_error(self.error_field, error)
            else:
                messages.success(request, self.done_message(token_request, form))
                return redirect(self.back_url())
        return self.render(token_request, form, status=400)

    def render(self, token_request, form, status=200) -> HttpResponse:
        current = selectors.user_balance(
            self.org, token_request.user, token_request.token_type
        ).limit
        # The plan approving the requested amount (what the service applies, under
        # its locks): the pool it leaves and why it would be refused.
        plan = plan_request_approval(
            self.org,
            actor=self.request.user,
            request=token_request,
            user=token_request.user,
            amount=token_request.amount,
            current=current,
        )
        context = self.get_context_data(
            form=form,
            token_request=token_request,
            decision=self.decision,
            type_label=type_label(token_request.token_type),
            current_limit=current,
            unallocated=max(0, plan.effects[token_request.token_type].headroom),
            plan=plan,
            next=self.back_url(),
        )
        return self.response_class(
            self.request, self.template_name, context, status=status
        )


class RequestApproveView(RequestDecisionView):
    form_class = ApproveForm
    decision = "approve"
    error_field = "amount"

    def initial_form(self, token_request):
        return ApproveForm(initial={"amount": token_request.amount})

    def decide(self, token_request, data):
        token_request_approve(
            actor=self.request.user,
            request=token_request,
            amount=data["amount"],
            note=data["note"],
        )

    def done_message(self, token_request, form) -> str:
        amount = form.cleaned_data["amount"]
        return _(
            "Approved %(amount)s %(type)s tokens for %(user)s (requested "
            "%(requested)s). Their limit is now %(limit)s."
        ) % {
            "amount": fmt(amount),
            "type": type_label(token_request.token_type),
            "user": token_request.user.email,
            "requested": fmt(token_request.amount),
            "limit": fmt(
                selectors.user_balance(
                    self.org, token_request.user, token_request.token_type
                ).limit
            ),
        }


class RequestDenyView(RequestDecisionView):
    form_class = DenyForm
    decision = "deny"
    error_field = "note"

    def initial_form(self, token_request):
        return DenyForm()

    def decide(self, token_request, data):
        token_request_deny(
            actor=self.request.user, request=token_request, note=data["note"]
        )

    def done_message(self, token_request, form) -> str:
        return _("Denied %(user)s's request for %(amount)s %(type)s tokens.") % {
            "user": token_request.user.email,
            "amount": fmt(token_request.amount),
            "type": type_label(token_request.token_type),
        }


class TokenRequestSubmitView(MeView):
    """POST only (/me/requests/): a member files a request; bad input re-renders
    /me/ with the form's errors."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TokenRequestForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                token_request = token_request_submit(
                    user=request.user,
                    token_type=data["token_type"],
                    amount=data["amount"],
                    reason=data["reason"],
                )
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    form.add_error(None, error)
                else:
                    form.add_error(None, error.messages)
            else:
                names = {
                    "amount": fmt(token_request.amount),
                    "type": type_label(token_request.token_type),
                }
                if token_request.status == TokenRequest.Status.APPROVED:
                    names["limit"] = fmt(
                        token_request.limit_at_request + token_request.amount
                    )
                    messages.success(
                        request,
                        _(
                            "Approved automatically: %(amount)s %(type)s tokens were "
                            "added. Your limit is now %(limit)s."
                        )
                        % names,
                    )
                else:
                    messages.success(
                        request,
                        _(
                            "Request sent: %(amount)s %(type)s tokens. Your "
                            "organization's admins were notified by email."
                        )
                        % names,
                    )
                return redirect(reverse("tokens:me") + "#requests")
        return self.render_to_response(
            self.get_context_data(request_form=form), status=400
        )
