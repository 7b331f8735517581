"""A thin client of the platform's gateway API (docs/gateway-api.md) and a
budget-enforcing callback for the LiteLLM proxy (docs/integrations.md).

The client needs only httpx; ``asksage_budget.litellm`` needs LiteLLM too."""

from asksage_budget.client import AsyncBudgetClient, BudgetClient
from asksage_budget.errors import (
    BudgetError,
    Conflict,
    Forbidden,
    InsufficientTokens,
    InvalidRequest,
    ModelNotAllowed,
    NotFound,
    PlatformUnavailable,
    Unauthorized,
    UnknownHold,
    UnknownModel,
    UnknownUser,
    UserBanned,
    UserNotPaid,
)
from asksage_budget.models import (
    Authorization,
    Balance,
    EventResult,
    UsageEvent,
    UsageResult,
)

__all__ = [
    "AsyncBudgetClient",
    "Authorization",
    "Balance",
    "BudgetClient",
    "BudgetError",
    "Conflict",
    "EventResult",
    "Forbidden",
    "InsufficientTokens",
    "InvalidRequest",
    "ModelNotAllowed",
    "NotFound",
    "PlatformUnavailable",
    "Unauthorized",
    "UnknownHold",
    "UnknownModel",
    "UnknownUser",
    "UsageEvent",
    "UsageResult",
    "UserBanned",
    "UserNotPaid",
]
