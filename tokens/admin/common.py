"""What the staff site's admins share: a service's error as one line, a token amount
column, and the view-only admin of the ledger tables."""

from django.contrib import admin
from django.core.exceptions import ValidationError


def error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def tokens_column(field: str, label: str):
    """A list column showing a token amount with thousands separators."""

    @admin.display(description=label, ordering=field)
    def column(self, obj):
        return f"{getattr(obj, field):,}"

    return column


# --- the ledger, view-only ----------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger rows are written only by services; staff can look, not touch."""

    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
