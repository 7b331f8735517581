"""The distribution policy engine (docs/product.md, Token Distribution): presets, floors
and ceilings, auto-increase, reclamation, per-user overrides, runs and the rebalancing
schedule.

Rules decided here (each stated in docs/product.md, Token Distribution):

- A run works per token type, in this order: (1) reclamation, when on, so the
  tokens it frees can fund the floors; (2) raise paid, unbanned users below their
  floor, largest shortfall first, as far as the pool allows; (3) with "distribute
  equally", split what is left of the pool equally (floor division) among paid,
  unbanned users, never above a user's ceiling; the remainder stays unallocated.
- A user's floor is the override's floor when set, else the policy's floor for the
  type, capped by the user's ceiling, and never below the platform minimum
  (MIN_USER_TOKENS): the platform's own changes never leave a paid, active user
  under the minimum (invariant 10, docs/architecture.md). For the same reason a partial
  floor raise that would still end under the minimum is not made (the user keeps their
  limit, the shortfall is reported, the pool goes to the next user), and the equal share
  goes only to users at or above the minimum.
- The ceiling is the override's ceiling when set, else the policy's (None =
  unlimited).
- Reclamation: max(floor, peak monthly usage in the lookback × (1 + headroom %),
  rounded up to 1,000), applied only when lower than the current limit.
- Auto-increase runs inside the usage batch's transaction: one query finds the
  counters that crossed their organization's lowest trigger; when one fires, the
  pool is checked without a lock, and only then is the organization locked and
  everything re-read under the lock.
- Scheduled runs never distribute the pool equally (the policy has no setting for
  it); they are recorded with their due time, once per organization and due time.
"""

from tokens.services.distribution.auto_increase import auto_increase_for_batch
from tokens.services.distribution.overrides import override_remove, override_set
from tokens.services.distribution.policy import (
    OTHER_FIELDS,
    PRESET_FIELDS,
    PRESETS,
    policy_apply_preset,
    policy_ensure,
    policy_update,
)
from tokens.services.distribution.runs import (
    REASON_EQUAL,
    REASON_FLOOR,
    REASON_RECLAMATION,
    REASON_SOURCES,
    Plan,
    PlanChange,
    distribution_plan,
    distribution_run,
    reclaimed_limit,
)
from tokens.services.distribution.schedule import (
    last_due_at,
    next_run_at,
    run_due_distributions,
)

__all__ = [
    "OTHER_FIELDS",
    "PRESETS",
    "PRESET_FIELDS",
    "REASON_EQUAL",
    "REASON_FLOOR",
    "REASON_RECLAMATION",
    "REASON_SOURCES",
    "Plan",
    "PlanChange",
    "auto_increase_for_batch",
    "distribution_plan",
    "distribution_run",
    "last_due_at",
    "next_run_at",
    "override_remove",
    "override_set",
    "policy_apply_preset",
    "policy_ensure",
    "policy_update",
    "reclaimed_limit",
    "run_due_distributions",
]
