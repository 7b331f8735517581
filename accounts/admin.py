from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts import services
from accounts.models import AuditEvent, Organization, User


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "activated_at", "country", "domain"]
    list_filter = ["status"]
    search_fields = ["name", "domain", "email"]
    readonly_fields = ["activated_at", "created_at"]


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
    readonly_fields = ["last_login", "date_joined", "last_active_at"]
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
        self.message_user(
            request, _("MFA reset for %(n)d users.") % {"n": queryset.count()}
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
