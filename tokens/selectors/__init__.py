"""Every read of the tokens app, scoped to the organization being viewed, one module
per subdomain: ``pool``, ``metering``, ``distribution``, ``members`` (User
Management) and ``requests`` (Token Requests). Everything public is re-exported here.

Every selector that reads a tenant table takes that organization (``org``) and
filters on it, even when it also takes a user: a user who moved keeps their rows in
the organization they left (usage, counters, allocation history, requests), and
those are the other organization's data (``tests/test_tenant_selectors.py`` checks
every public function of these modules).
"""

from tokens.selectors.distribution import overrides_in, recent_runs
from tokens.selectors.members import (
    last_active,
    users_for_panel,
    users_in,
)
from tokens.selectors.metering import (
    EXPORT_COLUMNS,
    recent_usage,
    usage_events_for_export,
    user_usage_by_model,
)
from tokens.selectors.pool import (
    TYPES,
    Balance,
    TypeSummary,
    allocated,
    allocation_history,
    org_summary,
    pools,
    purchases_active_in,
    user_balance,
    user_balances,
    user_limits,
)
from tokens.selectors.requests import (
    REQUEST_TABS,
    auto_approval_rule,
    pending_request_count,
    token_request_counts,
    token_requests_for_panel,
    token_requests_in,
    user_token_requests,
)

__all__ = [
    "EXPORT_COLUMNS",
    "REQUEST_TABS",
    "TYPES",
    "Balance",
    "TypeSummary",
    "allocated",
    "allocation_history",
    "auto_approval_rule",
    "last_active",
    "org_summary",
    "overrides_in",
    "pending_request_count",
    "pools",
    "purchases_active_in",
    "recent_runs",
    "recent_usage",
    "token_request_counts",
    "token_requests_for_panel",
    "token_requests_in",
    "usage_events_for_export",
    "user_balance",
    "user_balances",
    "user_limits",
    "user_token_requests",
    "user_usage_by_model",
    "users_for_panel",
    "users_in",
]
