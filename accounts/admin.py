from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import services
from accounts.models import AuditEvent, Organization, ServiceKey, User


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    # tokens/admin/members.py extends this admin (and UserAdmin) with member management,
    # which needs the tokens services that accounts may not import
    # (docs/architecture.md, Layers and layout).
    list_display = ["name", "status", "activated_at", "country", "domain"]
    list_filter = ["status"]
    search_fields = ["name", "domain", "email"]
    # Status changes go through activation (audited); organizations are never deleted.
    readonly_fields = ["status", "activated_at", "created_at"]
    # Django 6 makes https the default scheme; choose it now (no deprecation warning).
    # The billing address is a TextField: 500 characters, as on the request form.
    formfield_overrides = {
        models.URLField: {"assume_scheme": "https"},
        models.TextField: {"max_length": 500},
    }

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = [
        "email",
        "first_name",
        "last_name",
        "organization",
        "role",
        "is_paid",
        "is_banned",
        "email_verified_at",
        "is_staff",
    ]
    list_filter = ["role", "is_paid", "is_banned", "is_staff", "is_superuser"]
    search_fields = ["email", "first_name", "last_name"]
    list_select_related = ["organization"]
    # Membership, role, paid and banned change only through the services (pool rules
    # and the audit trail): the staff actions and the panel, never a raw edit here.
    readonly_fields = [
        "organization",
        "role",
        "is_paid",
        "is_banned",
        "email_verified_at",
        "terms_accepted_at",
        "last_login",
        "date_joined",
        "last_active_at",
    ]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Name"), {"fields": ("first_name", "last_name")}),
        (
            _("Organization"),
            {"fields": ("organization", "role", "is_paid", "is_banned")},
        ),
        (
            _("Status"),
            {"fields": ("email_verified_at", "terms_accepted_at", "last_active_at")},
        ),
        (
            _("Staff permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups")},
        ),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "first_name",
                    "last_name",
                    "password1",
                    "password2",
                ),
            },
        ),
    )
    actions = ["reset_mfa"]

    @admin.action(description=_("Reset MFA (the user enrols again)"))
    def reset_mfa(self, request, queryset):
        if not request.user.is_superuser:
            self.message_user(
                request, _("Only superusers can reset MFA."), messages.ERROR
            )
            return
        for user in queryset:
            services.mfa_reset(user=user, actor=request.user)
        count = queryset.count()
        self.message_user(
            request,
            ngettext("MFA reset for %(n)d user.", "MFA reset for %(n)d users.", count)
            % {"n": count},
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only."""

    list_display = [
        "time",
        "action",
        "actor_email",
        "organization",
        "target_repr",
        "ip",
    ]
    list_filter = ["action"]
    search_fields = ["actor_email", "target_repr", "request_id"]
    list_select_related = ["organization"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceKeyAddForm(forms.ModelForm):
    class Meta:
        model = ServiceKey
        fields = ["name", "organization"]


@admin.register(ServiceKey)
class ServiceKeyAdmin(admin.ModelAdmin):
    """Keys are created through ``service_key_create`` (the secret is shown once, in
    a message) and revoked, never edited or deleted. The digest is never shown."""

    list_display = [
        "name",
        "organization",
        "prefix",
        "created_at",
        "created_by",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__name"]
    list_select_related = ["organization", "created_by"]
    actions = ["revoke_keys"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ServiceKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ServiceKeyAddForm.Meta.fields
        return [f for f in self.list_display]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        key, secret = services.service_key_create(
            actor=request.user,
            name=form.cleaned_data["name"],
            organization=form.cleaned_data["organization"],
        )
        obj.pk, obj.prefix, obj.created_at = key.pk, key.prefix, key.created_at
        messages.warning(
            request,
            _(
                "The secret of %(name)s is %(secret)s — copy it now: it is not stored "
                "and will not be shown again."
            )
            % {"name": key.name, "secret": secret},
        )

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_servicekey")

    @admin.action(description=_("Revoke selected keys"), permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        for key in queryset:
            try:
                services.service_key_revoke(actor=request.user, key=key)
            except ValidationError as error:
                self.message_user(
                    request,
                    _("%(key)s was not revoked: %(reason)s")
                    % {"key": key, "reason": " ".join(error.messages)},
                    messages.ERROR,
                )
            else:
                revoked += 1
        if revoked:
            self.message_user(
                request,
                ngettext("Revoked %(n)d key.", "Revoked %(n)d keys.", revoked)
                % {"n": revoked},
                messages.SUCCESS,
            )
