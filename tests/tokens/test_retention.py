"""Append-only audit and usage events (docs/operations.md, Append-only) and the
retention command."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent
from asksage_admin.lib.periods import period_of
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.ledger import check_ledger
from tokens.models import (
    DailyUsage,
    MonthlyUsage,
    OrgDailyUsage,
    UsageCounter,
    UsageEvent,
)
from tokens.services import metering

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(org, service_key):
    """Usage 40 months ago, 2 months ago and now; an old and a new audit event."""
    fund(org)
    user = UserFactory(organization=org, email="old@acme.example")
    give(user, 1_000_000)
    AIModelFactory(key="gpt")
    now = timezone.now()
    events = [
        {
            "event_id": f"e-{months}",
            "user": user.email,
            "model": "gpt",
            "token_type": "inference",
            "prompt_tokens": 100 + months,
            "completion_tokens": 0,
            "occurred_at": (now - dt.timedelta(days=30 * months)).isoformat(),
        }
        for months in (40, 2, 0)
    ]
    result = metering.usage_record(key=service_key[0], events=events)
    assert result.as_dict()["recorded"] == 3
    AuditEvent.objects.create(
        action=AuditEvent.Action.SIGN_IN,
        actor=user,
        actor_email=user.email,
        time=now - dt.timedelta(days=1200),
    )
    audit.record(action=AuditEvent.Action.SIGN_IN, actor=user, target=user)
    return user


def test_prune_dry_run_counts_and_changes_nothing(history, capsys):
    before = UsageEvent.objects.count()
    call_command("prune_activity", "--older-than-days", "1095", "--dry-run")
    out = capsys.readouterr().out
    assert "Would remove 1 usage events" in out
    assert "Would remove 1 organization daily usage" in out
    assert "Would remove 1 monthly usage" in out
    assert UsageEvent.objects.count() == before
    assert OrgDailyUsage.objects.count() == MonthlyUsage.objects.count() == 3
    pruned = AuditEvent.objects.filter(action=AuditEvent.Action.ACTIVITY_PRUNED)
    assert not pruned.exists()


def test_prune_removes_old_months_keeps_ledger_exact_and_is_audited(history, capsys):
    call_command("prune_activity", "--older-than-days", "1095")
    out = capsys.readouterr().out
    assert "Removed 1 usage events" in out
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == [
        "e-0",
        "e-2",
    ]
    assert DailyUsage.objects.count() == 2
    assert UsageCounter.objects.count() == 2
    # The rollups of the pruned month go with it; the two recent months stay.
    kept = {period_of(timezone.now() - dt.timedelta(days=30 * m)) for m in (2, 0)}
    assert {
        d.replace(day=1) for d in OrgDailyUsage.objects.values_list("day", flat=True)
    } == kept
    assert set(MonthlyUsage.objects.values_list("month", flat=True)) == kept
    assert "Removed 1 organization daily usage" in out
    assert "Removed 1 monthly usage" in out
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACTIVITY_PRUNED)
    assert event.after["usage_events"] == 1
    assert event.after["organization_daily_usage"] == 1
    assert event.after["monthly_usage"] == 1
    assert event.after["audit_events"] == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).count() == 1
    assert check_ledger() == []


def test_prune_keeps_audit_events_behind_allocation_changes(history):
    limit_event = AuditEvent.objects.get(action=AuditEvent.Action.LIMIT_CHANGED)
    call_command("prune_activity", "--older-than-days", "1")
    assert AuditEvent.objects.filter(pk=limit_event.pk).exists()
    assert check_ledger() == []


def test_prune_rejects_non_positive_days():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_activity", "--older-than-days", "0")


def test_update_of_usage_event_refused_by_the_database(history):
    with pytest.raises(DatabaseError), transaction.atomic():
        UsageEvent.objects.filter(event_id="e-0").update(tokens=1)
    assert UsageEvent.objects.get(event_id="e-0").tokens == 100


def test_update_of_audit_event_refused_by_the_database(history):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().update(message="rewritten")
    assert not AuditEvent.objects.filter(message="rewritten").exists()


@pytest.mark.postgres(
    reason="SQLite refuses UPDATE only: Django's SQLite test flush deletes rows",
)
def test_delete_of_audit_and_usage_events_refused_on_postgresql(history):
    with pytest.raises(DatabaseError), transaction.atomic():
        UsageEvent.objects.filter(event_id="e-0").delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).delete()
    assert UsageEvent.objects.filter(event_id="e-0").exists()
