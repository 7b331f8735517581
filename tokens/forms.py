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
