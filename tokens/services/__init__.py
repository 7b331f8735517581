"""Every write of the tokens app (CONVENTIONS: one function per action, one
transaction, its audit event inside it)."""

from tokens.services.allocations import (
    allocation_set_limit,
    purchase_record,
    user_ban,
    user_deactivate,
    user_reactivate,
    user_unban,
)

__all__ = [
    "allocation_set_limit",
    "purchase_record",
    "user_ban",
    "user_deactivate",
    "user_reactivate",
    "user_unban",
]
