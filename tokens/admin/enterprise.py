"""The staff site's enterprise account requests (docs/product.md, Sales flow):
read-only, decided with the Activate and Reject actions
(``enterprise_request_activate``/``_reject``)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import EnterpriseAccountRequest
from tokens.admin import decisions
from tokens.admin.common import error_text, tokens_column
from tokens.services import (
    enterprise_request_activate,
    enterprise_request_reject,
)


class RejectionForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=gettext_lazy("The requester sees this reason."),
        error_messages={"required": gettext_lazy("Give a reason for the rejection.")},
    )


@admin.register(EnterpriseAccountRequest)
class EnterpriseAccountRequestAdmin(admin.ModelAdmin):
    """Requests are read-only; staff decide with the Activate and Reject actions."""

    list_display = [
        "organization_name",
        "requested_by",
        "user_count",
        "inference",
        "embedding",
        "status",
        "created_at",
        "reviewed_by",
    ]
    list_filter = ["status"]
    search_fields = ["organization_name", "requested_by__email"]
    list_select_related = ["requested_by", "reviewed_by"]
    fields = [
        "organization_name",
        "requested_by",
        "billing_address",
        "users",
        "admins",
        "inference_tokens",
        "embedding_tokens",
        "other_information",
        "status",
        "created_at",
        "reviewed_by",
        "reviewed_at",
        "rejection_reason",
        "organization",
    ]
    readonly_fields = fields
    actions = ["activate_requests", "reject_requests"]
    inference = tokens_column("inference_tokens", gettext_lazy("Inference tokens"))
    embedding = tokens_column("embedding_tokens", gettext_lazy("Embedding tokens"))

    @admin.display(description=gettext_lazy("Users"))
    def user_count(self, obj):
        return len(obj.user_emails or [])

    @admin.display(description=gettext_lazy("Users"))
    def users(self, obj):
        return format_html_join(
            mark_safe("<br>"), "{}", ((e,) for e in obj.user_emails)
        )

    @admin.display(description=gettext_lazy("Admins"))
    def admins(self, obj):
        return format_html_join(
            mark_safe("<br>"), "{}", ((e,) for e in obj.admin_emails)
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_enterpriseaccountrequest")

    change_form_template = "admin/tokens/enterpriseaccountrequest_change_form.html"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/activate/",
                self.admin_site.admin_view(self.decide_view),
                {"action": "activate_requests"},
                name="accounts_enterpriseaccountrequest_activate",
            ),
            path(
                "<path:object_id>/reject/",
                self.admin_site.admin_view(self.decide_view),
                {"action": "reject_requests"},
                name="accounts_enterpriseaccountrequest_reject",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_review": self.has_review_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def decide_view(self, request, object_id, action: str):
        """Activate…/Reject… on a request's own page: the same confirmation page
        as the list action, which then posts to that action."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not self.has_review_permission(request):
            raise PermissionDenied
        enterprise = get_object_or_404(EnterpriseAccountRequest, pk=object_id)
        queryset = EnterpriseAccountRequest.objects.filter(pk=enterprise.pk)
        return decisions.confirmation_page(
            self, request, queryset, action, form=RejectionForm(), back=enterprise.pk
        )

    @admin.action(
        description=gettext_lazy("Activate… (create the organization)"),
        permissions=["review"],
    )
    def activate_requests(self, request, queryset):
        """A confirmation page shows what activation will do, then activates each
        request."""
        if "apply" not in request.POST:
            return decisions.confirmation_page(
                self, request, queryset, "activate_requests"
            )
        for enterprise in queryset.order_by("created_at", "pk"):
            try:
                organization = enterprise_request_activate(
                    actor=request.user, request=enterprise
                )
            except ValidationError as error:
                self.message_user(
                    request,
                    _("%(request)s was not activated: %(reason)s")
                    % {
                        "request": enterprise.organization_name,
                        "reason": error_text(error),
                    },
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    format_html(
                        ngettext(
                            "Activated {name}: organization created with {n} user.",
                            "Activated {name}: organization created with {n} users.",
                            len(enterprise.user_emails),
                        ),
                        name=format_html(
                            '<a href="{}">{}</a>',
                            reverse(
                                "admin:accounts_organization_change",
                                args=[organization.pk],
                            ),
                            organization.name,
                        ),
                        n=len(enterprise.user_emails),
                    ),
                    messages.SUCCESS,
                )
        return decisions.back_to_detail(request)

    @admin.action(description=gettext_lazy("Reject…"), permissions=["review"])
    def reject_requests(self, request, queryset):
        """A confirmation page asks for the reason, then rejects each request."""
        form = RejectionForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            rejected = 0
            for enterprise in queryset.order_by("created_at", "pk"):
                try:
                    enterprise_request_reject(
                        actor=request.user,
                        request=enterprise,
                        reason=form.cleaned_data["reason"],
                    )
                except ValidationError as error:
                    self.message_user(
                        request,
                        _("%(request)s was not rejected: %(reason)s")
                        % {
                            "request": enterprise.organization_name,
                            "reason": error_text(error),
                        },
                        messages.ERROR,
                    )
                else:
                    rejected += 1
            if rejected:
                self.message_user(
                    request,
                    ngettext(
                        "Rejected %(n)d request.", "Rejected %(n)d requests.", rejected
                    )
                    % {"n": rejected},
                    messages.SUCCESS,
                )
            return decisions.back_to_detail(request)
        return decisions.confirmation_page(
            self,
            request,
            queryset,
            "reject_requests",
            form=form,
            back=request.POST.get(decisions.BACK_FIELD),
        )
