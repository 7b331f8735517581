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

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="allocations"
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    limit = models.BigIntegerField(default=0)
    last_auto_increase_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "token_type"])]
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

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    period = models.DateField(help_text=_("First day of the month (UTC)."))
    used = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "period", "token_type"])]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "token_type", "period"],
                name="usagecounter_user_type_period_unique",
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

    event_id = models.CharField(max_length=128, unique=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
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

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+"
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
            models.Index(fields=["organization", "day"], name="daily_org_day_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "model", "token_type", "day"],
                name="dailyusage_key_unique",
            ),
            models.CheckConstraint(
                condition=Q(tokens__gte=0) & Q(events__gte=0),
                name="dailyusage_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.model_id} · {self.day}"
