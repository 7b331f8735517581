"""Token Requests (docs/product.md, Token Requests): a user's request for more
tokens and the organization's auto-approval rule."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from tokens.models.catalog import TokenType


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
