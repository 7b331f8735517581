"""Alerts (docs/forecasts.md, Alerts): an organization's alert settings and the
alerts that fired. An alert is written at most once per organization, user (none
for the organization's own), token type, month, kind and threshold: two partial
unique constraints (a NULL user is not equal to another NULL in a plain one), and
every writer inserts with ON CONFLICT DO NOTHING."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from tokens.models.catalog import TokenType

DEFAULT_ORG_THRESHOLDS = [50, 80, 100]
DEFAULT_USER_THRESHOLDS = [80, 100]


def _default_org_thresholds() -> list[int]:
    return list(DEFAULT_ORG_THRESHOLDS)


def _default_user_thresholds() -> list[int]:
    return list(DEFAULT_USER_THRESHOLDS)


class AlertSettings(models.Model):
    """An organization's alert settings; an organization without a row has the
    defaults (every alert on, no webhook)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="alert_settings"
    )
    org_enabled = models.BooleanField(default=True)
    org_thresholds = models.JSONField(
        default=_default_org_thresholds,
        help_text=_("Percent of the pool per type used (1–100)."),
    )
    runout_enabled = models.BooleanField(
        default=True,
        help_text=_("Alert when the pool is projected to run out before month end."),
    )
    user_enabled = models.BooleanField(default=True)
    user_thresholds = models.JSONField(
        default=_default_user_thresholds,
        help_text=_("Percent of a user's limit used (1–100)."),
    )
    webhook_url = models.URLField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "alert settings"

    def __str__(self) -> str:
        return f"alert settings of {self.organization}"


class Alert(models.Model):
    """An alert that fired: what, for whom, and whether it was delivered. Written
    once (unique key), delivered after the commit that wrote it, retried by
    ``send_alerts`` until delivered."""

    class Kind(models.TextChoices):
        ORG_USAGE = "org_usage", _("Organization pool used")
        ORG_RUNOUT = "org_runout", _("Pool projected to run out")
        USER_USAGE = "user_usage", _("User limit used")

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    token_type = models.CharField(max_length=10, choices=TokenType.choices)
    month = models.DateField(help_text=_("First day of the month (UTC)."))
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.PositiveSmallIntegerField(
        default=0, help_text=_("Percent; 0 for a run-out projection.")
    )
    used = models.BigIntegerField(default=0)
    budget = models.BigIntegerField(
        default=0, help_text=_("The pool or the limit when it fired.")
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    recipients = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhook_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "month"], name="alert_org_month_idx"),
            models.Index(
                fields=["created_at"],
                condition=Q(delivered_at__isnull=True),
                name="alert_undelivered_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "token_type", "month", "kind", "threshold"],
                condition=Q(user__isnull=True),
                name="alert_once_per_org",
            ),
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "user",
                    "token_type",
                    "month",
                    "kind",
                    "threshold",
                ],
                condition=Q(user__isnull=False),
                name="alert_once_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.threshold}% · {self.token_type} · {self.month}"
