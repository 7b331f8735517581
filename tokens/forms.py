from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from tokens.services.activation import split_emails

_AMOUNT_HELP = format_lazy(
    _("In lots of {lot}, and at least {min} per user."),
    lot=f"{settings.TOKEN_LOT:,}",
    min=f"{settings.MIN_USER_TOKENS:,}",
)


class EnterpriseRequestForm(forms.Form):
    """The public intake (SPEC §3). It only parses input; every rule is checked by
    ``enterprise_request_submit``, whose errors the view attaches to these fields."""

    organization_name = forms.CharField(label=_("Organization name"), max_length=200)
    billing_address = forms.CharField(
        label=_("Billing address"), widget=forms.Textarea(attrs={"rows": 3})
    )
    user_emails = forms.CharField(
        label=_("Emails of all users"),
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": _("List the emails of all users (at least 2).")},
        help_text=_(
            "One per line or separated by commas; include yourself and the admins. "
            "At least 2 users, each already registered with the terms accepted."
        ),
    )
    admin_emails = forms.CharField(
        label=_("Emails of the admins"),
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Name at least one admin.")},
        help_text=_("At least one; every admin must also be listed among the users."),
    )
    inference_tokens = forms.IntegerField(
        label=_("Monthly inference tokens"),
        min_value=0,
        help_text=_AMOUNT_HELP,
    )
    embedding_tokens = forms.IntegerField(
        label=_("Monthly embedding tokens"),
        min_value=0,
        help_text=_AMOUNT_HELP,
    )
    other_information = forms.CharField(
        label=_("Other information"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_user_emails(self) -> list[str]:
        return split_emails(self.cleaned_data["user_emails"])

    def clean_admin_emails(self) -> list[str]:
        return split_emails(self.cleaned_data["admin_emails"])


class LimitForm(forms.Form):
    """One user's limit for one token type (the rules are in allocation_set_limit)."""

    limit = forms.IntegerField(
        label=_("New limit"),
        min_value=0,
        max_value=10**15,
        error_messages={
            "invalid": _("Enter a whole number of tokens, such as 500000."),
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
    """The action of a bulk request on selected users (SPEC §5)."""

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
    limit = forms.IntegerField(
        required=False,
        min_value=0,
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


# --- Token Requests (SPEC §7). The forms parse and give field messages; the services
# in tokens.services.requests check every rule again. ----------------------------------

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
    amount = forms.IntegerField(
        label=_("Amount"),
        min_value=1,
        max_value=10**15,
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

    amount = forms.IntegerField(
        label=_("Amount to approve"),
        min_value=1,
        max_value=10**15,
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
    max_amount = forms.IntegerField(
        label=_("Maximum amount"),
        min_value=1,
        max_value=10**15,
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
        min_value=0,
        max_value=100,
        max_digits=4,
        decimal_places=1,
        error_messages={
            "required": _("Enter the maximum consumption, from 0 to 100 %."),
            "invalid": _("Enter the maximum consumption as a number from 0 to 100."),
            "min_value": _("The maximum consumption cannot be below 0 %."),
            "max_value": _("The maximum consumption cannot be above 100 %."),
            "max_decimal_places": _("Use at most one decimal place, such as 62.5."),
            "max_digits": _("Enter the maximum consumption as a number from 0 to 100."),
            "max_whole_digits": _("The maximum consumption cannot be above 100 %."),
        },
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
        help_text=_("Used ÷ pool this month, before the request."),
    )
