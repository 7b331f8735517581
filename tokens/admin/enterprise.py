"""The staff site's enterprise account requests (docs/product.md, Sales flow):
read-only, decided with the Activate and Reject actions
(``enterprise_request_activate``/``_reject``)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import EnterpriseAccountRequest
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

    @admin.action(
        description=gettext_lazy("Activate (create the organization)"),
        permissions=["review"],
    )
    def activate_requests(self, request, queryset):
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
                        _("Activated {name}: organization created with {n} users."),
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
                    _("Rejected %(n)d requests.") % {"n": rejected},
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Reject enterprise account requests"),
            "opts": self.model._meta,
            "queryset": queryset,
            "not_pending": [
                r
                for r in queryset
                if r.status != EnterpriseAccountRequest.Status.PENDING
            ],
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "reject_requests",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tokens/reject_requests.html", context)
