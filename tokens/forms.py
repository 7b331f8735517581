from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from accounts.forms import CanonicalEmailField
from asksage_admin.lib.forms import (
    MAX_TOKEN_AMOUNT,
    TokenAmountField,
    TokenAmountInput,
    strip_separators,
)
from tokens.models import DistributionPolicy
from tokens.services.activation import (
    BILLING_ADDRESS_MAX,
    EMAIL_LIST_MAX,
    OTHER_INFORMATION_MAX,
    split_emails,
)

_AMOUNT_HELP = format_lazy(
    _("In lots of {lot}, and at least {min} per user."),
    lot=f"{settings.TOKEN_LOT:,}",
    min=f"{settings.MIN_USER_TOKENS:,}",
)


# The one number input convention lives in asksage_admin/lib/forms.py (imported here
# for the forms of this module and the callers that import it from tokens.forms).
__all__ = ["MAX_TOKEN_AMOUNT", "TokenAmountField", "TokenAmountInput"]


_TEXT_TOO_LONG = _(
    "Keep this to %(limit_value)d characters or fewer (it has %(show_value)d)."
)


class EnterpriseRequestForm(forms.Form):
    """The public intake (docs/product.md, Sales flow). It only parses input; every rule
    is checked by ``enterprise_request_submit``, whose errors the view attaches to these
    fields."""

    organization_name = forms.CharField(label=_("Organization name"), max_length=200)
    billing_address = forms.CharField(
        label=_("Billing address"),
        max_length=BILLING_ADDRESS_MAX,
        error_messages={"max_length": _TEXT_TOO_LONG},
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    user_emails = forms.CharField(
        label=_("Emails of all users"),
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=EMAIL_LIST_MAX,
        error_messages={
            "required": _("List the emails of all users (at least 2)."),
            "max_length": _TEXT_TOO_LONG,
        },
        help_text=_(
            "One per line or separated by commas; include yourself and the admins. "
            "At least 2 users, each already registered with the terms accepted."
        ),
    )
    admin_emails = forms.CharField(
        label=_("Emails of the admins"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=EMAIL_LIST_MAX,
        error_messages={
            "required": _("Name at least one admin."),
            "max_length": _TEXT_TOO_LONG,
        },
        help_text=_("At least one; every admin must also be listed among the users."),
    )
    inference_tokens = TokenAmountField(
        label=_("Monthly inference tokens"),
        widget=forms.NumberInput,
        help_text=_AMOUNT_HELP,
    )
    embedding_tokens = TokenAmountField(
        label=_("Monthly embedding tokens"),
        widget=forms.NumberInput,
        help_text=_AMOUNT_HELP,
    )
    other_information = forms.CharField(
        label=_("Other information"),
        required=False,
        max_length=OTHER_INFORMATION_MAX,
        error_messages={"max_length": _TEXT_TOO_LONG},
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_user_emails(self) -> list[str]:
        return split_emails(self.cleaned_data["user_emails"])

    def clean_admin_emails(self) -> list[str]:
        return split_emails(self.cleaned_data["admin_emails"])


class LimitForm(forms.Form):
    """One user's limit for one token type (the rules are in allocation_set_limit)."""

    limit = TokenAmountField(
        label=_("New limit"),
        error_messages={
            "invalid": _("Enter a whole number of tokens, such as 500,000."),
            "required": _("Enter the new limit."),
            "min_value": _("A limit cannot be negative."),
        },
        widget=forms.NumberInput(attrs={"step": 1000, "inputmode": "numeric"}),
    )
    confirm_below_minimum = forms.BooleanField(
        required=False,
        label=_("Yes, set this paid user below the platform minimum"),
    )


class BulkActionForm(forms.Form):
    """The action of a bulk request on selected users (docs/product.md, User
    Management)."""

    ACTIONS = [
        ("", _("Bulk action…")),
        ("paid_on", _("Set paid (reactivate)")),
        ("paid_off", _("Set unpaid (deactivate)")),
        ("ban", _("Ban")),
        ("unban", _("Unban")),
        ("set_limit", _("Set a limit")),
    ]

    action = forms.ChoiceField(
        choices=ACTIONS,
        error_messages={"required": _("Choose a bulk action.")},
        widget=forms.Select(attrs={"id": "id_bulk_action"}),
    )
    token_type = forms.ChoiceField(
        choices=[("inference", _("Inference")), ("embedding", _("Embedding"))],
        required=False,
        widget=forms.Select(attrs={"id": "id_bulk_token_type"}),
    )
    limit = TokenAmountField(
        required=False,
        error_messages={
            "invalid": _("Enter the limit as a whole number of tokens."),
            "min_value": _("A limit cannot be negative."),
        },
        widget=forms.NumberInput(
            attrs={"id": "id_bulk_limit", "placeholder": _("New limit"), "step": 1000}
        ),
    )
    confirm_below_minimum = forms.BooleanField(required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "set_limit":
            if not cleaned.get("token_type"):
                self.add_error("token_type", _("Choose the token type to set."))
            if cleaned.get("limit") is None and "limit" not in self.errors:
                self.add_error(
                    "limit", _("Enter the new limit for the selected users.")
                )
        return cleaned

    def error_messages_flat(self) -> list[str]:
        return [message for errors in self.errors.values() for message in errors]


# --- Token Requests (docs/product.md, Token Requests) ---------------------------------
# The forms parse and give field messages; the services in tokens.services.requests
# check every rule again.

_TOKEN_TYPES = [("inference", _("Inference")), ("embedding", _("Embedding"))]
_WHOLE_TOKENS = _("Enter the amount as a whole number of tokens, such as 50000.")
_NOTE_TOO_LONG = _(
    "Keep the note to %(limit_value)d characters or fewer (it has %(show_value)d)."
)


class TokenRequestForm(forms.Form):
    """A member's request for more tokens (on /me/)."""

    token_type = forms.ChoiceField(
        label=_("Token type"),
        choices=_TOKEN_TYPES,
        error_messages={
            "required": _("Choose inference or embedding tokens."),
            "invalid_choice": _("Choose inference or embedding tokens."),
        },
    )
    amount = TokenAmountField(
        label=_("Amount"),
        min_value=1,
        error_messages={
            "required": _("Enter how many tokens you need."),
            "invalid": _WHOLE_TOKENS,
            "min_value": _("Request at least 1 token."),
            "max_value": _("That is more tokens than any pool holds."),
        },
        widget=forms.NumberInput(attrs={"step": 1, "inputmode": "numeric"}),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        error_messages={
            "required": _("Tell your admin why you need more tokens."),
            "max_length": _(
                "Keep the reason to %(limit_value)d characters or fewer (it has "
                "%(show_value)d)."
            ),
        },
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Up to 500 characters. Your admin sees it with the request."),
    )


class ApproveForm(forms.Form):
    """Approve a request: the amount (default: the requested one) and a note."""

    amount = TokenAmountField(
        label=_("Amount to approve"),
        min_value=1,
        error_messages={
            "required": _("Enter the amount to approve."),
            "invalid": _WHOLE_TOKENS,
            "min_value": _("Approve at least 1 token, or deny the request."),
            "max_value": _("That is more tokens than any pool holds."),
        },
        widget=forms.NumberInput(attrs={"step": 1, "inputmode": "numeric"}),
        help_text=_("Any whole number from 1; it is added to the user's limit."),
    )
    note = forms.CharField(
        label=_("Note to the user"),
        required=False,
        max_length=500,
        error_messages={"max_length": _NOTE_TOO_LONG},
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class DenyForm(forms.Form):
    """Deny a request, optionally saying why."""

    note = forms.CharField(
        label=_("Note to the user"),
        required=False,
        max_length=500,
        error_messages={"max_length": _NOTE_TOO_LONG},
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class AutoApprovalForm(forms.Form):
    """The organization's auto-approval rule."""

    enabled = forms.BooleanField(
        label=_("Approve small requests automatically"), required=False
    )
    max_amount = TokenAmountField(
        label=_("Maximum amount"),
        min_value=1,
        error_messages={
            "required": _("Enter the maximum amount to approve automatically."),
            "invalid": _("Enter the maximum amount as a whole number of tokens."),
            "min_value": _("The maximum amount must be at least 1 token."),
            "max_value": _("That is more tokens than any pool holds."),
        },
        widget=forms.NumberInput(attrs={"step": 1000, "inputmode": "numeric"}),
        help_text=_("Tokens per request, at most."),
    )
    max_consumption_percent = forms.DecimalField(
        label=_("Maximum org consumption (%)"),
        min_value=Decimal("0.1"),
        max_value=100,
        max_digits=4,
        decimal_places=1,
        error_messages={
            "required": _("Enter the maximum consumption, from 0.1 to 100%."),
            "invalid": _("Enter the maximum consumption as a number from 0.1 to 100."),
            # These messages are %-formatted with the limit: "%%" is a percent sign.
            "min_value": _(
                "The maximum consumption must be at least 0.1%%: at 0%% no request "
                "could ever be approved automatically."
            ),
            "max_value": _("The maximum consumption cannot be above 100%%."),
            "max_decimal_places": _("Use at most one decimal place, such as 62.5."),
            "max_digits": _(
                "Enter the maximum consumption as a number from 0.1 to 100."
            ),
            "max_whole_digits": _("The maximum consumption cannot be above 100%%."),
        },
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
        help_text=_("Used ÷ pool this month, before the request."),
    )
    max_per_user_month = TokenAmountField(
        label=_("Per user a month"),
        min_value=1,
        error_messages={
            "required": _("Enter the most tokens one user may get this way a month."),
            "min_value": _("The monthly maximum per user must be at least 1 token."),
        },
        widget=forms.NumberInput(attrs={"step": 1000, "inputmode": "numeric"}),
        help_text=_(
            "Tokens of a type auto-approved per user in a calendar month (UTC)."
        ),
    )
    max_approvals_per_day = forms.IntegerField(
        label=_("Per user in 24 hours"),
        min_value=1,
        max_value=1_000,
        error_messages={
            "required": _("Enter how many requests of one user may be approved a day."),
            "invalid": _("Enter a whole number of approvals, such as 3."),
            "min_value": _("Allow at least 1 auto-approval per user in 24 hours."),
            "max_value": _("Allow at most %(limit_value)s auto-approvals in 24 hours."),
        },
        widget=forms.NumberInput(attrs={"step": 1, "inputmode": "numeric"}),
        help_text=_(
            "Auto-approvals per user in any 24 hours; beyond it, an admin decides."
        ),
    )


# --- Management → Token Distribution (docs/product.md, Token Distribution) ------------
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
