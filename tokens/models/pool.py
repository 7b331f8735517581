"""The pool (docs/product.md, Tokens: pool, limits and minimum): purchases, each
user's limit per type, and every change of a limit."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from tokens.models.catalog import TokenType


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
