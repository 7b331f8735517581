"""The pool: purchases, limits, paid and banned status, and the kernel every change
of limits goes through (docs/architecture.md, Three questions, three places).

- ``kernel``: ``LimitPlan`` and its parts, ``headroom`` (the one definition of the
  unallocated pool), ``apply`` (lock, re-check, audit, write), the lock helpers.
- ``plans``: the plans of limit changes (set, bulk, paid on/off, token request
  approval); ``membership``: members joining and leaving, activation.
- ``limits``: ``allocation_set_limit``, ``allocations_bulk_set_limit``.
- ``status``: paid on/off and banned, and the self-action rule.
- ``purchases``: ``purchase_record`` and its checks.
"""

from tokens.services.pool.kernel import (
    TYPES,
    LimitPlan,
    apply,
    fmt,
    headroom,
    headrooms,
    limits_of,
    lock_allocations,
    lock_organization,
    type_label,
)
from tokens.services.pool.limits import (
    allocation_set_limit,
    allocations_bulk_set_limit,
)
from tokens.services.pool.purchases import (
    PURCHASE_COMMENT_MAX,
    purchase_check,
    purchase_record,
)
from tokens.services.pool.status import (
    plan_paid_change,
    self_action_refusal,
    user_ban,
    user_deactivate,
    user_reactivate,
    user_unban,
    users_set_banned,
    users_set_paid,
)

__all__ = [
    "PURCHASE_COMMENT_MAX",
    "TYPES",
    "LimitPlan",
    "allocation_set_limit",
    "allocations_bulk_set_limit",
    "apply",
    "fmt",
    "headroom",
    "headrooms",
    "limits_of",
    "lock_allocations",
    "lock_organization",
    "plan_paid_change",
    "purchase_check",
    "purchase_record",
    "self_action_refusal",
    "type_label",
    "user_ban",
    "user_deactivate",
    "user_reactivate",
    "user_unban",
    "users_set_banned",
    "users_set_paid",
]
