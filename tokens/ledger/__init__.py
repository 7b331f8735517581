"""The ledger check: the invariants of docs/architecture.md (Invariants and
check_ledger), verified against the database.

``check_ledger()`` returns one human-readable line per violation (an empty list means
the ledger is consistent); ``manage.py check_ledger`` prints them.

Every check is set-based: the database groups and compares (GROUP BY, UNION ALL) and
returns only the rows that break an invariant, so the cost is a few scans of the
usage table whatever its size, never a Python loop over events. Two tables are
compared with ``_differences``: both sides become grouped subqueries built with the
ORM (so the backend-specific SQL, such as the UTC month of ``occurred_at``, is
Django's), joined by a UNION ALL + GROUP BY that works on SQLite and PostgreSQL alike.
At most ``MAX_LISTED`` violations are listed per check, then a line says more exist.

What each invariant means here:

1. For every organization and type, the current month's allocated (sum of limits)
   ≤ the pool (sum of the purchases active this month).
2. Every ``Allocation.limit`` = the sum of its ``AllocationChange.delta``s made in
   its organization, and the changes of a user in any other organization add up to
   0 (a user who left had their tokens returned; changes without an allocation
   adding up to anything else are a violation).
3. Every ``UsageCounter.used`` = the sum of ``UsageEvent.tokens`` of that
   organization, user and type in that UTC month (a counter is per organization:
   usage is charged to the organization that authorized it, so a user who moved has
   one in each); a counter without events has used 0; events without a counter are
   a violation.
4. Every ``UsageCounter.held`` = the sum of the tokens of that organization's holds
   of that user, type and period whose status is ``open``. A hold past
   ``expires_at`` but still ``open`` is pending expiry (lazily by an authorization
   it stands in the way of, or by ``expire_holds``), not a violation: its tokens
   are still counted as held, which is what the counter says until it is expired.
5. ``DailyUsage`` tokens and events = the sums of ``UsageEvent`` per organization
   (the one the event is recorded under), user, model, type and UTC day, in both
   directions (a rollup without events, events without a rollup).
5b. ``OrgDailyUsage`` tokens and events = the sums of ``DailyUsage`` per organization,
   model, type and day, in both directions.
5c. ``MonthlyUsage`` (a row per organization, user and month) = ``DailyUsage``
   grouped per organization, user and month: each type's tokens and events = the
   sums of that type's rows and its last day = their latest day (none without
   rows of that type), the totals = the sums of all rows and ``last_day`` = their
   latest day, in both directions. (5b and 5c compare with ``DailyUsage``, a few
   times smaller than the events; with 5 they tie the coarser rollups to the
   events.)
6. An ``event_id`` appears once in its scope (organization, and whether a key bound
   to it or the platform gateway reported it; the unique constraint guarantees it,
   checked anyway) and a (service key, request_id) opens at most one hold.
7. Not checkable after the fact (usage without a hold may legitimately pass the
   limit); only its precondition is checked: used ≥ 0 and held ≥ 0.
8. Append-only: database triggers (migration tokens/0004_append_only_triggers;
   docs/operations.md, Append-only) refuse changes to audit and usage events, so
   there is nothing to check here.
9. Every ``AllocationChange`` has its audit event, recorded for the same organization.
10. No limit is negative. A paid, unbanned user of an active organization whose limit
    is below ``MIN_USER_TOKENS`` is a violation when the latest change of that limit
    was made on the platform's own authority: activation, distribution or
    reclamation, which must respect the minimum. Not violations: an explicit admin
    action (manual, bulk, request: set lower on purpose, audited); the paid-status
    rules (docs/product.md, Tokens: pool, limits and minimum; deactivation sets 1,000;
    a reactivation the pool cannot cover grants what is left and its audit event says
    so); auto-increase (it only raises a limit an admin set); and a limit never set (no
    change yet: not allocated).

The checks live in one module per subdomain: ``pool`` (1, 2, 9, 10), ``metering``
(3, 4, 6, 7) and ``rollups`` (5, 5b, 5c); ``common`` holds what they share.
"""

from accounts.models import Organization, User
from tokens.ledger.common import MAX_LISTED
from tokens.ledger.metering import (
    _check_held,
    _check_non_negative,
    _check_unique,
    _check_used,
)
from tokens.ledger.pool import (
    _check_audited,
    _check_limits_match_changes,
    _check_minimum,
    _check_pools,
)
from tokens.ledger.rollups import _check_daily, _check_monthly, _check_org_daily
from tokens.models import UsageEvent

__all__ = ["CHECKS", "MAX_LISTED", "check_ledger", "ledger_scope"]

CHECKS = [
    _check_pools,
    _check_limits_match_changes,
    _check_used,
    _check_held,
    _check_daily,
    _check_org_daily,
    _check_monthly,
    _check_unique,
    _check_non_negative,
    _check_audited,
    _check_minimum,
]


def check_ledger(*, organization: Organization | None = None) -> list[str]:
    """One line per violation of the invariants (all organizations, or one); [] = OK."""
    violations: list[str] = []
    for check in CHECKS:
        violations += check(organization)
    return violations


def ledger_scope(*, organization: Organization | None = None) -> dict[str, int]:
    """What a check covered: organizations, their users and usage events."""
    orgs = Organization.objects.all()
    users = User.objects.filter(organization__isnull=False)
    events = UsageEvent.objects.all()
    if organization is not None:
        orgs = orgs.filter(pk=organization.pk)
        users = users.filter(organization=organization)
        events = events.filter(organization=organization)
    return {
        "organizations": orgs.count(),
        "users": users.count(),
        "events": events.count(),
    }
