"""The staff site's view-only metering tables: counters, holds, usage events and
the daily and monthly rollups."""

from django.contrib import admin

from tokens.admin.common import ReadOnlyAdmin
from tokens.models import (
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    UsageCounter,
    UsageEvent,
)


@admin.register(UsageCounter)
class UsageCounterAdmin(ReadOnlyAdmin):
    list_display = ["user", "organization", "token_type", "period", "used", "held"]
    list_filter = ["token_type", "period"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "user",
        "organization",
        "model",
        "token_type",
        "tokens",
        "status",
        "created_at",
        "expires_at",
    ]
    list_filter = ["status", "token_type"]
    search_fields = ["user__email", "request_id"]
    list_select_related = ["user", "organization", "model"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "event_id",
        "user",
        "organization",
        "model",
        "token_type",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
    ]
    list_filter = ["token_type"]
    search_fields = ["event_id", "user__email"]
    list_select_related = ["user", "organization", "model"]


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "user",
        "organization",
        "model",
        "token_type",
        "tokens",
        "events",
    ]
    list_filter = ["token_type"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization", "model"]


@admin.register(OrgDailyUsage)
class OrgDailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "organization", "model", "token_type", "tokens", "events"]
    list_filter = ["token_type"]
    search_fields = ["organization__name", "model__key"]
    list_select_related = ["organization", "model"]


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdmin):
    list_display = [
        "month",
        "user",
        "organization",
        "inference_tokens",
        "embedding_tokens",
        "tokens",
        "events",
        "last_day",
    ]
    list_filter = ["month"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]
