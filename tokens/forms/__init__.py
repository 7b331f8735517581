"""The forms of the tokens app, one module per subdomain: ``members`` (User
Management), ``requests`` (Token Requests), ``distribution`` (Token Distribution),
``enterprise`` (the enterprise account request), and ``fields`` (the token amount
field they share). Forms only parse and show the services' messages."""

from tokens.forms.distribution import (
    AutoIncreaseForm,
    DistributionRunForm,
    FloorCeilingForm,
    OverrideForm,
    PresetForm,
    ReclamationForm,
    ScheduleForm,
    amount_text,
    percent,
    percent_text,
)
from tokens.forms.enterprise import EnterpriseRequestForm
from tokens.forms.fields import MAX_TOKEN_AMOUNT, TokenAmountField
from tokens.forms.members import BulkActionForm, LimitForm
from tokens.forms.requests import (
    ApproveForm,
    AutoApprovalForm,
    DenyForm,
    TokenRequestForm,
)

__all__ = [
    "MAX_TOKEN_AMOUNT",
    "ApproveForm",
    "AutoApprovalForm",
    "AutoIncreaseForm",
    "BulkActionForm",
    "DenyForm",
    "DistributionRunForm",
    "EnterpriseRequestForm",
    "FloorCeilingForm",
    "LimitForm",
    "OverrideForm",
    "PresetForm",
    "ReclamationForm",
    "ScheduleForm",
    "TokenAmountField",
    "TokenRequestForm",
    "amount_text",
    "percent",
    "percent_text",
]
