"""Retention (docs/operations.md, Retention: data is kept 3 years): the only path that
deletes audit or usage events, through the append-only triggers' permit (see migration
tokens/0004_append_only_triggers).

Usage is pruned by whole months, with the counters and the rollups (daily,
organization daily, monthly) of those months, so the ledger invariants (counters and
rollups = sums of events) still hold afterwards. Audit events that justify an
allocation change are kept as long as the allocation history itself: every limit
must stay provable as the sum of its changes, each with its audit event.
"""

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent
from asksage_admin.lib.periods import period_of
from tokens.models import (
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    UsageCounter,
    UsageEvent,
)

DEFAULT_RETENTION_DAYS = 1095


def _cutoffs(older_than_days: int, now: dt.datetime) -> tuple[dt.datetime, dt.date]:
    cutoff = now - dt.timedelta(days=older_than_days)
    return cutoff, period_of(cutoff)


def _querysets(cutoff: dt.datetime, month: dt.date) -> dict:
    month_start = dt.datetime.combine(month, dt.time.min, tzinfo=dt.UTC)
    return {
        "usage_events": UsageEvent.objects.filter(occurred_at__lt=month_start),
        "daily_usage": DailyUsage.objects.filter(day__lt=month),
        "organization_daily_usage": OrgDailyUsage.objects.filter(day__lt=month),
        "monthly_usage": MonthlyUsage.objects.filter(month__lt=month),
        "usage_counters": UsageCounter.objects.filter(period__lt=month, held=0),
        "holds": Hold.objects.filter(created_at__lt=cutoff).exclude(
            status=Hold.Status.OPEN
        ),
        "audit_events": AuditEvent.objects.filter(time__lt=cutoff).filter(
            allocation_changes__isnull=True
        ),
    }


def activity_prune(
    *, older_than_days: int = DEFAULT_RETENTION_DAYS, dry_run: bool = False
) -> dict[str, int]:
    """Delete activity older than the retention period; returns the row counts
    removed (or that would be removed). A real run is audited."""
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1")
    now = timezone.now()
    cutoff, month = _cutoffs(older_than_days, now)
    with transaction.atomic():
        querysets = _querysets(cutoff, month)
        if dry_run:
            return {name: qs.count() for name, qs in querysets.items()}
        counts = {}
        with connection.cursor() as cursor:
            cursor.execute(_permit_sql())
            # Events first: they reference holds.
            for name, queryset in querysets.items():
                counts[name] = queryset.delete()[0]
            cursor.execute("DELETE FROM asksage_prune_permit")
        audit.record(
            action=AuditEvent.Action.ACTIVITY_PRUNED,
            after={
                **counts,
                "older_than_days": older_than_days,
                "cutoff": cutoff.isoformat(),
                "usage_before_month": month.isoformat(),
            },
        )
    return counts


def _permit_sql() -> str:
    if connection.vendor == "postgresql":
        return "INSERT INTO asksage_prune_permit (txid) VALUES (txid_current())"
    return "INSERT INTO asksage_prune_permit (txid) VALUES (0)"
