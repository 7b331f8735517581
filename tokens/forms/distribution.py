"""The forms of Token Distribution (docs/product.md, Token Distribution): presets,
the policy sections, the schedule, overrides and a run."""

from decimal import Decimal, InvalidOperation

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import CanonicalEmailField
from asksage_admin.lib.forms import strip_separators
from tokens.forms.fields import TokenAmountField
from tokens.models import DistributionPolicy

# These forms parse what the admin typed (whole numbers, comma lists, choices); the
# policy rules (floor ≥ the platform minimum, ceiling ≥ floor, trigger 50–99.9, …) are
# checked by tokens.services.distribution, whose errors the views attach to the fields.


class AmountField(forms.DecimalField):
    """A number that may carry thousands separators ("500,000" or "25.5")."""

    def to_python(self, value):
        if isinstance(value, str):
            value = strip_separators(value)
        return super().to_python(value)


def amount_text(value) -> str:
    """25 → "25", 99.9 → "99.9", 500000 → "500,000"."""
    number = Decimal(str(value)).normalize()
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number:f}"


def _number(text: str) -> int | float:
    """80 → 80, 99.9 → 99.9 (JSON-friendly, no Decimal)."""
    value = Decimal(text)
    if not value.is_finite():
        raise InvalidOperation
    return int(value) if value == value.to_integral_value() else float(value)


def percent_text(values) -> str:
    """[80, 95.5] → "80, 95.5" (the inverse of PercentListField)."""
    return ", ".join(percent(v) for v in values or [])


def percent(value) -> str:
    return f"{Decimal(str(value)).normalize():f}"


class PercentListField(forms.CharField):
    """Comma-separated percentages ("80, 95") → [80, 95]."""

    default_error_messages = {
        "invalid_list": _("Enter percentages separated by commas, e.g. %(example)s."),
    }

    def __init__(self, *, example: str = "80, 95", **kwargs):
        self.example = example
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return []
        parts = [part.strip().rstrip("%").strip() for part in text.split(",")]
        try:
            if not all(parts):
                raise InvalidOperation
            return [_number(part) for part in parts]
        except (InvalidOperation, ValueError):
            raise forms.ValidationError(
                self.error_messages["invalid_list"],
                code="invalid_list",
                params={"example": self.example},
            ) from None


def _whole(label, *, required: str, **kwargs) -> forms.IntegerField:
    """A whole number; its range is the service's rule (and message)."""
    return forms.IntegerField(
        label=label,
        error_messages={"invalid": _("Enter a whole number."), "required": required},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        **kwargs,
    )


class PolicyForm(forms.Form):
    """One section of the policy; ``changes()`` is what ``policy_update`` receives."""

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.fields}


class PresetForm(forms.Form):
    preset = forms.ChoiceField(
        choices=DistributionPolicy.Preset.choices,
        error_messages={
            "required": _("Choose a preset."),
            "invalid_choice": _("Choose one of the five presets."),
        },
    )


class FloorCeilingForm(PolicyForm):
    floor_inference = TokenAmountField(
        label=_("Inference floor"),
        help_text=_("At least this many inference tokens for each paid, active user."),
        error_messages={"required": _("Enter the inference floor.")},
    )
    floor_embedding = TokenAmountField(
        label=_("Embedding floor"),
        help_text=_("At least this many embedding tokens for each paid, active user."),
        error_messages={"required": _("Enter the embedding floor.")},
    )
    ceiling = TokenAmountField(
        label=_("Ceiling"),
        help_text=_("Auto-increase never raises a limit above this (either type)."),
        error_messages={"required": _("Enter a ceiling, or tick Unlimited.")},
    )
    ceiling_unlimited = forms.BooleanField(
        label=_("Unlimited (no ceiling)"), required=False
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("ceiling_unlimited"):
            typed = (self.data.get(self.add_prefix("ceiling")) or "").strip()
            self.errors.pop("ceiling", None)
            cleaned["ceiling"] = None
            if typed:
                # Saving "unlimited" would silently drop the typed number.
                self.add_error(
                    "ceiling",
                    _(
                        "Either clear the ceiling or untick Unlimited: a ceiling "
                        "of %(typed)s and no ceiling cannot both be saved."
                    )
                    % {"typed": typed[:40]},
                )
        return cleaned

    def changes(self) -> dict:
        return {
            "floor_inference": self.cleaned_data["floor_inference"],
            "floor_embedding": self.cleaned_data["floor_embedding"],
            "ceiling": self.cleaned_data["ceiling"],
        }


class AutoIncreaseForm(PolicyForm):
    auto_increase_enabled = forms.BooleanField(
        label=_("Raise a user's limit automatically when usage reaches a trigger"),
        required=False,
    )
    triggers = PercentListField(
        label=_("Triggers (% of the limit used)"),
        example="80, 95",
        help_text=_("From 50 to 99.9, separated by commas, e.g. 80, 95."),
        error_messages={
            "required": _("Enter at least one trigger percentage, e.g. 80.")
        },
    )
    cooldown_minutes = _whole(
        _("Cooldown (minutes)"),
        required=_("Enter the cooldown in minutes, e.g. 60."),
        help_text=_("At most one increase per user and type in this time."),
    )
    bump_mode = forms.ChoiceField(
        label=_("Bump"),
        choices=DistributionPolicy.BumpMode.choices,
        error_messages={"invalid_choice": _("Choose one of the bump modes.")},
    )
    bump_value = AmountField(
        label=_("Bump value"),
        help_text=_(
            "A percent for the percent modes, a number of tokens for the flat mode."
        ),
        error_messages={
            "invalid": _("Enter a number, e.g. 25 (percent) or 500,000 (tokens)."),
            "required": _("Enter the bump value."),
        },
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )
    tier_bumps = PercentListField(
        label=_("Tier bumps (%)"),
        example="25, 50",
        required=False,
        help_text=_(
            "Tiers mode only: a percent of the current limit per trigger, in the "
            "same order, e.g. 25, 50."
        ),
    )
    bump_cap_at_current = forms.BooleanField(
        label=_("Never bump by more than the current limit"), required=False
    )


class ReclamationForm(PolicyForm):
    reclamation_enabled = forms.BooleanField(
        label=_("Reclaim unused tokens when a distribution runs"), required=False
    )
    lookback_days = _whole(
        _("Lookback (days)"),
        required=_("Enter the lookback in days, e.g. 30."),
        help_text=_("Peak monthly usage in this many days sets the new limit."),
    )
    headroom_percent = _whole(
        _("Headroom (%)"),
        required=_("Enter the headroom percentage, e.g. 25."),
        help_text=_("Added on top of the peak usage, e.g. 25."),
    )


HOURS = [(h, f"{h:02d}:00 UTC") for h in range(24)]
WEEKDAYS = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]
MONTH_DAYS = [(d, str(d)) for d in range(1, 29)]


class ScheduleForm(PolicyForm):
    schedule = forms.ChoiceField(
        label=_("Run automatically"),
        choices=DistributionPolicy.Frequency.choices,
        error_messages={"invalid_choice": _("Choose off, daily, weekly or monthly.")},
    )
    schedule_hour = forms.TypedChoiceField(
        label=_("At (UTC)"),
        choices=HOURS,
        coerce=int,
        error_messages={"invalid_choice": _("Choose an hour from 0 to 23 (UTC).")},
    )
    schedule_weekday = forms.TypedChoiceField(
        label=_("Weekly: on"),
        choices=WEEKDAYS,
        coerce=int,
        error_messages={"invalid_choice": _("Choose a day of the week.")},
    )
    schedule_day = forms.TypedChoiceField(
        label=_("Monthly: on day"),
        choices=MONTH_DAYS,
        coerce=int,
        help_text=_("1 to 28, so every month has it."),
        error_messages={"invalid_choice": _("Choose a day of the month from 1 to 28.")},
    )


class OverrideForm(forms.Form):
    """A per-user override; the user is chosen by email within the organization."""

    email = CanonicalEmailField(
        label=_("User email"),
        error_messages={
            "required": _("Enter the email of a user of your organization."),
            "invalid": _("Enter a valid email address."),
        },
        widget=forms.EmailInput(
            attrs={"list": "override-emails", "autocomplete": "off"}
        ),
    )
    floor = TokenAmountField(
        label=_("Own floor"),
        required=False,
        help_text=_("Both token types; empty = the policy's floors."),
    )
    ceiling = TokenAmountField(
        label=_("Own ceiling"),
        required=False,
        help_text=_("Both token types; empty = the policy's ceiling."),
    )
    exempt_auto_increase = forms.BooleanField(
        label=_("Exempt from auto-increase"), required=False
    )
    exempt_reclamation = forms.BooleanField(
        label=_("Exempt from reclamation"), required=False
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=500,
        help_text=_("Why this user is different (shown to other admins)."),
    )

    def __init__(self, *args, users, **kwargs):
        self.users = users
        super().__init__(*args, **kwargs)

    def clean_email(self):
        email = self.cleaned_data["email"]
        user = self.users.filter(email=email).first()
        if user is None:
            raise forms.ValidationError(
                _("%(email)s is not a user of your organization."),
                code="unknown_user",
                params={"email": email},
            )
        self.cleaned_data["user"] = user
        return email


class DistributionRunForm(forms.Form):
    distribute_equally = forms.BooleanField(
        label=_("Also distribute the unallocated pool equally"), required=False
    )
