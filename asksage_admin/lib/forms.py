"""The one number input convention (docs/product.md, Numbers and dates): every token
amount typed in any form, panel or staff site, goes through ``TokenAmountField``. It
accepts thousands separators (commas, spaces, underscores, thin and no-break
spaces: "1,200,000", "1 200 000", "1_200_000") and shows prefilled values with
commas ("800,000"), so what the page shows can be sent back as it is."""

import re

from django import forms
from django.utils.translation import gettext_lazy as _

# The largest token amount any form accepts: far above any pool, far below what a
# BigIntegerField holds (2**63 - 1), so no typed number can overflow the database.
MAX_TOKEN_AMOUNT = 10**15

# Thousands separators: comma, underscore, space, no-break space, thin space,
# narrow no-break space (what a French or Swiss keyboard or a copy from a document
# may put between digit groups).
_SEPARATORS = re.compile("[,_ \u00a0\u2009\u202f]")


def strip_separators(value: str) -> str:
    """ "1,200,000" → "1200000" (also "1 200 000", "1_200_000", thin spaces)."""
    return _SEPARATORS.sub("", value.strip())


class TokenAmountInput(forms.TextInput):
    """A token amount shown with thousands separators ("500,000")."""

    def __init__(self, attrs=None):
        super().__init__(
            {"inputmode": "numeric", "autocomplete": "off", **(attrs or {})}
        )

    def format_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return super().format_value(value)


class TokenAmountField(forms.IntegerField):
    """A whole number of tokens from ``min_value`` (0) to ``MAX_TOKEN_AMOUNT``, with
    separators allowed. Every token amount a form stores goes through this field;
    its messages say what is allowed in words (never Django's "Ensure this value
    is…")."""

    widget = TokenAmountInput
    default_error_messages = {
        "invalid": _("Enter a whole number of tokens, such as 500,000."),
        "min_value": _("Enter at least %(limit_value)s tokens."),
        "max_value": _(
            "That is more tokens than any pool holds (at most %(limit_value)s)."
        ),
    }

    def __init__(self, *, min_value=0, max_value=MAX_TOKEN_AMOUNT, **kwargs):
        # Always a text input with separators: a browser's type="number" refuses
        # "1,200,000" and shows "800000". A widget given by a form keeps its
        # attributes (id, placeholder), not its type or step.
        widget = kwargs.pop("widget", None)
        if isinstance(widget, type):
            widget = widget()
        attrs = {
            k: v
            for k, v in (getattr(widget, "attrs", None) or {}).items()
            if k not in {"step", "type", "min", "max"}
        }
        kwargs["widget"] = TokenAmountInput(attrs)
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)
        # Show the limits with separators in the messages ("1,000,000,000,000,000").
        for validator in self.validators:
            limit = getattr(validator, "limit_value", None)
            if isinstance(limit, int):
                validator.message = self.error_messages.get(validator.code)
                validator.limit_value = _Shown(limit)

    def to_python(self, value):
        if isinstance(value, str):
            value = strip_separators(value)
            if len(value) > 32 or not value.isascii():
                # Far longer than any amount, or digits of another script.
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid"
                )
        return super().to_python(value)


class _Shown(int):
    """An int that prints with thousands separators in a message."""

    def __str__(self) -> str:
        return f"{int(self):,}"
