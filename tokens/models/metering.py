"""Metering (docs/gateway-api.md): the per-user monthly counters, holds, usage
events, and the daily and monthly rollups kept in the same transaction."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from tokens.models.catalog import AIModel, TokenType


class UsageCounter(models.Model):
    """Tokens used and held by one user, for one type, in one month (UTC). The hot
    row of enforcement: authorizations change ``held`` with a conditional update."""

    # No index of their own: a composite index starts with each (the unique key,
    # counter_org_period_idx). Fewer indexes to write on every usage batch.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    period = models.DateField(help_text=_("First day of the month (UTC)."))
    used = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            # Covering: the org's totals for a month (used, held) are read from the
            # index alone, on every panel page.
            models.Index(
                fields=["organization", "period", "token_type"],
                include=["used", "held"],
                name="counter_org_period_idx",
            )
        ]
        constraints = [
            # Per organization: usage is charged to the organization that
            # authorized it, so a user who moves mid-month starts afresh in the new
            # one and each organization's counter holds only its own usage.
            models.UniqueConstraint(
                fields=["organization", "user", "token_type", "period"],
                name="counter_per_organization",
            ),
            models.CheckConstraint(
                condition=Q(used__gte=0) & Q(held__gte=0),
                name="usagecounter_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.token_type} · {self.period:%Y-%m}"


class Hold(models.Model):
    """Tokens reserved by an authorization until the usage that settles it arrives,
    it is released, or it expires."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SETTLED = "settled", _("Settled")
        RELEASED = "released", _("Released")
        EXPIRED = "expired", _("Expired")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    service_key = models.ForeignKey(
        "accounts.ServiceKey", on_delete=models.PROTECT, related_name="+"
    )
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="+")
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    period = models.DateField()
    tokens = models.BigIntegerField()
    request_id = models.CharField(max_length=128)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["user", "token_type", "status", "expires_at"],
                name="hold_user_open_idx",
            ),
            models.Index(fields=["status", "expires_at"], name="hold_expiry_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["service_key", "request_id"],
                name="hold_key_request_unique",
            ),
            models.CheckConstraint(
                condition=Q(tokens__gt=0), name="hold_tokens_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.id} ({self.tokens} {self.status})"


class UsageEvent(models.Model):
    """One model interaction as reported by the gateway; append-only."""

    # Unique per reporting scope (Meta), not across the platform, so one tenant's
    # ids cannot void or probe another's events.
    event_id = models.CharField(max_length=128)
    # No index of their own: a composite index starts with each (usage_org_time_idx,
    # usage_user_idx). Every index is written by every recorded event.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="+")
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    tokens = models.BigIntegerField(help_text=_("Charged platform tokens."))
    input_rate = models.DecimalField(max_digits=10, decimal_places=4)
    output_rate = models.DecimalField(max_digits=10, decimal_places=4)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    hold = models.ForeignKey(
        Hold, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    application = models.CharField(max_length=100, blank=True)
    prompt_excerpt = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    payload_digest = models.CharField(max_length=64)
    org_key = models.BooleanField(
        default=False,
        help_text=_(
            "Reported with a key bound to the organization (its own scope of "
            "event ids), not by the platform gateway."
        ),
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["organization", "-occurred_at", "-id"],
                name="usage_org_time_idx",
            ),
            models.Index(
                fields=["user", "token_type", "occurred_at"], name="usage_user_idx"
            ),
        ]
        constraints = [
            # An event_id is unique within its reporting scope: the organization
            # the event is recorded under, and who reported it (a key bound to
            # that organization, or the platform gateway).
            models.UniqueConstraint(
                fields=["organization", "org_key", "event_id"],
                name="event_id_per_scope",
            ),
            models.CheckConstraint(
                condition=Q(prompt_tokens__gte=0)
                & Q(completion_tokens__gte=0)
                & Q(tokens__gte=0),
                name="usageevent_tokens_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.event_id


class DailyUsage(models.Model):
    """Usage per organization, user, model, type and day (UTC), kept in the same
    transaction as the events, so dashboards never scan raw events."""

    # No index of its own: a composite index starts with it (the unique key,
    # daily_org_day_idx).
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="+")
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    day = models.DateField()
    tokens = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            # Covering: Token Statistics aggregates a range of days from the index
            # alone (index-only scans), without visiting the table.
            models.Index(
                fields=["organization", "day"],
                include=["token_type", "user", "model", "tokens", "events"],
                name="daily_org_day_idx",
            ),
        ]
        constraints = [
            # With the organization: usage stays with the organization it was
            # recorded under, even on the day its user moved to another one.
            models.UniqueConstraint(
                fields=["organization", "user", "model", "token_type", "day"],
                name="dailyusage_org_key_unique",
            ),
            models.CheckConstraint(
                condition=Q(tokens__gte=0) & Q(events__gte=0),
                name="dailyusage_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.model_id} · {self.day}"


# Stripes of the organization-level daily rollup: a usage transaction adds to the
# row of its user's stripe (user id modulo this), so the organization's concurrent
# calls spread over this many rows instead of queueing on one; readers add the
# stripes up. Changing it needs no migration (rows of any stripe add up the same).
ORG_DAILY_STRIPES = 8


class OrgDailyUsage(models.Model):
    """Usage per organization, model, type and day (UTC), in ``ORG_DAILY_STRIPES``
    stripes: ``DailyUsage`` without the user, kept in the same transaction as the
    events. Token Statistics reads its organization-wide figures here (used, the
    daily chart, the monthly trend, usage by model) and the gateway's balance the
    organization's month: a few rows per day (at most the stripes per model and
    type) instead of one per user. Only sums of it mean anything."""

    # No index of its own: the unique key's index starts with it.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="+")
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    day = models.DateField()
    stripe = models.PositiveSmallIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            # Covering: every reader filters an organization's range of days and
            # adds up tokens and events, so the 12-month trend (up to 8 stripes a
            # day per model) is read from the index alone.
            models.Index(
                fields=["organization", "day"],
                include=["token_type", "model", "tokens", "events"],
                name="orgdaily_org_day_idx",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "token_type", "model", "stripe"],
                name="orgdailyusage_striped_key_unique",
            ),
            models.CheckConstraint(
                condition=Q(tokens__gte=0) & Q(events__gte=0),
                name="orgdailyusage_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} · {self.model_id} · {self.day}"


class MonthlyUsage(models.Model):
    """Usage per organization, user and month (UTC): one row with each token type's
    tokens, events and last day with usage that month, and their totals (the last
    day of any type). ``DailyUsage`` without the model and the day, kept in the same
    transaction as the events. Token Statistics reads active and top users of whole
    months here: one row per user and month, so a month's active users are counted
    from an index alone and its top users are the first entries of an index sorted
    by tokens."""

    # No index of its own: the unique key's index starts with it.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    month = models.DateField(help_text=_("First day of the month (UTC)."))
    inference_tokens = models.BigIntegerField(default=0)
    inference_events = models.BigIntegerField(default=0)
    embedding_tokens = models.BigIntegerField(default=0)
    embedding_events = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(
        default=0, help_text=_("Inference and embedding tokens.")
    )
    events = models.BigIntegerField(
        default=0, help_text=_("Inference and embedding events.")
    )
    last_day = models.DateField(
        help_text=_("Last day with usage of any type in the month (UTC).")
    )
    inference_last_day = models.DateField(
        null=True,
        blank=True,
        help_text=_("Last day with inference usage in the month; empty: none."),
    )
    embedding_last_day = models.DateField(
        null=True,
        blank=True,
        help_text=_("Last day with embedding usage in the month; empty: none."),
    )

    class Meta:
        indexes = [
            # Token Statistics: a month's users in the order of their tokens, with
            # what the page reads of them (covering: index-only scans; PostgreSQL
            # only, other databases ignore ``include``).
            models.Index(
                fields=["organization", "month", "-tokens"],
                include=[
                    "user",
                    "events",
                    "last_day",
                    "inference_tokens",
                    "inference_events",
                    "inference_last_day",
                    "embedding_tokens",
                    "embedding_events",
                    "embedding_last_day",
                ],
                name="monthly_org_month_tokens_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user", "month"],
                name="monthlyusage_key_unique",
            ),
            models.CheckConstraint(
                condition=Q(inference_tokens__gte=0)
                & Q(inference_events__gte=0)
                & Q(embedding_tokens__gte=0)
                & Q(embedding_events__gte=0),
                name="monthlyusage_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(tokens=F("inference_tokens") + F("embedding_tokens"))
                & Q(events=F("inference_events") + F("embedding_events")),
                name="monthlyusage_totals",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.month:%Y-%m}"
