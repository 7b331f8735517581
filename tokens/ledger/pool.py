"""The pool's invariants: 1 (allocated ≤ pool), 2 (limit = sum of changes), 9
(allocation changes audited) and 10 (limits and the platform minimum)."""

from django.conf import settings
from django.db.models import (
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
)

from accounts.models import Organization
from asksage_admin.lib.periods import label, last_day, period_of
from tokens.ledger.common import (
    MAX_LISTED,
    _differences,
    _emails,
    _line,
    _listed,
    _n,
    _scoped,
)
from tokens.models import (
    Allocation,
    AllocationChange,
    Purchase,
)

# The sources that set a limit on the platform's own authority (invariant 10).
AUTOMATIC_SOURCES = [
    AllocationChange.Source.ACTIVATION.value,
    AllocationChange.Source.DISTRIBUTION.value,
    AllocationChange.Source.RECLAMATION.value,
]


def _check_pools(organization: Organization | None) -> list[str]:
    period = period_of()
    purchases = _scoped(
        Purchase.objects.filter(starts_on__lte=last_day(period)).filter(
            Q(expires_on__isnull=True) | Q(expires_on__gte=period)
        ),
        organization,
    )
    pools = {
        row["organization_id"]: row
        for row in purchases.order_by()
        .values("organization_id")
        .annotate(inference=Sum("inference_tokens"), embedding=Sum("embedding_tokens"))
    }
    allocated = (
        _scoped(Allocation.objects.all(), organization)
        .order_by()
        .values("organization_id", "token_type")
        .annotate(total=Sum("limit"))
        .filter(total__gt=0)
        .order_by("organization_id", "token_type")
    )
    over = [
        (row, (pools.get(row["organization_id"]) or {}).get(row["token_type"]) or 0)
        for row in allocated
    ]
    over = [(row, pool) for row, pool in over if row["total"] > pool]
    names = dict(
        Organization.objects.filter(
            pk__in={row["organization_id"] for row, _pool in over}
        ).values_list("id", "name")
    )
    return _listed(
        1,
        [
            _line(
                1,
                f"{names.get(row['organization_id'])} (id {row['organization_id']}), "
                f"{row['token_type']} in {label(period)}: allocated {_n(row['total'])} "
                f"exceeds the pool of {_n(pool)}.",
            )
            for row, pool in over
        ],
    )


# --- 2. limit = sum of changes -----------------------------------------------------


def _check_limits_match_changes(organization: Organization | None) -> list[str]:
    # Per organization: a user who moved has changes in the organization they
    # left adding up to 0 (removal returned their tokens) and their allocation
    # row in the one they are in, so only a non-zero sum needs the allocation.
    keys = ["k_org", "k_user", "k_type"]
    allocations = _scoped(Allocation.objects.all(), organization).values(
        k_org=F("organization_id"),
        k_user=F("user_id"),
        k_type=F("token_type"),
        v_0=F("limit"),
    )
    changes = (
        _scoped(AllocationChange.objects.all(), organization)
        .order_by()
        .values(k_org=F("organization_id"), k_user=F("user_id"), k_type=F("token_type"))
        .annotate(v_0=Sum("delta"))
    )
    rows = _differences(allocations, changes, keys, ["v_0"])
    emails = _emails(r[1] for r in rows)
    lines = []
    for _org, user_id, token_type, limit, total, has_row, _has_changes in rows:
        who = f"{emails.get(user_id, user_id)}, {token_type}"
        if not has_row:
            detail = f"changes add up to {_n(total)} but there is no allocation."
        else:
            detail = f"limit {_n(limit)} but its changes add up to {_n(total)}."
        lines.append(_line(2, f"{who}: {detail}"))
    return _listed(2, lines)


# --- 3 and 4. counters = events, holds ---------------------------------------------


def _check_audited(organization: Organization | None) -> list[str]:
    rows = list(
        _scoped(AllocationChange.objects.all(), organization)
        .filter(
            Q(audit_event__isnull=True)
            | Q(audit_event__organization__isnull=True)
            | ~Q(audit_event__organization=F("organization"))
        )
        .order_by("id")
        .values(
            "id",
            "user__email",
            "token_type",
            "organization_id",
            "audit_event_id",
            "audit_event__organization_id",
        )[: MAX_LISTED + 1]
    )
    lines = []
    for r in rows:
        who = f"allocation change {r['id']} ({r['user__email']}, {r['token_type']})"
        if r["audit_event_id"] is None:
            detail = "has no audit event."
        else:
            detail = (
                f"is linked to audit event {r['audit_event_id']} of organization "
                f"{r['audit_event__organization_id']}, not {r['organization_id']}."
            )
        lines.append(_line(9, f"{who} {detail}"))
    return _listed(9, lines)


# --- 10. limits and the platform minimum -------------------------------------------


def _check_minimum(organization: Organization | None) -> list[str]:
    minimum = settings.MIN_USER_TOKENS
    negative = list(
        _scoped(Allocation.objects.filter(limit__lt=0), organization)
        .order_by("user_id", "token_type")
        .values("user__email", "token_type", "limit")[: MAX_LISTED + 1]
    )
    lines = [
        _line(
            10,
            f"{r['user__email']}, {r['token_type']}: limit {_n(r['limit'])} is "
            "negative.",
        )
        for r in negative
    ]
    latest_source = Subquery(
        AllocationChange.objects.filter(
            user_id=OuterRef("user_id"), token_type=OuterRef("token_type")
        )
        .order_by("-time", "-id")
        .values("source")[:1]
    )
    low = (
        _scoped(Allocation.objects.all(), organization)
        .filter(
            limit__gte=0,
            limit__lt=minimum,
            user__is_paid=True,
            user__is_banned=False,
            organization__status=Organization.Status.ACTIVE,
        )
        .annotate(latest_source=latest_source)
        .filter(latest_source__in=AUTOMATIC_SOURCES)
        .order_by("user_id", "token_type")
        .values("user__email", "token_type", "limit", "latest_source")[: MAX_LISTED + 1]
    )
    lines += [
        _line(
            10,
            f"{r['user__email']}, {r['token_type']}: limit {_n(r['limit'])} is "
            f"below the platform minimum of {_n(minimum)} for a paid, active user, "
            f"set by {r['latest_source']} (not by an admin on purpose).",
        )
        for r in low
    ]
    return _listed(10, lines)
