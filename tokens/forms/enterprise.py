"""The enterprise account request form (docs/product.md, Sales flow)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tokens.forms.fields import AMOUNT_HELP, TokenAmountField
from tokens.services.activation import (
    BILLING_ADDRESS_MAX,
    EMAIL_LIST_MAX,
    OTHER_INFORMATION_MAX,
    split_emails,
)

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
        help_text=AMOUNT_HELP,
    )
    embedding_tokens = TokenAmountField(
        label=_("Monthly embedding tokens"),
        widget=forms.NumberInput,
        help_text=AMOUNT_HELP,
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
