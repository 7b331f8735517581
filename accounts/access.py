"""Who may open the admin panel, and for which organization (docs/security.md, Who sees
what).

Every panel view uses ``PanelAccessMixin``: signed in, not banned, an org admin or a
superuser, MFA passed when required. The organization comes from the user; a
superuser may pass ``?org=<id>``. Views then load objects through selectors scoped to
``self.org``, so another organization's object is a 404.
"""

from urllib.parse import urlencode

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.models import Organization
from accounts.services import user_has_mfa


def mfa_redirect(request):
    """Where an admin who has not passed MFA in this session must go first."""
    name = "accounts:mfa_verify" if user_has_mfa(request.user) else "accounts:mfa_setup"
    return redirect(f"{reverse(name)}?{urlencode({'next': request.get_full_path()})}")


def resolve_panel_org(request) -> Organization | None:
    user = request.user
    if user.is_superuser:
        org_id = request.GET.get("org") or request.POST.get("org")
        if org_id:
            if not str(org_id).isdigit():
                raise PermissionDenied
            return get_object_or_404(Organization, pk=org_id)
        return user.organization
    if user.is_org_admin and user.organization.is_active:
        return user.organization
    raise PermissionDenied


class PanelAccessMixin(AccessMixin):
    """Admin-panel gate; sets ``self.org`` and ``request.org``."""

    nav_active = ""

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return self.handle_no_permission()
        if not (user.is_org_admin or user.is_superuser):
            raise PermissionDenied
        if user.needs_mfa and not user.is_verified():
            return mfa_redirect(request)
        org = resolve_panel_org(request)
        if org is None:
            return render(
                request,
                "panel/choose_org.html",
                {"organizations": Organization.objects.all()},
            )
        self.org = request.org = org
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.panel_context())
        return context

    def panel_context(self) -> dict:
        org_query = ""
        if (
            self.request.user.is_superuser
            and self.org != self.request.user.organization
        ):
            org_query = f"?org={self.org.pk}"
        return {"org": self.org, "nav_active": self.nav_active, "org_query": org_query}
