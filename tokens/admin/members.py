"""Member management on the staff site: extends the accounts app's Organization and
User admins (``organization_add_member``/``_remove_member``), because accounts may
not import tokens (docs/architecture.md, Layers and layout)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import admin as accounts_admin
from accounts.forms import CanonicalEmailField
from accounts.models import Organization, User
from tokens.admin.common import error_text
from tokens.services import (
    organization_add_member,
    organization_remove_member,
)
from tokens.services.pool import TYPES
from tokens.services.pool.membership import plan_member_leave
from tokens.services.pool.plans import current_limits


def _leave_plan(actor, user):
    """The plan ``organization_remove_member`` applies to ``user`` (None outside an
    organization): what the confirmation page shows returning to the pool."""
    organization = user.organization
    if organization is None:
        return None
    limits = current_limits(organization, [user])
    return plan_member_leave(
        organization,
        actor=actor,
        user=user,
        current={t: limits[(user.pk, t)] for t in TYPES},
    )


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
                form.add_error(None, error_text(error))
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
                        % {"email": user.email, "reason": error_text(error)},
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
            "members": [(user, _leave_plan(request.user, user)) for user in queryset],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "remove_from_organization",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tokens/remove_members.html", context)
