"""The forms of Token Requests (docs/product.md, Token Requests): a member's request,
the admin's decision and the auto-approval rule. The forms parse and give field
messages; the services in tokens.services.requests check every rule again."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from tokens.forms.fields import TokenAmountField
from tokens.models import TokenType

_WHOLE_TOKENS = _("Enter the amount as a whole number of tokens, such as 50000.")
_NOTE_TOO_LONG = _(
    "Keep the note to %(limit_value)d characters or fewer (it has %(show_value)d)."
)


class TokenRequestForm(forms.Form):
    """A member's request for more tokens (on /me/)."""

    token_type = forms.ChoiceField(
        label=_("Token type"),
        choices=TokenType.choices,
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
