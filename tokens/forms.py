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
