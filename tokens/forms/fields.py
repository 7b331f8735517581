"""The form fields every page of the tokens app shares: a token amount, typed with
or without thousands separators."""

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from asksage_admin.lib.forms import (
    MAX_TOKEN_AMOUNT,
    TokenAmountField,
    TokenAmountInput,
)

AMOUNT_HELP = format_lazy(
    _("In lots of {lot}, and at least {min} per user."),
    lot=f"{settings.TOKEN_LOT:,}",
    min=f"{settings.MIN_USER_TOKENS:,}",
)


# The one number input convention lives in asksage_admin/lib/forms.py (re-exported
# here for the forms of this app and the callers that import it from tokens.forms).
__all__ = ["AMOUNT_HELP", "MAX_TOKEN_AMOUNT", "TokenAmountField", "TokenAmountInput"]
