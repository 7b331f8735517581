"""The token models, one module per subdomain (docs/architecture.md, Layers and
layout): ``catalog`` (token types, AI models), ``pool`` (purchases, allocations and
their changes), ``metering`` (counters, holds, usage events, rollups),
``distribution`` (policy, overrides, runs), ``requests`` (token requests,
auto-approval rules) and ``alerts`` (alert settings, alerts fired). Every model is
re-exported here, so ``tokens.models.X`` and the migrations' ``tokens.X`` keep
working."""

from tokens.models.alerts import (
    DEFAULT_ORG_THRESHOLDS,
    DEFAULT_USER_THRESHOLDS,
    Alert,
    AlertSettings,
)
from tokens.models.catalog import TOKEN_TYPES, TYPE_FIELDS, AIModel, TokenType
from tokens.models.distribution import DistributionPolicy, DistributionRun, UserOverride
from tokens.models.metering import (
    ORG_DAILY_STRIPES,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    UsageCounter,
    UsageEvent,
)
from tokens.models.pool import Allocation, AllocationChange, Purchase
from tokens.models.requests import AutoApprovalRule, TokenRequest

__all__ = [
    "DEFAULT_ORG_THRESHOLDS",
    "DEFAULT_USER_THRESHOLDS",
    "ORG_DAILY_STRIPES",
    "TOKEN_TYPES",
    "TYPE_FIELDS",
    "AIModel",
    "Alert",
    "AlertSettings",
    "Allocation",
    "AllocationChange",
    "AutoApprovalRule",
    "DailyUsage",
    "DistributionPolicy",
    "DistributionRun",
    "Hold",
    "MonthlyUsage",
    "OrgDailyUsage",
    "Purchase",
    "TokenRequest",
    "TokenType",
    "UsageCounter",
    "UsageEvent",
    "UserOverride",
]
