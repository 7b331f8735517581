"""The staff site's AI models: the gateway's catalog and its rates."""

from django.contrib import admin

from tokens.models import (
    AIModel,
)


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "name",
        "provider",
        "tags",
        "token_type",
        "input_rate",
        "output_rate",
        "is_active",
    ]
    list_filter = ["is_active", "token_type", "provider"]
    search_fields = ["key", "name", "provider", "tags"]
    filter_horizontal = ["allowed_for"]
