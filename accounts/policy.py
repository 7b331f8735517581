"""Who may do what: the one access policy every service checks its actor against
(docs/security.md, Accounts and security; docs/architecture.md, Three questions,
three places).

Each ``access_*`` function returns when the actor may act and raises
``NotPermitted`` (a ``PermissionDenied``) when not, before anything is read for the
change or written. The rules:

- The system (``actor=None``: scheduled jobs, the gateway, commands) may.
- Superusers may.
- An organization's pool, users and settings: its own active, unbanned admins.
  Members may not; staff status alone grants nothing on an organization.
- Staff-site actions (purchases, enterprise requests, members, service keys): staff
  holding the permission (the Sales group's are in tokens migration 0002).
- Superuser-only actions (an MFA reset): nobody else.
- Withdrawing a request: only the person who made it.
"""

from django.utils.translation import gettext as _

from accounts.models import User
from asksage_admin.lib.errors import NotPermitted


def _system_or_superuser(actor: User | None) -> bool:
    return actor is None or actor.is_superuser


def access_organization_for_admin(
    actor: User | None, organization_id: int | None
) -> None:
    """An organization's pool, users and settings (limits, paid and banned, token
    requests, the auto-approval rule, distribution, verification, settings)."""
    if _system_or_superuser(actor):
        return
    if (
        actor.is_org_admin
        and organization_id is not None
        and actor.organization_id == organization_id
        and actor.is_active
        and not actor.is_banned
    ):
        return
    raise NotPermitted(_("You cannot manage this organization."))


def access_staff_action(actor: User | None, permission: str) -> None:
    """A platform action of the staff site: staff who hold ``permission``."""
    if _system_or_superuser(actor):
        return
    if actor.is_staff and actor.has_perm(permission):
        return
    raise NotPermitted(_("You are not allowed to do this."))


def access_superuser_action(actor: User | None) -> None:
    """Actions that weaken an account's protection (an MFA reset)."""
    if _system_or_superuser(actor):
        return
    raise NotPermitted(_("Only superusers can reset MFA."))


def access_own_request(actor: User | None, requester_id: int) -> None:
    """Withdrawing a request (a token request, an enterprise account request): it
    speaks for the requester, so only they may, not their admins, staff or the
    system."""
    if actor is not None and actor.pk == requester_id:
        return
    raise NotPermitted(_("Only the person who made a request can withdraw it."))
