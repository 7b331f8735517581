import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization


class TokenType(models.TextChoices):
    INFERENCE = "inference", _("Inference")
    EMBEDDING = "embedding", _("Embedding")


class AIModel(models.Model):
    """A model the gateway may call, with the rates that turn its raw prompt and
    completion tokens into platform tokens."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    tags = models.CharField(
        max_length=300, blank=True, help_text=_("Comma-separated, e.g. chat,vision.")
    )
    token_type = models.CharField(
        max_length=10, choices=TokenType.choices, default=TokenType.INFERENCE
    )
    input_rate = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    output_rate = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    is_active = models.BooleanField(default=True)
    allowed_for = models.ManyToManyField(
        Organization,
        blank=True,
        related_name="allowed_models",
        help_text=_("Organizations that allowed only some models list them here."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "AI model"
        constraints = [
            models.CheckConstraint(
                condition=Q(input_rate__gte=0) & Q(output_rate__gte=0),
                name="aimodel_rates_non_negative",
                violation_error_message=_("Rates cannot be negative."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Purchase(models.Model):
    """Tokens an organization bought; active from ``starts_on`` until ``expires_on``.
    The monthly pool per type is the sum of the purchases active in that month."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="purchases"
    )
    purchased_on = models.DateField(default=timezone.localdate)
    payer_email = models.EmailField()
    comment = models.TextField(blank=True)
    inference_tokens = models.BigIntegerField(default=0)
    embedding_tokens = models.BigIntegerField(default=0)
    starts_on = models.DateField(default=timezone.localdate)
    expires_on = models.DateField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_on", "-id"]
        indexes = [models.Index(fields=["organization", "starts_on"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(inference_tokens__gte=0) & Q(embedding_tokens__gte=0),
                name="purchase_tokens_non_negative",
                violation_error_message=_("Token amounts cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(expires_on__isnull=True)
                | Q(expires_on__gte=F("starts_on")),
                name="purchase_expires_after_start",
                violation_error_message=_("A purchase cannot expire before it starts."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} · {self.starts_on}"


class Allocation(models.Model):
    """A user's monthly limit for one token type. Changed only through services,
    each change recorded as an ``AllocationChange``."""

    # No index of their own: a composite index starts with each (the unique key,
    # allocation_org_type_idx).
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="allocations",
        db_index=False,
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    limit = models.BigIntegerField(default=0)
    last_auto_increase_at = models.DateTimeField(null=True, blank=True)
    last_auto_increase_tier = models.DecimalField(
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        help_text=_("The usage % tier that fired the last auto-increase."),
    )

    class Meta:
        indexes = [
            # Covering: the organization's allocated total per type (every panel
            # page) is read from the index alone.
            models.Index(
                fields=["organization", "token_type"],
                include=["limit"],
                name="allocation_org_type_idx",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "token_type"],
                name="allocation_user_type_unique",
                violation_error_message=_("The user already has this allocation."),
            ),
            models.CheckConstraint(
                condition=Q(limit__gte=0),
                name="allocation_limit_non_negative",
                violation_error_message=_("A limit cannot be negative."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.token_type}: {self.limit}"


class AllocationChange(models.Model):
    """Append-only history of every limit change: the delta, the new limit, why."""

    class Source(models.TextChoices):
        MANUAL = "manual", _("Manual")
        REQUEST = "request", _("Token request")
        AUTO_INCREASE = "auto_increase", _("Auto-increase")
        RECLAMATION = "reclamation", _("Reclamation")
        DISTRIBUTION = "distribution", _("Distribution")
        ACTIVATION = "activation", _("Activation")
        DEACTIVATION = "deactivation", _("Deactivation")
        REACTIVATION = "reactivation", _("Reactivation")
        BULK = "bulk", _("Bulk action")

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="allocation_changes",
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    delta = models.BigIntegerField()
    new_limit = models.BigIntegerField()
    source = models.CharField(max_length=20, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField(max_length=500, blank=True)
    token_request = models.ForeignKey(
        "TokenRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="allocation_changes",
    )
    distribution_run = models.ForeignKey(
        "DistributionRun",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="allocation_changes",
    )
    audit_event = models.ForeignKey(
        "accounts.AuditEvent",
        on_delete=models.PROTECT,
        related_name="allocation_changes",
        help_text=_("The one audit event of the action that made this change."),
    )
    time = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["organization", "-time"]),
            models.Index(fields=["user", "token_type", "-time"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(new_limit__gte=0),
                name="allocationchange_new_limit_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.token_type} {self.delta:+d}"


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


class DistributionPolicy(models.Model):
    """How an organization's pool is handed out (docs/product.md, Token Distribution):
    floors and ceiling, auto-increase, reclamation and the rebalancing schedule. One per
    organization, created with the Standard preset on activation."""

    class Preset(models.TextChoices):
        CONSERVATIVE = "conservative", _("Conservative")
        STANDARD = "standard", _("Standard")
        AGGRESSIVE = "aggressive", _("Aggressive")
        DYNAMIC = "dynamic", _("Dynamic")
        CUSTOM = "custom", _("Custom")

    class BumpMode(models.TextChoices):
        PERCENT_CURRENT = "percent_current", _("Percent of the current limit")
        FLAT = "flat", _("Flat amount")
        PERCENT_POOL = "percent_pool", _("Percent of the remaining pool")
        TIERS = "tiers", _("Tiers (percent of current per usage tier)")

    class Frequency(models.TextChoices):
        OFF = "off", _("Off")
        DAILY = "daily", _("Daily")
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="distribution_policy"
    )
    preset = models.CharField(
        max_length=20, choices=Preset.choices, default=Preset.STANDARD
    )
    floor_inference = models.BigIntegerField(default=500_000)
    floor_embedding = models.BigIntegerField(default=500_000)
    ceiling = models.BigIntegerField(
        null=True, blank=True, help_text=_("Empty = unlimited.")
    )
    auto_increase_enabled = models.BooleanField(default=True)
    triggers = models.JSONField(
        default=list,
        help_text=_("Usage percentages (50–99.9) at which a limit is raised."),
    )
    cooldown_minutes = models.PositiveIntegerField(default=60)
    bump_mode = models.CharField(
        max_length=20, choices=BumpMode.choices, default=BumpMode.TIERS
    )
    bump_value = models.DecimalField(
        max_digits=15,
        decimal_places=1,
        default=25,
        help_text=_("Percent for the percent modes, tokens for the flat mode."),
    )
    tier_bumps = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Tiers mode: the percent of the current limit for each trigger."),
    )
    bump_cap_at_current = models.BooleanField(
        default=False, help_text=_("A bump is never more than the current limit.")
    )
    reclamation_enabled = models.BooleanField(default=False)
    lookback_days = models.PositiveIntegerField(default=30)
    headroom_percent = models.PositiveIntegerField(default=25)
    schedule = models.CharField(
        max_length=10, choices=Frequency.choices, default=Frequency.OFF
    )
    schedule_hour = models.PositiveSmallIntegerField(
        default=2, help_text=_("Hour of the day, UTC (0–23).")
    )
    schedule_weekday = models.PositiveSmallIntegerField(
        default=0, help_text=_("Weekly runs: 0 = Monday … 6 = Sunday.")
    )
    schedule_day = models.PositiveSmallIntegerField(
        default=1, help_text=_("Monthly runs: day of the month (1–28).")
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "distribution policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(floor_inference__gte=0) & Q(floor_embedding__gte=0),
                name="policy_floors_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(ceiling__isnull=True)
                | (
                    Q(ceiling__gte=F("floor_inference"))
                    & Q(ceiling__gte=F("floor_embedding"))
                ),
                name="policy_ceiling_above_floors",
                violation_error_message=_("The ceiling must be at least the floors."),
            ),
            models.CheckConstraint(
                condition=Q(schedule_hour__lte=23)
                & Q(schedule_weekday__lte=6)
                & Q(schedule_day__gte=1)
                & Q(schedule_day__lte=28),
                name="policy_schedule_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} · {self.get_preset_display()}"

    def floor(self, token_type: str) -> int:
        return (
            self.floor_inference
            if token_type == TokenType.INFERENCE
            else self.floor_embedding
        )


class UserOverride(models.Model):
    """Per-user exceptions to the policy: own floor and/or ceiling (both token
    types), exemptions from auto-increase and reclamation, and why."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="distribution_override",
    )
    floor = models.BigIntegerField(null=True, blank=True)
    ceiling = models.BigIntegerField(null=True, blank=True)
    exempt_auto_increase = models.BooleanField(default=False)
    exempt_reclamation = models.BooleanField(default=False)
    note = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user__email"]
        constraints = [
            models.CheckConstraint(
                condition=Q(floor__isnull=True) | Q(floor__gte=0),
                name="override_floor_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(ceiling__isnull=True)
                | Q(floor__isnull=True)
                | Q(ceiling__gte=F("floor")),
                name="override_ceiling_above_floor",
                violation_error_message=_("The ceiling must be at least the floor."),
            ),
        ]

    def __str__(self) -> str:
        return f"override for {self.user}"


class DistributionRun(models.Model):
    """One distribution run (manual or scheduled): who, when, what changed (its
    AllocationChanges). A scheduled run is unique per organization and due time."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("Manual")
        SCHEDULED = "scheduled", _("Scheduled")

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    due_at = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    distribute_equally = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["organization", "-started_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "due_at"],
                condition=Q(due_at__isnull=False),
                name="distributionrun_once_per_due_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} run {self.started_at:%Y-%m-%d %H:%M}"


class TokenRequest(models.Model):
    """A user's request for more tokens of one type (docs/product.md, Token
    Requests)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        DENIED = "denied", _("Denied")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="token_requests",
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    amount = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    limit_at_request = models.BigIntegerField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING
    )
    approved_amount = models.BigIntegerField(null=True, blank=True)
    admin_note = models.CharField(max_length=500, blank=True)
    # Why the auto-approval rule left a request for an admin (a limit it reached).
    hold_note = models.CharField(max_length=300, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    auto_approved = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status", "-created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "token_type"],
                condition=Q(status="pending"),
                name="tokenrequest_one_pending_per_type",
                violation_error_message=_(
                    "You already have a pending request for this token type."
                ),
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=1), name="tokenrequest_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(approved_amount__isnull=True) | Q(approved_amount__gte=1),
                name="tokenrequest_approved_amount_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.amount} {self.token_type} ({self.status})"


class AutoApprovalRule(models.Model):
    """Requests at or under ``max_amount``, while the org has used less than
    ``max_consumption_percent`` of its pool this month, are approved on submission
    when the pool allows."""

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="auto_approval_rule"
    )
    enabled = models.BooleanField(default=False)
    max_amount = models.BigIntegerField(default=100_000)
    max_consumption_percent = models.DecimalField(
        max_digits=4, decimal_places=1, default=50
    )
    # Limits per user, so that one member cannot drain the pool by filing request
    # after request: tokens auto-approved per user and token type in a calendar
    # month (UTC), and auto-approvals per user (any type) in any 24 hours.
    max_per_user_month = models.BigIntegerField(default=1_000_000)
    max_approvals_per_day = models.PositiveIntegerField(default=3)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_amount__gte=1), name="autoapproval_max_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_consumption_percent__gte=0)
                & Q(max_consumption_percent__lte=100),
                name="autoapproval_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(max_per_user_month__gte=1),
                name="autoapproval_month_limit_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_approvals_per_day__gte=1),
                name="autoapproval_daily_count_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"auto-approval for {self.organization}"
