"""The form fields every page of the tokens app shares: a token amount, typed with
or without thousands separators."""

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

AMOUNT_HELP = format_lazy(
    _("In lots of {lot}, and at least {min} per user."),
    lot=f"{settings.TOKEN_LOT:,}",
    min=f"{settings.MIN_USER_TOKENS:,}",
)


class TokenAmountInput(forms.TextInput):
    """A token amount shown with thousands separators ("500,000")."""

    def __init__(self, attrs=None):
        super().__init__(
            {"inputmode": "numeric", "autocomplete": "off", **(attrs or {})}
        )

    def format_value(self, value):
        if isinstance(value, int):
            return f"{value:,}"
        return super().format_value(value)


# The largest token amount any form accepts: far above any pool, far below what a
# BigIntegerField holds (2**63 - 1), so no typed number can overflow the database.
MAX_TOKEN_AMOUNT = 10**15


class TokenAmountField(forms.IntegerField):
    """A whole number of tokens from ``min_value`` (0) to ``MAX_TOKEN_AMOUNT``;
    accepts "500,000", "500 000" and "500_000". Every token amount a form stores
    goes through this field."""

    widget = TokenAmountInput
    default_error_messages = {
        "invalid": _("Enter a whole number of tokens, such as 500,000."),
        "min_value": _("Enter at least %(limit_value)s tokens."),
        "max_value": _(
            "That is more tokens than any pool holds (at most %(limit_value)s)."
        ),
    }

    def __init__(self, *, min_value=0, max_value=MAX_TOKEN_AMOUNT, **kwargs):
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip().replace(",", "").replace("_", "").replace(" ", "")
            if len(value) > 32 or not value.isascii():
                # Far longer than any amount, or digits of another script.
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid"
                )
        return super().to_python(value)
