"""The product's one lock order, and the helpers that take each lock.

Every transaction that locks more than one row takes its locks in this order,
each step in the mode named (the weakest that serializes what it protects):

0. The action's own row, when it is none of the below: a token request or an
   enterprise account request being decided, a service key being revoked, an
   auto-approval rule, a TOTP device; or a scheduled run's advisory lock. ``FOR
   NO KEY UPDATE`` (or the advisory lock); at most one per transaction.
1. Organizations, ascending id, ``FOR NO KEY UPDATE`` (``lock_organization``):
   serializes the pool checks of one organization. Not ``FOR UPDATE``: that mode
   also blocks the ``FOR KEY SHARE`` lock every insert of a row referencing the
   organization takes for its foreign-key check (usage events, holds, counters,
   rollups, audit events), so one auto-increase stalled every usage batch of the
   organization at its commit while holding rows they needed (deadlocks).
2. Users, ascending id, ``FOR NO KEY UPDATE`` (``lock_users``): their status
   (paid, banned, membership) and a requester's submissions.
3. The organization's settings and the users' allocation rows: distribution
   policy, overrides, then allocations by user id (``lock_allocations``), ``FOR
   NO KEY UPDATE``.
4. Holds, ascending id, ``FOR NO KEY UPDATE`` (``lock_holds``): settling,
   releasing and expiring them.
5. Usage counters, in the order of their unique key: the upsert and the UPDATEs
   of ``held`` send their rows sorted, and a row is locked when it is written.
6. Rollups, each table in the order of its unique key: daily usage, monthly
   usage, then organization daily usage (written by every batch of the
   organization, so last, to be held only until the commit).
7. Alerts fired by a usage batch (``tokens/services/alerts/detect.py``): an
   INSERT … ON CONFLICT DO NOTHING after the rollups, rare (once per threshold
   and month); its unique index entry is the batch's last lock.

No lock in the product is ``FOR UPDATE``: no transaction changes a key that a
foreign key references, and ``FOR NO KEY UPDATE`` lets the ``FOR KEY SHARE``
checks of concurrent inserts through (``tests/test_lock_modes.py`` keeps it so).
New rows (usage events, holds, audit events, allocation changes) are inserted at
any point: nobody else can lock a row before it is committed.

When a transaction discovers that it needs a lock of an earlier step than one it
already holds, it does not take it out of order: it rolls back and starts again,
taking that lock first (``LockFirst``). Two places do this, both rare:

- a usage batch that finds an auto-increase due (step 1 and 3 needed after 4-5):
  it runs again with the organization and the allocations locked first;
- an authorization that does not fit (its conditional UPDATE may have left the
  counter locked, step 5, and lazy expiry locks holds, step 4): it runs again
  expiring the user's due holds first.

Proved by ``tests/tokens/test_lock_order.py`` (PostgreSQL, real threads).
"""

from collections.abc import Iterable

from accounts.models import Organization, User
from tokens.models import Allocation


class LockFirst(Exception):
    """Raised inside a transaction that needs a lock of an earlier step than one it
    holds: the caller rolls back and runs again, taking ``organizations`` (and
    whatever else its own ``what`` names) first."""

    def __init__(self, *, organizations: Iterable[int] = (), what: str = ""):
        super().__init__(what or "lock first")
        self.organizations = set(organizations)
        self.what = what


def lock_organization(organization_id: int) -> Organization:
    """Step 1: one organization row, ``FOR NO KEY UPDATE``."""
    return Organization.objects.select_for_update(no_key=True).get(pk=organization_id)


def lock_organizations(organization_ids: Iterable[int]) -> list[Organization]:
    """Step 1: several organization rows, ascending id, ``FOR NO KEY UPDATE``."""
    return list(
        Organization.objects.select_for_update(no_key=True)
        .filter(pk__in=sorted(set(organization_ids)))
        .order_by("pk")
    )


def lock_users(queryset) -> list[User]:
    """Step 2: these users' rows, ascending id, ``FOR NO KEY UPDATE``."""
    return list(queryset.select_for_update(no_key=True).order_by("pk"))


def lock_allocations(user_ids: Iterable[int]) -> list[Allocation]:
    """Step 3: these users' allocation rows, by user id, ``FOR NO KEY UPDATE``."""
    return list(
        Allocation.objects.select_for_update(no_key=True)
        .filter(user_id__in=sorted(set(user_ids)))
        .order_by("user_id", "id")
    )


def lock_holds(queryset):
    """Step 4: these holds, ascending id, ``FOR NO KEY UPDATE`` (a queryset)."""
    return queryset.select_for_update(no_key=True).order_by("id")
