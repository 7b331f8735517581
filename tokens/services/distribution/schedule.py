"""The rebalancing schedule (docs/product.md, Token Distribution): due times and the
scheduled runs, once per organization and due time."""

import datetime as dt
import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Organization
from asksage_admin.lib.periods import next_period, previous_period
from tokens.models import DistributionPolicy, DistributionRun
from tokens.services.distribution._common import Frequency
from tokens.services.distribution.policy import _policy_for_read
from tokens.services.distribution.runs import distribution_run

logger = logging.getLogger(__name__)

# Namespace of the advisory locks of scheduled runs (the other key is the org id).
_ADVISORY_NAMESPACE = 0x64697374  # "dist"


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def _due_on_or_before(policy: DistributionPolicy, moment: dt.datetime) -> dt.datetime:
    """The latest due time ≤ ``moment`` (the schedule is not off)."""
    moment = moment.astimezone(dt.UTC)
    day, hour = moment.date(), policy.schedule_hour
    if policy.schedule == Frequency.DAILY:
        due = _at(day, hour)
        return due if due <= moment else due - dt.timedelta(days=1)
    if policy.schedule == Frequency.WEEKLY:
        due = _at(
            day - dt.timedelta(days=(day.weekday() - policy.schedule_weekday) % 7),
            hour,
        )
        return due if due <= moment else due - dt.timedelta(days=7)
    due = _at(day.replace(day=policy.schedule_day), hour)
    if due <= moment:
        return due
    return _at(previous_period(day).replace(day=policy.schedule_day), hour)


def last_due_at(policy: DistributionPolicy, *, now: dt.datetime) -> dt.datetime | None:
    """The most recent due time at or before ``now`` (UTC), None when off."""
    if policy.schedule == Frequency.OFF:
        return None
    return _due_on_or_before(policy, now)


def next_run_at(
    policy: DistributionPolicy, *, after: dt.datetime
) -> dt.datetime | None:
    """The first due time strictly after ``after`` (UTC), None when off."""
    if policy.schedule == Frequency.OFF:
        return None
    latest = _due_on_or_before(policy, after)
    if policy.schedule == Frequency.DAILY:
        return latest + dt.timedelta(days=1)
    if policy.schedule == Frequency.WEEKLY:
        return latest + dt.timedelta(days=7)
    return _at(next_period(latest.date()).replace(day=policy.schedule_day), latest.hour)


def _try_advisory_lock(organization_id: int) -> bool:
    """A transaction-scoped PostgreSQL advisory lock; always granted on SQLite,
    which serializes writers anyway."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)",
            [_ADVISORY_NAMESPACE, organization_id],
        )
        return bool(cursor.fetchone()[0])


def _run_if_due(policy: DistributionPolicy, now: dt.datetime, dry_run: bool) -> str:
    organization = policy.organization
    if not organization.is_active:
        return "skipped: organization not active"
    due = last_due_at(policy, now=now)
    if due is None:
        return "skipped: schedule off"
    if organization.activated_at is not None and due < organization.activated_at:
        upcoming = next_run_at(policy, after=now)
        return f"skipped: not due yet (next {upcoming:%Y-%m-%d %H:%M} UTC)"
    already = f"skipped: already ran for {due:%Y-%m-%d %H:%M} UTC"
    with transaction.atomic():
        if not dry_run and not _try_advisory_lock(organization.pk):
            return "skipped: another copy is running"
        if DistributionRun.objects.filter(
            organization=organization, due_at=due
        ).exists():
            return already
        if dry_run:
            return "would run"
        try:
            distribution_run(
                actor=None,
                organization=organization,
                trigger=DistributionRun.Trigger.SCHEDULED,
                due_at=due,
            )
        except IntegrityError:
            # Another copy recorded this due time first (unique organization, due).
            return already
    return "ran"


def run_due_distributions(
    *, now: dt.datetime | None = None, org_id: int | None = None, dry_run: bool = False
) -> list[tuple[Organization, str]]:
    """Run every active organization whose scheduled run is due (the latest due
    time at or before ``now``, after the organization's activation, not yet run),
    exactly once per due time: an advisory lock per organization and the unique
    (organization, due time) of DistributionRun. One transaction per organization.
    Returns (organization, "ran" | "would run" | "skipped: …") for each
    organization considered (all scheduled ones, or ``org_id``)."""
    now = now or timezone.now()
    if org_id is not None:
        organization = Organization.objects.filter(pk=org_id).first()
        if organization is None:
            return []
        policies = [_policy_for_read(organization)]
    else:
        policies = list(
            DistributionPolicy.objects.filter(
                organization__status=Organization.Status.ACTIVE
            )
            .exclude(schedule=Frequency.OFF)
            .select_related("organization")
            .order_by("organization_id")
        )
    results = []
    for policy in policies:
        try:
            status = _run_if_due(policy, now, dry_run)
        except ValidationError as error:
            status = "skipped: " + " ".join(error.messages)
        except Exception as error:
            # One organization's failure must not stop the others' runs.
            logger.exception(
                "Scheduled distribution of organization %s failed",
                policy.organization_id,
            )
            status = f"failed: {type(error).__name__}: {error}"
        results.append((policy.organization, status))
    return results
