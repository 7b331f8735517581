"""The organization's distribution policy (docs/product.md, Token Distribution): the
presets, creating the policy, applying a preset and changing settings."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import Organization, User
from accounts.policy import access_organization_for_admin
from tokens.models import DistributionPolicy
from tokens.services.distribution._common import (
    Action,
    BumpMode,
    Preset,
    _decimal,
    _plain,
)
from tokens.services.distribution.validation import (
    _check_policy_rules,
    _clean_policy_values,
)
from tokens.services.pool.kernel import lock_organization

PRESET_FIELDS: tuple[str, ...] = (
    "floor_inference",
    "floor_embedding",
    "ceiling",
    "auto_increase_enabled",
    "triggers",
    "cooldown_minutes",
    "bump_mode",
    "bump_value",
    "tier_bumps",
    "bump_cap_at_current",
    "reclamation_enabled",
)
OTHER_FIELDS: tuple[str, ...] = (
    "lookback_days",
    "headroom_percent",
    "schedule",
    "schedule_hour",
    "schedule_weekday",
    "schedule_day",
)

PRESETS: dict[str, dict] = {
    Preset.CONSERVATIVE: {
        "floor_inference": 200_000,
        "floor_embedding": 200_000,
        "ceiling": 1_000_000,
        "auto_increase_enabled": True,
        "triggers": [90],
        "cooldown_minutes": 240,
        "bump_mode": BumpMode.PERCENT_CURRENT,
        "bump_value": 25,
        "tier_bumps": [],
        "bump_cap_at_current": False,
        "reclamation_enabled": False,
    },
    Preset.STANDARD: {
        "floor_inference": 500_000,
        "floor_embedding": 500_000,
        "ceiling": 5_000_000,
        "auto_increase_enabled": True,
        "triggers": [80, 95],
        "cooldown_minutes": 60,
        "bump_mode": BumpMode.TIERS,
        "bump_value": 25,
        "tier_bumps": [25, 50],
        "bump_cap_at_current": False,
        "reclamation_enabled": False,
    },
    Preset.AGGRESSIVE: {
        "floor_inference": 1_000_000,
        "floor_embedding": 1_000_000,
        "ceiling": None,
        "auto_increase_enabled": True,
        "triggers": [75],
        "cooldown_minutes": 30,
        "bump_mode": BumpMode.FLAT,
        "bump_value": 500_000,
        "tier_bumps": [],
        "bump_cap_at_current": False,
        "reclamation_enabled": False,
    },
    Preset.DYNAMIC: {
        "floor_inference": 500_000,
        "floor_embedding": 500_000,
        "ceiling": None,
        "auto_increase_enabled": True,
        "triggers": [75, 90, 99.9],
        "cooldown_minutes": 60,
        "bump_mode": BumpMode.PERCENT_POOL,
        "bump_value": 25,
        "tier_bumps": [],
        "bump_cap_at_current": True,
        "reclamation_enabled": True,
    },
    Preset.CUSTOM: {},
}


def _comparable(field: str, value):
    if field in ("triggers", "tier_bumps"):
        return tuple(_decimal(v) for v in value or [])
    if field == "bump_value":
        return _decimal(value)
    return value


def _jsonable(field: str, value):
    if field in ("triggers", "tier_bumps"):
        return [_plain(v) for v in value or []]
    if field == "bump_value":
        return _plain(value)
    return value


# --- policy --------------------------------------------------------------------------


def _standard_policy(organization: Organization) -> DistributionPolicy:
    return DistributionPolicy(
        organization=organization, preset=Preset.STANDARD, **PRESETS[Preset.STANDARD]
    )


def policy_ensure(*, organization: Organization) -> DistributionPolicy:
    """The organization's policy, created with the Standard preset when missing."""
    policy = DistributionPolicy.objects.filter(organization=organization).first()
    if policy is not None:
        return policy
    policy, _created = DistributionPolicy.objects.get_or_create(
        organization=organization,
        defaults={"preset": Preset.STANDARD, **PRESETS[Preset.STANDARD]},
    )
    return policy


def _policy_for_read(organization: Organization) -> DistributionPolicy:
    """The saved policy, or (no writes) the Standard one it would be created with."""
    return DistributionPolicy.objects.filter(
        organization=organization
    ).first() or _standard_policy(organization)


def _locked_policy(organization: Organization) -> DistributionPolicy:
    policy_ensure(organization=organization)
    return DistributionPolicy.objects.select_for_update(no_key=True).get(
        organization=organization
    )


def _save_policy(
    *, actor, organization, policy, values: dict, preset: str
) -> DistributionPolicy:
    """Write the values that differ (and the preset); one POLICY_CHANGED event with
    before/after of those fields only, none when nothing changed."""
    changed = {
        field: value
        for field, value in values.items()
        if _comparable(field, getattr(policy, field)) != _comparable(field, value)
    }
    if preset != policy.preset:
        changed["preset"] = preset
    if not changed:
        return policy
    before = {f: _jsonable(f, getattr(policy, f)) for f in changed}
    after = {f: _jsonable(f, v) for f, v in changed.items()}
    for field, value in changed.items():
        setattr(policy, field, value)
    policy.updated_at = timezone.now()
    policy.save(update_fields=[*changed, "updated_at"])
    audit.record(
        action=Action.POLICY_CHANGED,
        actor=actor,
        organization=organization,
        target=policy,
        before=before,
        after=after,
    )
    return policy


def policy_apply_preset(
    *, actor: User | None, organization: Organization, preset: str
) -> DistributionPolicy:
    """Fill the policy with a preset's numbers (docs/product.md, Token Distribution).
    Custom keeps the current values and only changes the badge."""
    access_organization_for_admin(actor, organization.pk)
    if preset not in Preset.values:
        raise ValidationError(
            {
                "preset": _("Choose one of the presets: %(names)s.")
                % {"names": ", ".join(str(label) for label in Preset.labels)}
            }
        )
    values = {
        field: _decimal(v) if field == "bump_value" else v
        for field, v in PRESETS[preset].items()
    }
    with transaction.atomic():
        lock_organization(organization)
        policy = _locked_policy(organization)
        return _save_policy(
            actor=actor,
            organization=organization,
            policy=policy,
            values=values,
            preset=preset,
        )


def policy_update(
    *, actor: User | None, organization: Organization, changes: dict
) -> DistributionPolicy:
    """Change some settings of the policy. Every value is validated (all errors at
    once, by field); changing a preset-controlled field switches the badge to
    Custom; one POLICY_CHANGED event with the changed fields, none if nothing
    changed."""
    access_organization_for_admin(actor, organization.pk)
    values, errors = _clean_policy_values(dict(changes))
    with transaction.atomic():
        lock_organization(organization)
        policy = _locked_policy(organization)
        merged = {f: getattr(policy, f) for f in (*PRESET_FIELDS, *OTHER_FIELDS)} | {
            f: v for f, v in values.items() if f not in errors
        }
        _check_policy_rules(merged, set(values), errors)
        if errors:
            raise ValidationError(errors)
        preset_changed = any(
            _comparable(f, getattr(policy, f)) != _comparable(f, v)
            for f, v in values.items()
            if f in PRESET_FIELDS
        )
        return _save_policy(
            actor=actor,
            organization=organization,
            policy=policy,
            values=values,
            preset=Preset.CUSTOM if preset_changed else policy.preset,
        )
