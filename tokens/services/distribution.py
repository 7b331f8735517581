"""The distribution policy engine (SPEC §6): presets, floors and ceilings,
auto-increase, reclamation, per-user overrides, runs and the rebalancing schedule.

Rules decided here (one line each in the README):

- A run works per token type, in this order: (1) reclamation, when on, so the
  tokens it frees can fund the floors; (2) raise paid, unbanned users below their
  floor, largest shortfall first, as far as the pool allows; (3) with "distribute
  equally", split what is left of the pool equally (floor division) among paid,
  unbanned users, never above a user's ceiling; the remainder stays unallocated.
- A user's floor is the override's floor when set, else the policy's floor for the
  type, capped by the user's ceiling, and never below the platform minimum
  (MIN_USER_TOKENS): the platform's own changes never leave a paid, active user
  under the minimum (DESIGN §4 invariant 10). For the same reason a partial floor
  raise that would still end under the minimum is not made (the user keeps their
  limit, the shortfall is reported, the pool goes to the next user), and the equal
  share goes only to users at or above the minimum.
- The ceiling is the override's ceiling when set, else the policy's (None =
  unlimited).
- Reclamation: max(floor, peak monthly usage in the lookback × (1 + headroom %),
  rounded up to 1,000), applied only when lower than the current limit.
- Auto-increase runs inside the usage batch's transaction: one query finds the
  counters that crossed their organization's lowest trigger; when one fires, the
  pool is checked without a lock, and only then is the organization locked and
  everything re-read under the lock.
- Scheduled runs never distribute the pool equally (the policy has no setting for
  it); they are recorded with their due time, once per organization and due time.
"""

import datetime as dt
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import pairwise

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import audit
from accounts.models import AuditEvent, Organization, User
from asksage_admin.lib.periods import next_period, period_of, previous_period
from tokens import selectors
from tokens.models import (
    Allocation,
    AllocationChange,
    DistributionPolicy,
    DistributionRun,
    UsageCounter,
    UserOverride,
)
from tokens.services.allocations import (
    TYPES,
    apply_limit_rows,
    apply_limits,
    ensure_can_manage,
    fmt,
    lock_allocations,
    lock_organization,
    type_label,
)

logger = logging.getLogger(__name__)

Action = AuditEvent.Action
Source = AllocationChange.Source
Preset = DistributionPolicy.Preset
BumpMode = DistributionPolicy.BumpMode
Frequency = DistributionPolicy.Frequency

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

# Namespace of the advisory locks of scheduled runs (the other key is the org id).
_ADVISORY_NAMESPACE = 0x64697374  # "dist"
_MAX_COOLDOWN = 525_600  # one year, in minutes
_MAX_PERCENT_BUMP = 1_000
_MAX_TOKENS = 10**14 - 1  # what bump_value (15 digits, 1 decimal) can hold


# --- values ------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _plain(value):
    """A number as JSON stores it: int when whole, else float."""
    value = _decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


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


def _percent(value) -> str:
    return f"{_plain(value)}%"


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
    return DistributionPolicy.objects.select_for_update().get(organization=organization)


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
    """Fill the policy with a preset's numbers (SPEC §6). Custom keeps the current
    values and only changes the badge."""
    ensure_can_manage(actor, organization)
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


def _clean_whole(value, low: int, high: int | None, message: str, errors, field):
    if not _is_int(value) or value < low or (high is not None and value > high):
        errors[field] = message
        return None
    return value


def _clean_percentages(value, field: str, errors: dict, *, low, high, message):
    if not isinstance(value, list | tuple) or not all(_is_number(v) for v in value):
        errors[field] = _("Enter a list of percentages.")
        return None
    cleaned = []
    for item in value:
        try:
            number = _decimal(item)
        except InvalidOperation:
            number = None
        if (
            number is None
            or not number.is_finite()
            or not low <= number <= high
            or number != number.quantize(Decimal("0.1"))
            or (low == 0 and number <= 0)
        ):
            errors[field] = message
            return None
        cleaned.append(_plain(number))
    return cleaned


def _clean_policy_values(changes: dict) -> tuple[dict, dict]:
    """Field by field: the cleaned values and the errors."""
    errors: dict[str, str] = {}
    values: dict = {}
    minimum = settings.MIN_USER_TOKENS
    for field, value in changes.items():
        if field in ("floor_inference", "floor_embedding"):
            values[field] = _clean_whole(
                value,
                minimum,
                _MAX_TOKENS,
                _(
                    "The floor must be a whole number of tokens, at least the "
                    "platform minimum of %(min)s."
                )
                % {"min": fmt(minimum)},
                errors,
                field,
            )
        elif field == "ceiling":
            values[field] = (
                None
                if value is None
                else _clean_whole(
                    value,
                    0,
                    _MAX_TOKENS,
                    _(
                        "The ceiling must be a whole number of tokens, or empty for "
                        "unlimited."
                    ),
                    errors,
                    field,
                )
            )
        elif field in (
            "auto_increase_enabled",
            "bump_cap_at_current",
            "reclamation_enabled",
        ):
            if not isinstance(value, bool):
                errors[field] = _("Choose yes or no.")
            values[field] = value
        elif field == "triggers":
            values[field] = _clean_percentages(
                value,
                field,
                errors,
                low=Decimal(50),
                high=Decimal("99.9"),
                message=_(
                    "Each trigger is a usage percentage from 50 to 99.9, with at "
                    "most one decimal."
                ),
            )
        elif field == "tier_bumps":
            values[field] = _clean_percentages(
                value,
                field,
                errors,
                low=Decimal(0),
                high=Decimal(_MAX_PERCENT_BUMP),
                message=_(
                    "Each tier bump is a percentage of the current limit, more than "
                    "0 and at most %(max)s, with at most one decimal."
                )
                % {"max": fmt(_MAX_PERCENT_BUMP)},
            )
        elif field == "cooldown_minutes":
            values[field] = _clean_whole(
                value,
                1,
                _MAX_COOLDOWN,
                _(
                    "The cooldown is a whole number of minutes, at least 1 and at "
                    "most %(max)s (one year)."
                )
                % {"max": fmt(_MAX_COOLDOWN)},
                errors,
                field,
            )
        elif field == "bump_mode":
            if value not in BumpMode.values:
                errors[field] = _("Choose a bump mode: %(modes)s.") % {
                    "modes": ", ".join(str(label).lower() for label in BumpMode.labels)
                }
            values[field] = value
        elif field == "bump_value":
            if not _is_number(value) or not _decimal(value).is_finite():
                errors[field] = _("Enter a number greater than 0.")
            else:
                values[field] = _decimal(value)
        elif field == "lookback_days":
            values[field] = _clean_whole(
                value,
                1,
                365,
                _("The lookback is a whole number of days from 1 to 365."),
                errors,
                field,
            )
        elif field == "headroom_percent":
            values[field] = _clean_whole(
                value,
                0,
                500,
                _("The headroom is a whole percentage from 0 to 500."),
                errors,
                field,
            )
        elif field == "schedule":
            if value not in Frequency.values:
                errors[field] = _("Choose off, daily, weekly or monthly.")
            values[field] = value
        elif field == "schedule_hour":
            values[field] = _clean_whole(
                value,
                0,
                23,
                _("The hour is a whole number from 0 to 23 (UTC)."),
                errors,
                field,
            )
        elif field == "schedule_weekday":
            values[field] = _clean_whole(
                value,
                0,
                6,
                _("The weekday is a whole number from 0 (Monday) to 6 (Sunday)."),
                errors,
                field,
            )
        elif field == "schedule_day":
            values[field] = _clean_whole(
                value,
                1,
                28,
                _(
                    "The day of the month is a whole number from 1 to 28 (so that "
                    "every month has it)."
                ),
                errors,
                field,
            )
        else:
            errors[field] = _("This is not a setting of the distribution policy.")
    return values, errors


def _check_policy_rules(merged: dict, changed: set[str], errors: dict) -> None:
    """Rules across fields, on the policy as it would be after the change."""
    ceiling = merged["ceiling"]
    floors = (merged["floor_inference"], merged["floor_embedding"])
    if (
        ceiling is not None
        and ceiling < max(floors)
        and not {"ceiling", "floor_inference", "floor_embedding"} & set(errors)
    ):
        errors["ceiling" if "ceiling" in changed else "floor_inference"] = _(
            "The ceiling (%(ceiling)s) must be at least the floors (inference "
            "%(inference)s, embedding %(embedding)s), or empty for unlimited."
        ) % {
            "ceiling": fmt(ceiling),
            "inference": fmt(floors[0]),
            "embedding": fmt(floors[1]),
        }
    triggers = merged["triggers"]
    if "triggers" not in errors:
        if not triggers:
            errors["triggers"] = _("Enter at least one trigger.")
        elif any(_decimal(a) >= _decimal(b) for a, b in pairwise(triggers)):
            errors["triggers"] = _(
                "List the triggers in ascending order, without repeats."
            )
    mode = merged["bump_mode"]
    if (
        mode == BumpMode.TIERS
        and not {"triggers", "tier_bumps", "bump_mode"} & set(errors)
        and len(merged["tier_bumps"] or []) != len(triggers)
    ):
        errors["tier_bumps"] = _(
            "Tiers need one bump per trigger: %(triggers)d triggers, %(bumps)d bumps."
        ) % {"triggers": len(triggers), "bumps": len(merged["tier_bumps"] or [])}
    if "bump_value" not in errors and "bump_mode" not in errors:
        value = _decimal(merged["bump_value"])
        if value <= 0:
            errors["bump_value"] = _("The bump must be greater than 0.")
        elif mode == BumpMode.FLAT and value != value.to_integral_value():
            errors["bump_value"] = _("A flat bump is a whole number of tokens.")
        elif mode == BumpMode.FLAT and value > _MAX_TOKENS:
            errors["bump_value"] = _("A flat bump is at most %(max)s tokens.") % {
                "max": fmt(_MAX_TOKENS)
            }
        elif mode == BumpMode.PERCENT_POOL and value > 100:
            errors["bump_value"] = _(
                "A percentage of the remaining pool is at most 100."
            )
        elif (
            mode in (BumpMode.PERCENT_CURRENT, BumpMode.TIERS)
            and value > _MAX_PERCENT_BUMP
        ):
            errors["bump_value"] = _(
                "A percentage of the current limit is at most %(max)s."
            ) % {"max": fmt(_MAX_PERCENT_BUMP)}
        elif mode != BumpMode.FLAT and value != value.quantize(Decimal("0.1")):
            errors["bump_value"] = _("A percentage has at most one decimal.")


def policy_update(
    *, actor: User | None, organization: Organization, changes: dict
) -> DistributionPolicy:
    """Change some settings of the policy. Every value is validated (all errors at
    once, by field); changing a preset-controlled field switches the badge to
    Custom; one POLICY_CHANGED event with the changed fields, none if nothing
    changed."""
    ensure_can_manage(actor, organization)
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


# --- overrides -------------------------------------------------------------------


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
    ensure_can_manage(actor, organization)
    errors: dict[str, str] = {}
    if user.organization_id != organization.pk:
        errors[NON_FIELD_ERRORS] = _("This user is not in this organization.")
    if floor is not None and (not _is_int(floor) or floor < 0):
        errors["floor"] = _(
            "The floor must be a whole number of tokens, 0 or more, or empty to "
            "use the policy's floor."
        )
    if ceiling is not None and (not _is_int(ceiling) or ceiling < 0):
        errors["ceiling"] = _(
            "The ceiling must be a whole number of tokens, 0 or more, or empty to "
            "use the policy's ceiling."
        )
    if (
        "floor" not in errors
        and "ceiling" not in errors
        and floor is not None
        and ceiling is not None
        and ceiling < floor
    ):
        errors["ceiling"] = _(
            "The ceiling (%(ceiling)s) must be at least the floor (%(floor)s)."
        ) % {"ceiling": fmt(ceiling), "floor": fmt(floor)}
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
            UserOverride.objects.select_for_update().filter(user_id=user.pk).first()
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
    ensure_can_manage(actor, organization)
    with transaction.atomic():
        lock_organization(organization)
        override = (
            UserOverride.objects.select_for_update()
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


# --- floors and ceilings of one user -----------------------------------------------


def _ceiling(policy, override) -> int | None:
    if override is not None and override.ceiling is not None:
        return override.ceiling
    return policy.ceiling


def _floor(policy, override, token_type: str) -> int:
    """The floor the platform raises to and reclaims down to (module docstring)."""
    floor = (
        override.floor
        if override is not None and override.floor is not None
        else policy.floor(token_type)
    )
    ceiling = _ceiling(policy, override)
    if ceiling is not None:
        floor = min(floor, ceiling)
    return max(floor, settings.MIN_USER_TOKENS)


def _round_up_1000(n: int) -> int:
    return -(-n // 1000) * 1000


def reclaimed_limit(peak: int, headroom_percent: int, floor: int) -> int:
    """max(floor, peak × (1 + headroom %), rounded up to 1,000)."""
    return max(floor, _round_up_1000(-(-peak * (100 + headroom_percent) // 100)))


# --- plans and runs --------------------------------------------------------------


@dataclass(frozen=True)
class PlanChange:
    user_id: int
    email: str
    token_type: str
    current: int
    usage: int
    new_limit: int
    delta: int
    reason: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[PlanChange, ...]
    totals: dict[str, dict]
    shortfall: dict[str, int]

    def source_of(self, change: PlanChange) -> str:
        return REASON_SOURCES[change.reason]


REASON_FLOOR = "floor"
REASON_RECLAMATION = "reclamation"
REASON_EQUAL = "equal share"
REASON_SOURCES = {
    REASON_FLOOR: Source.DISTRIBUTION,
    REASON_RECLAMATION: Source.RECLAMATION,
    REASON_EQUAL: Source.DISTRIBUTION,
}


@dataclass
class _Member:
    user_id: int
    email: str
    limits: dict[str, int]
    used: dict[str, int]
    peak: dict[str, int]
    override: UserOverride | None


def _members(
    organization: Organization,
    policy: DistributionPolicy,
    users: list[tuple[int, str]],
    limits: dict[tuple[int, str], int],
    now: dt.datetime,
) -> list[_Member]:
    """What a plan needs about each paid, unbanned user: limits, this month's usage,
    the peak monthly usage in the lookback, the override."""
    ids = [uid for uid, _email in users]
    overrides = {
        o.user_id: o
        for o in UserOverride.objects.filter(organization=organization, user_id__in=ids)
    }
    current = period_of(now)
    first = period_of(now - dt.timedelta(days=policy.lookback_days))
    used: dict[tuple[int, str], int] = defaultdict(int)
    peak: dict[tuple[int, str], int] = defaultdict(int)
    for uid, token_type, period, amount in UsageCounter.objects.filter(
        user_id__in=ids, period__gte=first, period__lte=current
    ).values_list("user_id", "token_type", "period", "used"):
        peak[(uid, token_type)] = max(peak[(uid, token_type)], amount)
        if period == current:
            used[(uid, token_type)] = amount
    return [
        _Member(
            user_id=uid,
            email=email,
            limits={t: limits.get((uid, t), 0) for t in TYPES},
            used={t: used[(uid, t)] for t in TYPES},
            peak={t: peak[(uid, t)] for t in TYPES},
            override=overrides.get(uid),
        )
        for uid, email in users
    ]


def _unallocated(organization: Organization) -> dict[str, int]:
    pool = selectors.pools(organization)
    allocated = selectors.allocated(organization)
    return {t: pool[t] - allocated[t] for t in TYPES}


def _plan(
    policy: DistributionPolicy,
    members: list[_Member],
    unallocated: dict[str, int],
    distribute_equally: bool,
) -> Plan:
    """The pure arithmetic of a run (module docstring for the order and rules)."""
    changes: list[PlanChange] = []
    totals: dict[str, dict] = {}
    shortfall: dict[str, int] = {}
    for token_type in TYPES:
        t = str(token_type)
        totals[t], shortfall[t] = _plan_type(
            policy, members, t, unallocated[t], distribute_equally, changes
        )
    return Plan(changes=tuple(changes), totals=totals, shortfall=shortfall)


def _plan_type(
    policy: DistributionPolicy,
    members: list[_Member],
    t: str,
    free: int,
    distribute_equally: bool,
    changes: list[PlanChange],
) -> tuple[dict, int]:
    """One token type's steps; appends to ``changes``, returns (totals, shortfall)."""
    minimum = settings.MIN_USER_TOKENS
    limits = {m.user_id: m.limits[t] for m in members}

    def change(m: _Member, new_limit: int, reason: str, usage: int) -> int:
        delta = new_limit - limits[m.user_id]
        changes.append(
            PlanChange(
                user_id=m.user_id,
                email=m.email,
                token_type=t,
                current=limits[m.user_id],
                usage=usage,
                new_limit=new_limit,
                delta=delta,
                reason=reason,
            )
        )
        limits[m.user_id] = new_limit
        return abs(delta)

    # (1) Reclamation first: what it frees can fund the floors.
    reclaimed = raised = distributed = short = 0
    if policy.reclamation_enabled:
        for m in members:
            if m.override is not None and m.override.exempt_reclamation:
                continue
            target = reclaimed_limit(
                m.peak[t], policy.headroom_percent, _floor(policy, m.override, t)
            )
            if target < limits[m.user_id]:
                reclaimed += change(m, target, REASON_RECLAMATION, m.peak[t])
    available = max(0, free + reclaimed)

    # (2) Floors, largest shortfall first, as far as the pool allows.
    below = []
    for m in members:
        need = _floor(policy, m.override, t) - limits[m.user_id]
        if need > 0:
            below.append((need, m))
    below.sort(key=lambda item: (-item[0], item[1].user_id))
    for need, m in below:
        grant = min(need, available)
        if grant < need and limits[m.user_id] + grant < minimum:
            grant = 0  # would still be under the platform minimum: not made
        if grant:
            available -= grant
            raised += change(m, limits[m.user_id] + grant, REASON_FLOOR, m.used[t])
        short += need - grant

    # (3) Equal shares of what is left, never above a user's ceiling.
    if distribute_equally and available > 0:
        eligible = [m for m in members if limits[m.user_id] >= minimum]
        share = available // len(eligible) if eligible else 0
        for m in eligible:
            ceiling = _ceiling(policy, m.override)
            room = share
            if ceiling is not None:
                room = min(share, ceiling - limits[m.user_id])
            if room > 0:
                available -= room
                distributed += change(
                    m, limits[m.user_id] + room, REASON_EQUAL, m.used[t]
                )

    totals = {
        "raised": raised,
        "reclaimed": reclaimed,
        "distributed": distributed,
        "unallocated_before": max(0, free),
        "unallocated_after": max(0, free + reclaimed - raised - distributed),
    }
    return totals, short


def _paid_users(organization: Organization):
    return User.objects.filter(
        organization=organization, is_paid=True, is_banned=False
    ).order_by("id")


def distribution_plan(
    *, organization: Organization, distribute_equally: bool = False
) -> Plan:
    """What a run would change now (the Preview): reads only, no locks, no writes."""
    policy = _policy_for_read(organization)
    users = list(_paid_users(organization).values_list("id", "email"))
    limits = {
        (uid, t): limit
        for uid, t, limit in Allocation.objects.filter(
            user_id__in=[u for u, _e in users]
        ).values_list("user_id", "token_type", "limit")
    }
    members = _members(organization, policy, users, limits, timezone.now())
    return _plan(policy, members, _unallocated(organization), distribute_equally)


def _summary(plan: Plan) -> dict:
    summary: dict = {
        "changes": len(plan.changes),
        "users_changed": len({c.user_id for c in plan.changes}),
    }
    for t in TYPES:
        rows = [c for c in plan.changes if c.token_type == t]
        summary[str(t)] = {
            **plan.totals[t],
            "shortfall": plan.shortfall[t],
            "users_raised": sum(1 for c in rows if c.reason == REASON_FLOOR),
            "users_reclaimed": sum(1 for c in rows if c.reason == REASON_RECLAMATION),
            "users_distributed": sum(1 for c in rows if c.reason == REASON_EQUAL),
        }
    return summary


def distribution_run(
    *,
    actor: User | None,
    organization: Organization,
    distribute_equally: bool = False,
    trigger: str = DistributionRun.Trigger.MANUAL,
    due_at: dt.datetime | None = None,
) -> DistributionRun:
    """Apply the plan of ``distribution_plan``, computed again under the locks, in
    one transaction: each user changed gets one audit event (before/after of their
    limits in this run), the run one DISTRIBUTION_RUN event with its summary."""
    ensure_can_manage(actor, organization)
    if trigger not in DistributionRun.Trigger.values:
        raise ValidationError(_("Unknown run trigger."))
    with transaction.atomic():
        organization = lock_organization(organization)
        if not organization.is_active:
            raise ValidationError(
                _("Only an active organization's tokens can be distributed.")
            )
        run = DistributionRun.objects.create(
            organization=organization,
            trigger=trigger,
            due_at=due_at,
            actor=actor if actor is not None and actor.pk else None,
            distribute_equally=distribute_equally,
        )
        policy = policy_ensure(organization=organization)
        users = list(_paid_users(organization))
        allocations = lock_allocations(users)
        limits = {key: a.limit for key, a in allocations.items()}
        members = _members(
            organization,
            policy,
            [(u.pk, u.email) for u in users],
            limits,
            timezone.now(),
        )
        plan = _plan(policy, members, _unallocated(organization), distribute_equally)

        by_user: dict[int, list[PlanChange]] = defaultdict(list)
        for change in plan.changes:
            by_user[change.user_id].append(change)
        users_by_id = {u.pk: u for u in users}
        # One audit event per changed user and the allocation writes, each in a
        # constant number of queries whatever the number of users.
        events, rows = [], []
        for user_id in sorted(by_user):
            changes = by_user[user_id]
            types = list(dict.fromkeys(c.token_type for c in changes))
            before = {f"{t}_limit": limits[(user_id, t)] for t in types}
            after = {
                f"{t}_limit": [c for c in changes if c.token_type == t][-1].new_limit
                for t in types
            }
            reasons = ", ".join(dict.fromkeys(c.reason for c in changes))
            event = audit.build(
                action=Action.LIMIT_CHANGED,
                actor=actor,
                organization=organization,
                target=users_by_id[user_id],
                before=before,
                after=after,
                message=_("Distribution run #%(run)d: %(reasons)s.")
                % {"run": run.pk, "reasons": reasons},
            )
            events.append(event)
            rows += [
                (
                    users_by_id[user_id],
                    c.token_type,
                    c.new_limit,
                    REASON_SOURCES[c.reason],
                    event,
                    c.reason,
                )
                for c in changes
            ]
        audit.record_many(events)
        apply_limit_rows(
            rows, allocations=allocations, actor=actor, distribution_run=run
        )
        run.summary = _summary(plan)
        run.finished_at = timezone.now()
        run.save(update_fields=["summary", "finished_at"])
        audit.record(
            action=Action.DISTRIBUTION_RUN,
            actor=actor,
            organization=organization,
            target=run,
            after=run.summary,
            message=_(
                "%(trigger)s run: %(changes)d changes for %(users)d users%(equal)s."
            )
            % {
                "trigger": DistributionRun.Trigger(trigger).label,
                "changes": run.summary["changes"],
                "users": run.summary["users_changed"],
                "equal": _(", unallocated pool distributed equally")
                if distribute_equally
                else "",
            },
        )
    return run


# --- schedule ----------------------------------------------------------------------


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def _due_on_or_before(policy: DistributionPolicy, moment: dt.datetime) -> dt.datetime:
    """The latest due time ≤ ``moment`` (the schedule is not off)."""
    moment = moment.astimezone(dt.UTC)
    day, hour = moment.date(), policy.schedule_hour
    if policy.schedule == Frequency.DAILY:
        due = _at(day, hour)
        return due if due <= moment else due - dt.timedelta(days=1)
    if policy.schedule == Frequency.WEEKLY:
        due = _at(
            day - dt.timedelta(days=(day.weekday() - policy.schedule_weekday) % 7),
            hour,
        )
        return due if due <= moment else due - dt.timedelta(days=7)
    due = _at(day.replace(day=policy.schedule_day), hour)
    if due <= moment:
        return due
    return _at(previous_period(day).replace(day=policy.schedule_day), hour)


def last_due_at(policy: DistributionPolicy, *, now: dt.datetime) -> dt.datetime | None:
    """The most recent due time at or before ``now`` (UTC), None when off."""
    if policy.schedule == Frequency.OFF:
        return None
    return _due_on_or_before(policy, now)


def next_run_at(
    policy: DistributionPolicy, *, after: dt.datetime
) -> dt.datetime | None:
    """The first due time strictly after ``after`` (UTC), None when off."""
    if policy.schedule == Frequency.OFF:
        return None
    latest = _due_on_or_before(policy, after)
    if policy.schedule == Frequency.DAILY:
        return latest + dt.timedelta(days=1)
    if policy.schedule == Frequency.WEEKLY:
        return latest + dt.timedelta(days=7)
    return _at(next_period(latest.date()).replace(day=policy.schedule_day), latest.hour)


def _try_advisory_lock(organization_id: int) -> bool:
    """A transaction-scoped PostgreSQL advisory lock; always granted on SQLite,
    which serializes writers anyway."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)",
            [_ADVISORY_NAMESPACE, organization_id],
        )
        return bool(cursor.fetchone()[0])


def _run_if_due(policy: DistributionPolicy, now: dt.datetime, dry_run: bool) -> str:
    organization = policy.organization
    if not organization.is_active:
        return "skipped: organization not active"
    due = last_due_at(policy, now=now)
    if due is None:
        return "skipped: schedule off"
    if organization.activated_at is not None and due < organization.activated_at:
        upcoming = next_run_at(policy, after=now)
        return f"skipped: not due yet (next {upcoming:%Y-%m-%d %H:%M} UTC)"
    already = f"skipped: already ran for {due:%Y-%m-%d %H:%M} UTC"
    with transaction.atomic():
        if not dry_run and not _try_advisory_lock(organization.pk):
            return "skipped: another copy is running"
        if DistributionRun.objects.filter(
            organization=organization, due_at=due
        ).exists():
            return already
        if dry_run:
            return "would run"
        try:
            distribution_run(
                actor=None,
                organization=organization,
                trigger=DistributionRun.Trigger.SCHEDULED,
                due_at=due,
            )
        except IntegrityError:
            # Another copy recorded this due time first (unique organization, due).
            return already
    return "ran"


def run_due_distributions(
    *, now: dt.datetime | None = None, org_id: int | None = None, dry_run: bool = False
) -> list[tuple[Organization, str]]:
    """Run every active organization whose scheduled run is due (the latest due
    time at or before ``now``, after the organization's activation, not yet run),
    exactly once per due time: an advisory lock per organization and the unique
    (organization, due time) of DistributionRun. One transaction per organization.
    Returns (organization, "ran" | "would run" | "skipped: …") for each
    organization considered (all scheduled ones, or ``org_id``)."""
    now = now or timezone.now()
    if org_id is not None:
        organization = Organization.objects.filter(pk=org_id).first()
        if organization is None:
            return []
        policies = [_policy_for_read(organization)]
    else:
        policies = list(
            DistributionPolicy.objects.filter(
                organization__status=Organization.Status.ACTIVE
            )
            .exclude(schedule=Frequency.OFF)
            .select_related("organization")
            .order_by("organization_id")
        )
    results = []
    for policy in policies:
        try:
            status = _run_if_due(policy, now, dry_run)
        except ValidationError as error:
            status = "skipped: " + " ".join(error.messages)
        except Exception as error:
            # One organization's failure must not stop the others' runs.
            logger.exception(
                "Scheduled distribution of organization %s failed",
                policy.organization_id,
            )
            status = f"failed: {type(error).__name__}: {error}"
        results.append((policy.organization, status))
    return results


# --- auto-increase -----------------------------------------------------------------

_POLICY = "organization__distribution_policy__"
_OVERRIDE = "user__distribution_override__"


def _reached(triggers, used: int, limit: int) -> Decimal | None:
    """The highest trigger ≤ usage % (used / limit × 100), exactly."""
    if limit <= 0:
        return None
    hit = [_decimal(t) for t in triggers or [] if used * 100 >= _decimal(t) * limit]
    return max(hit) if hit else None


def _fires(
    *,
    triggers,
    cooldown_minutes: int,
    ceiling: int | None,
    exempt: bool,
    limit: int,
    used: int,
    last_at: dt.datetime | None,
    last_tier: Decimal | None,
    now: dt.datetime,
) -> Decimal | None:
    """The tier that fires now, or None: at or past a trigger, not exempt, below
    the ceiling, and the cooldown passed or a higher tier reached within it."""
    if exempt or (ceiling is not None and limit >= ceiling):
        return None
    reached = _reached(triggers, used, limit)
    if reached is None:
        return None
    cooling = last_at is not None and now - last_at < dt.timedelta(
        minutes=cooldown_minutes
    )
    if cooling and last_tier is not None and reached <= last_tier:
        return None
    return reached


def _bump_rate(policy: DistributionPolicy, reached: Decimal) -> Decimal:
    """Percent (or flat tokens) of the bump: the tier's own percent in tiers mode."""
    if policy.bump_mode == BumpMode.TIERS:
        tiers = [_decimal(t) for t in policy.triggers]
        bumps = list(policy.tier_bumps or [])
        index = tiers.index(reached)
        if index < len(bumps):
            return _decimal(bumps[index])
    return _decimal(policy.bump_value)


def _bump(policy: DistributionPolicy, reached: Decimal, limit: int, free: int) -> int:
    """The bump before the ceiling and pool caps (SPEC §6.4, the four modes)."""
    rate = _bump_rate(policy, reached)
    if policy.bump_mode == BumpMode.FLAT:
        return int(rate)
    if policy.bump_mode == BumpMode.PERCENT_POOL:
        bump = math.ceil(max(0, free) * rate / 100)
        return min(bump, limit) if policy.bump_cap_at_current else bump
    return math.ceil(limit * rate / 100)


def _candidates(keys: set[tuple[int, str]], period: dt.date) -> list[dict]:
    """ONE query: this month's counters of these users that reached at least their
    organization's lowest trigger, with what deciding needs."""
    used = Subquery(
        UsageCounter.objects.filter(
            user_id=OuterRef("user_id"),
            token_type=OuterRef("token_type"),
            period=period,
        ).values("used")[:1]
    )
    lowest = Cast(
        KeyTextTransform("0", _POLICY + "triggers"),
        DecimalField(max_digits=4, decimal_places=1),
    )
    rows = (
        Allocation.objects.filter(
            user_id__in={u for u, _t in keys},
            token_type__in={t for _u, t in keys},
            limit__gt=0,
            organization__status=Organization.Status.ACTIVE,
            user__organization_id=F("organization_id"),
            user__is_paid=True,
            user__is_banned=False,
            **{_POLICY + "auto_increase_enabled": True},
        )
        .annotate(
            used=used,
            threshold=ExpressionWrapper(
                lowest * F("limit"), output_field=DecimalField()
            ),
            used_percent=ExpressionWrapper(
                F("used") * 100, output_field=DecimalField()
            ),
        )
        .filter(used_percent__gte=F("threshold"))
        .values(
            "user_id",
            "organization_id",
            "token_type",
            "limit",
            "used",
            "last_auto_increase_at",
            "last_auto_increase_tier",
            _POLICY + "triggers",
            _POLICY + "cooldown_minutes",
            _POLICY + "ceiling",
            _OVERRIDE + "organization_id",
            _OVERRIDE + "ceiling",
            _OVERRIDE + "exempt_auto_increase",
        )
    )
    return [r for r in rows if (r["user_id"], r["token_type"]) in keys]


def _row_fires(row: dict, now: dt.datetime) -> bool:
    # An override left from another organization (the user moved) does not apply.
    own = row[_OVERRIDE + "organization_id"] == row["organization_id"]
    override_ceiling = row[_OVERRIDE + "ceiling"] if own else None
    reached = _fires(
        triggers=row[_POLICY + "triggers"],
        cooldown_minutes=row[_POLICY + "cooldown_minutes"],
        ceiling=override_ceiling
        if override_ceiling is not None
        else row[_POLICY + "ceiling"],
        exempt=own and bool(row[_OVERRIDE + "exempt_auto_increase"]),
        limit=row["limit"],
        used=row["used"] or 0,
        last_at=row["last_auto_increase_at"],
        last_tier=row["last_auto_increase_tier"],
        now=now,
    )
    return reached is not None


_MODE_TEXT = {
    BumpMode.PERCENT_CURRENT: gettext_lazy("%(value)s of the current limit"),
    BumpMode.FLAT: gettext_lazy("a flat %(value)s tokens"),
    BumpMode.PERCENT_POOL: gettext_lazy("%(value)s of the remaining unallocated pool"),
    BumpMode.TIERS: gettext_lazy("%(value)s of the current limit for this tier"),
}


def _auto_increase_org(
    organization_id: int, keys: list[tuple[int, str]], now: dt.datetime
) -> int:
    organization = Organization.objects.get(pk=organization_id)
    types = {t for _u, t in keys}
    # Checked before locking, so an empty pool never serializes the org's usage.
    if all(v <= 0 for t, v in _unallocated(organization).items() if t in types):
        return 0
    organization = lock_organization(organization)
    if not organization.is_active:
        return 0
    policy = DistributionPolicy.objects.filter(organization=organization).first()
    if policy is None or not policy.auto_increase_enabled:
        return 0
    users = {
        u.pk: u
        for u in User.objects.filter(
            pk__in={u for u, _t in keys},
            organization=organization,
            is_paid=True,
            is_banned=False,
        )
    }
    allocations = lock_allocations(list(users.values()))
    overrides = {
        o.user_id: o
        for o in UserOverride.objects.filter(
            organization=organization, user_id__in=list(users)
        )
    }
    period = period_of(now)
    used = {
        (u, t): n
        for u, t, n in UsageCounter.objects.filter(
            user_id__in=list(users), period=period
        ).values_list("user_id", "token_type", "used")
    }
    free = _unallocated(organization)
    increases = 0
    for user_id, token_type in sorted(keys):
        if user_id not in users:
            continue
        allocation = allocations[(user_id, token_type)]
        override = overrides.get(user_id)
        ceiling = _ceiling(policy, override)
        reached = _fires(
            triggers=policy.triggers,
            cooldown_minutes=policy.cooldown_minutes,
            ceiling=ceiling,
            exempt=override is not None and override.exempt_auto_increase,
            limit=allocation.limit,
            used=used.get((user_id, token_type), 0),
            last_at=allocation.last_auto_increase_at,
            last_tier=allocation.last_auto_increase_tier,
            now=now,
        )
        if reached is None or free[token_type] <= 0:
            continue
        wanted = _bump(policy, reached, allocation.limit, free[token_type])
        bump = min(wanted, free[token_type])
        if ceiling is not None:
            bump = min(bump, ceiling - allocation.limit)
        if bump <= 0:
            continue
        increases += 1
        before = allocation.limit
        after = before + bump
        free[token_type] -= bump
        rate = _bump_rate(policy, reached)
        limited = ""
        if bump < wanted:
            limited = (
                _(" (limited by the ceiling of %(n)s)") % {"n": fmt(ceiling)}
                if ceiling is not None and after == ceiling
                else _(" (limited by the unallocated pool)")
            )
        message = _(
            "Usage of %(used)s %(type)s tokens reached the %(trigger)s trigger of "
            "the %(limit)s limit: +%(bump)s, %(mode)s%(limited)s."
        ) % {
            "used": fmt(used.get((user_id, token_type), 0)),
            "type": type_label(token_type),
            "trigger": _percent(reached),
            "limit": fmt(before),
            "bump": fmt(bump),
            "mode": str(_MODE_TEXT[policy.bump_mode])
            % {
                "value": fmt(int(rate))
                if policy.bump_mode == BumpMode.FLAT
                else _percent(rate)
            },
            "limited": limited,
        }
        event = audit.record(
            action=Action.AUTO_INCREASE,
            actor=None,
            organization=organization,
            target=users[user_id],
            before={f"{token_type}_limit": before},
            after={f"{token_type}_limit": after},
            message=message,
        )
        apply_limits(
            user=users[user_id],
            new_limits={token_type: after},
            allocations=allocations,
            source=Source.AUTO_INCREASE,
            audit_event=event,
            actor=None,
            note=message,
        )
        allocation.last_auto_increase_at = now
        allocation.last_auto_increase_tier = reached
        allocation.save(
            update_fields=["last_auto_increase_at", "last_auto_increase_tier"]
        )
    return increases


def auto_increase_for_batch(counters: list[tuple[int, str, dt.date]]) -> int:
    """Raise the limits of the counters a usage batch just increased (SPEC §6.4).

    Called inside the batch's transaction, after the counters were updated, with
    their (user_id, token_type, period) keys. The common path is one query that
    finds nothing; organizations are locked (in id order) only when an increase
    is due and their pool is not empty, and everything is re-read under the lock.
    Returns the number of increases."""
    now = timezone.now()
    period = period_of(now)
    keys = {(u, str(t)) for u, t, p in counters if p == period}
    if not keys:
        return 0
    due = [row for row in _candidates(keys, period) if _row_fires(row, now)]
    if not due:
        return 0
    by_org: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in due:
        by_org[row["organization_id"]].append((row["user_id"], row["token_type"]))
    return sum(
        _auto_increase_org(org_id, by_org[org_id], now) for org_id in sorted(by_org)
    )
