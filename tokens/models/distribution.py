"""Token Distribution (docs/product.md, Token Distribution): the policy, per-user
overrides and runs."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from tokens.models.catalog import TokenType


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
