"""Every write of the tokens app (docs/development.md, House style: one function per
action, one transaction, its audit event inside it)."""

from tokens.services.pool import (
    allocation_set_limit,
    allocations_bulk_set_limit,
    purchase_record,
    self_action_refusal,
    user_ban,
    user_deactivate,
    user_reactivate,
    user_unban,
    users_set_banned,
    users_set_paid,
)

__all__ = [
    "allocation_set_limit",
    "allocations_bulk_set_limit",
    "purchase_record",
    "self_action_refusal",
    "user_ban",
    "user_deactivate",
    "user_reactivate",
    "user_unban",
    "users_set_banned",
    "users_set_paid",
]

from tokens.services.activation import (
    enterprise_request_activate,
    enterprise_request_reject,
    enterprise_request_submit,
    organization_add_member,
    organization_remove_member,
)

__all__ += [
    "enterprise_request_activate",
    "enterprise_request_reject",
    "enterprise_request_submit",
    "organization_add_member",
    "organization_remove_member",
]
