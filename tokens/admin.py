"""The staff site (/staff/) for the tokens app and the sales flow (docs/product.md,
Sales flow).

Every change goes through a service, so staff obey the same rules and leave the same
audit trail as everyone else: purchases through ``purchase_record``, enterprise
requests through ``enterprise_request_activate``/``_reject``, members through
``organization_add_member``/``_remove_member``. Ledger tables are view-only.

Member management extends the accounts app's Organization and User admins here,
because accounts may not import tokens (docs/architecture.md, Layers and layout).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import admin as accounts_admin
from accounts.forms import CanonicalEmailField
from accounts.models import EnterpriseAccountRequest, Organization, User
from asksage_admin.lib.forms import TokenAmountField
from tokens import staff_decisions as decisions
from tokens.models import (
    AIModel,
    Allocation,
    AllocationChange,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    Purchase,
    UsageCounter,
    UsageEvent,
)
from tokens.services import (
    enterprise_request_activate,
    enterprise_request_reject,
    organization_add_member,
    organization_remove_member,
    purchase_record,
)
from tokens.services.allocations import PURCHASE_COMMENT_MAX


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _tokens(field: str, label: str):
    """A list column showing a token amount with thousands separators."""

    @admin.display(description=label, ordering=field)
    def column(self, obj):
        return f"{getattr(obj, field):,}"

    return column


# --- catalog -----------------------------------------------------------------------


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "name",
        "provider",
        "tags",
        "token_type",
        "input_rate",
        "output_rate",
        "is_active",
    ]
    list_filter = ["is_active", "token_type", "provider"]
    search_fields = ["key", "name", "provider", "tags"]
    filter_horizontal = ["allowed_for"]


# --- purchases -------------------------------------------------------------------


class _DryRun(Exception):
    """Rolls back a trial run of a service inside a savepoint."""


class PurchaseAddForm(forms.ModelForm):
    """Adding a purchase: the service's rules (lots, dates) are checked by running
    ``purchase_record`` in a savepoint that is rolled back, so its messages show on
    the form; ``PurchaseAdmin.save_model`` then records it for real."""

    # The one number input convention (asksage_admin/lib/forms.py): "2,000,000".
    inference_tokens = TokenAmountField(
        label=gettext_lazy("Inference tokens"), initial=0
    )
    embedding_tokens = TokenAmountField(
        label=gettext_lazy("Embedding tokens"), initial=0
    )

    class Meta:
        model = Purchase
        fields = [
            "organization",
            "payer_email",
            "inference_tokens",
            "embedding_tokens",
            "purchased_on",
            "starts_on",
            "expires_on",
            "comment",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            with transaction.atomic():
                purchase_record(actor=None, **cleaned)
                raise _DryRun
        except _DryRun:
            pass
        except ValidationError as error:
            self.add_error(None, error)
        return cleaned


@admin.register(Purchase)
class PurchaseAdmin(admin.ModelAdmin):
    """Purchases are recorded once and never deleted; afterwards only the comment
    can change."""

    # The comment is a TextField: the form gives it the service's maximum.
    formfield_overrides = {models.TextField: {"max_length": PURCHASE_COMMENT_MAX}}

    list_display = [
        "organization",
        "starts_on",
        "expires_on",
        "inference",
        "embedding",
        "payer_email",
        "purchased_on",
        "recorded_by",
    ]
    list_filter = ["starts_on"]
    search_fields = ["organization__name", "payer_email", "comment"]
    list_select_related = ["organization", "recorded_by"]
    autocomplete_fields = ["organization"]
    date_hierarchy = "starts_on"
    inference = _tokens("inference_tokens", gettext_lazy("Inference tokens"))
    embedding = _tokens("embedding_tokens", gettext_lazy("Embedding tokens"))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PurchaseAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return PurchaseAddForm.Meta.fields
        return [*PurchaseAddForm.Meta.fields, "recorded_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f for f in self.get_fields(request, obj) if f != "comment"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["comment"])
            return
        data = {f: form.cleaned_data[f] for f in PurchaseAddForm.Meta.fields}
        purchase = purchase_record(actor=request.user, **data)
        obj.pk = purchase.pk
        obj.recorded_by = purchase.recorded_by
        obj.created_at = purchase.created_at

    def has_delete_permission(self, request, obj=None):
        return False


# --- enterprise account requests ----------------------------------------------------


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
    inference = _tokens("inference_tokens", gettext_lazy("Inference tokens"))
    embedding = _tokens("embedding_tokens", gettext_lazy("Embedding tokens"))

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
                        "reason": _error_text(error),
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
                            "reason": _error_text(error),
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


# --- the ledger, view-only ----------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger rows are written only by services; staff can look, not touch."""

    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    list_display = [
        "user",
        "organization",
        "token_type",
        "limit",
        "last_auto_increase_at",
    ]
    list_filter = ["token_type"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(AllocationChange)
class AllocationChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "time",
        "user",
        "organization",
        "token_type",
        "delta",
        "new_limit",
        "source",
        "actor",
    ]
    list_filter = ["source", "token_type"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization", "actor"]


@admin.register(UsageCounter)
class UsageCounterAdmin(ReadOnlyAdmin):
    list_display = ["user", "organization", "token_type", "period", "used", "held"]
    list_filter = ["token_type", "period"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "user",
        "organization",
        "model",
        "token_type",
        "tokens",
        "status",
        "created_at",
        "expires_at",
    ]
    list_filter = ["status", "token_type"]
    search_fields = ["user__email", "request_id"]
    list_select_related = ["user", "organization", "model"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "event_id",
        "user",
        "organization",
        "model",
        "token_type",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
    ]
    list_filter = ["token_type"]
    search_fields = ["event_id", "user__email"]
    list_select_related = ["user", "organization", "model"]


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "user",
        "organization",
        "model",
        "token_type",
        "tokens",
        "events",
    ]
    list_filter = ["token_type"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization", "model"]


@admin.register(OrgDailyUsage)
class OrgDailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "organization", "model", "token_type", "tokens", "events"]
    list_filter = ["token_type"]
    search_fields = ["organization__name", "model__key"]
    list_select_related = ["organization", "model"]


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdmin):
    list_display = [
        "month",
        "user",
        "organization",
        "inference_tokens",
        "embedding_tokens",
        "tokens",
        "events",
        "last_day",
    ]
    list_filter = ["month"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]


# --- members: extends the accounts admins -------------------------------------------


def can_manage_members(request: HttpRequest) -> bool:
    return request.user.has_perm("accounts.change_organization")


class AddMemberForm(forms.Form):
    email = CanonicalEmailField(label=gettext_lazy("Email of a registered user"))
    role = forms.ChoiceField(
        label=gettext_lazy("Role"), choices=User.Role.choices, initial=User.Role.USER
    )

    def clean_email(self) -> User:
        email = self.cleaned_data["email"]
        user = User.objects.filter(email=email).first()
        if user is None:
            raise ValidationError(
                _(
                    "No registered user has the email %(email)s: they must register "
                    "first."
                )
                % {"email": email}
            )
        return user


admin.site.unregister(Organization)


@admin.register(Organization)
class OrganizationAdmin(accounts_admin.OrganizationAdmin):
    """Adds the member count, links to the members and purchases, and an "Add
    member" page that goes through ``organization_add_member``."""

    change_form_template = "admin/tokens/organization_change_form.html"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "members"] if obj is not None else fields

    @admin.display(description=gettext_lazy("Members"))
    def members(self, obj):
        url = reverse("admin:accounts_user_changelist")
        return format_html(
            '<a href="{}?organization__id__exact={}">{}</a>',
            url,
            obj.pk,
            (lambda n: ngettext("%(n)d member", "%(n)d members", n) % {"n": n})(
                obj.members.count()
            ),
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/add-member/",
                self.admin_site.admin_view(self.add_member_view),
                name="accounts_organization_add_member",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_manage_members": can_manage_members(request),
            "can_add_purchase": request.user.has_perm("tokens.add_purchase"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def add_member_view(self, request, object_id):
        organization = get_object_or_404(Organization, pk=object_id)
        if not (
            can_manage_members(request)
            and self.has_change_permission(request, organization)
        ):
            raise PermissionDenied
        form = AddMemberForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            user = form.cleaned_data["email"]
            try:
                organization_add_member(
                    actor=request.user,
                    organization=organization,
                    user=user,
                    role=form.cleaned_data["role"],
                )
            except ValidationError as error:
                form.add_error(None, _error_text(error))
            else:
                self.message_user(
                    request,
                    _("Added %(email)s to %(org)s as %(role)s.")
                    % {
                        "email": user.email,
                        "org": organization.name,
                        "role": User.Role(user.role).label.lower(),
                    },
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(
                        "admin:accounts_organization_change", args=[organization.pk]
                    )
                )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Add a member to %(org)s") % {"org": organization.name},
            "opts": self.model._meta,
            "original": organization,
            "form": form,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tokens/add_member.html", context)


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(accounts_admin.UserAdmin):
    """Adds "Remove from organization", which returns the user's tokens to the
    pool through ``organization_remove_member``."""

    actions = [*accounts_admin.UserAdmin.actions, "remove_from_organization"]

    def has_manage_members_permission(self, request: HttpRequest) -> bool:
        return can_manage_members(request)

    @admin.action(
        description=gettext_lazy("Remove from organization…"),
        permissions=["manage_members"],
    )
    def remove_from_organization(self, request, queryset):
        """A confirmation page lists who leaves which organization, then each is
        removed in its own transaction (one audit event each)."""
        queryset = queryset.select_related("organization")
        if request.POST.get("apply"):
            removed = 0
            for user in queryset:
                try:
                    organization_remove_member(actor=request.user, user=user)
                except ValidationError as error:
                    self.message_user(
                        request,
                        _("%(email)s was not removed: %(reason)s")
                        % {"email": user.email, "reason": _error_text(error)},
                        messages.ERROR,
                    )
                else:
                    removed += 1
            if removed:
                self.message_user(
                    request,
                    ngettext(
                        "Removed %(n)d user from their organization; their tokens "
                        "went back to the pool.",
                        "Removed %(n)d users from their organization; their tokens "
                        "went back to the pool.",
                        removed,
                    )
                    % {"n": removed},
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Remove users from their organization"),
            "opts": self.model._meta,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "remove_from_organization",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tokens/remove_members.html", context)
