"""Validation of the distribution policy's settings (docs/product.md, Token
Distribution): each value on its own, then the rules across fields."""

from decimal import Decimal, InvalidOperation
from itertools import pairwise

from django.conf import settings
from django.utils.translation import gettext as _

from tokens.services.distribution._common import (
    BumpMode,
    Frequency,
    _decimal,
    _is_int,
    _is_number,
    _plain,
)
from tokens.services.pool import fmt

_MAX_COOLDOWN = 525_600  # one year, in minutes
_MAX_PERCENT_BUMP = 1_000
_MAX_TOKENS = 10**14 - 1  # what bump_value (15 digits, 1 decimal) can hold


def _clean_whole(value, low: int, high: int | None, message: str, errors, field):
    if not _is_int(value) or value < low or (high is not None and value > high):
        errors[field] = message
        return None
    return value


def override_amount_errors(*, floor, ceiling) -> dict[str, str]:
    """A per-user override's floor and ceiling (None = the policy's): the floor is
    at least the platform minimum, like the policy's floors; both are whole numbers
    of tokens within ``_MAX_TOKENS``; the ceiling is at least the floor."""
    errors: dict[str, str] = {}
    minimum = settings.MIN_USER_TOKENS
    if floor is not None and (
        not _is_int(floor) or floor < minimum or floor > _MAX_TOKENS
    ):
        errors["floor"] = _(
            "The floor must be a whole number of tokens from the platform minimum "
            "of %(min)s to %(max)s, or empty to use the policy's floor."
        ) % {"min": fmt(minimum), "max": fmt(_MAX_TOKENS)}
    if ceiling is not None and (
        not _is_int(ceiling) or ceiling < 0 or ceiling > _MAX_TOKENS
    ):
        errors["ceiling"] = _(
            "The ceiling must be a whole number of tokens from 0 to %(max)s, or "
            "empty to use the policy's ceiling."
        ) % {"max": fmt(_MAX_TOKENS)}
    if not errors and floor is not None and ceiling is not None and ceiling < floor:
        errors["ceiling"] = _(
            "The ceiling (%(ceiling)s) must be at least the floor (%(floor)s)."
        ) % {"ceiling": fmt(ceiling), "floor": fmt(floor)}
    return errors


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
