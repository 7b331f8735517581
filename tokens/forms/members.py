"""The forms of User Management (docs/product.md, User Management): a limit and a
bulk action."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tokens.forms.fields import TokenAmountField
from tokens.models import TokenType


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
        choices=TokenType.choices,
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
