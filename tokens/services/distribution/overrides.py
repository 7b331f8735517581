"""Per-user overrides of the distribution policy (docs/product.md, Token Distribution):
an own floor and/or ceiling, exemptions from auto-increase and reclamation, a note."""

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import Organization, User
from accounts.policy import access_organization_for_admin
from tokens.models import UserOverride
from tokens.services.distribution._common import Action
from tokens.services.distribution.validation import override_amount_errors
from tokens.services.pool.kernel import lock_organization


def _override_state(override: UserOverride | None) -> dict:
    if override is None:
        return {}
    return {
        "floor": override.floor,
        "ceiling": override.ceiling,
        "exempt_auto_increase": override.exempt_auto_increase,
        "exempt_reclamation": override.exempt_reclamation,
        "note": override.note,
    }


def override_set(
    *,
    actor: User | None,
    organization: Organization,
    user: User,
    floor: int | None,
    ceiling: int | None,
    exempt_auto_increase: bool,
    exempt_reclamation: bool,
    note: str = "",
) -> UserOverride:
    """Create or update a user's override (own floor and/or ceiling, exemptions, a
    note); one OVERRIDE_SET event with before/after, none when nothing changed."""
    access_organization_for_admin(actor, organization.pk)
    errors: dict[str, str] = {}
    if user.organization_id != organization.pk:
        errors[NON_FIELD_ERRORS] = _("This user is not in this organization.")
    errors.update(override_amount_errors(floor=floor, ceiling=ceiling))
    for name, value in (
        ("exempt_auto_increase", exempt_auto_increase),
        ("exempt_reclamation", exempt_reclamation),
    ):
        if not isinstance(value, bool):
            errors[name] = _("Choose yes or no.")
    note = note or ""
    if not isinstance(note, str) or len(note) > 500:
        errors["note"] = _("The note is at most 500 characters.")
    if not errors and (
        floor is None
        and ceiling is None
        and not exempt_auto_increase
        and not exempt_reclamation
    ):
        errors[NON_FIELD_ERRORS] = _(
            "An override needs a floor, a ceiling or an exemption; otherwise the "
            "policy applies as it is."
        )
    if errors:
        raise ValidationError(errors)
    state = {
        "floor": floor,
        "ceiling": ceiling,
        "exempt_auto_increase": exempt_auto_increase,
        "exempt_reclamation": exempt_reclamation,
        "note": note,
    }
    with transaction.atomic():
        lock_organization(organization)
        override = (
            UserOverride.objects.select_for_update(no_key=True)
            .filter(user_id=user.pk)
            .first()
        )
        before = _override_state(override)
        if before == state:
            return override
        if override is None:
            override = UserOverride(organization=organization, user=user)
        for name, value in state.items():
            setattr(override, name, value)
        override.organization = organization
        override.updated_at = timezone.now()
        override.save()
        audit.record(
            action=Action.OVERRIDE_SET,
            actor=actor,
            organization=organization,
            target=user,
            before={k: v for k, v in before.items() if state[k] != v} or None,
            after={k: v for k, v in state.items() if before.get(k) != v},
        )
    return override


def override_remove(
    *, actor: User | None, organization: Organization, user: User
) -> None:
    """Remove a user's override: the policy applies to them again."""
    access_organization_for_admin(actor, organization.pk)
    with transaction.atomic():
        lock_organization(organization)
        override = (
            UserOverride.objects.select_for_update(no_key=True)
            .filter(user_id=user.pk, organization=organization)
            .first()
        )
        if override is None:
            raise ValidationError(_("This user has no override."))
        before = _override_state(override)
        override.delete()
        audit.record(
            action=Action.OVERRIDE_REMOVED,
            actor=actor,
            organization=organization,
            target=user,
            before=before,
            after=None,
        )
