"""The staff site's purchases (through ``purchase_record``) and the view-only
allocations and allocation changes."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy

from asksage_admin.lib.forms import TokenAmountField
from tokens.admin.common import ReadOnlyAdmin, tokens_column
from tokens.models import (
    Allocation,
    AllocationChange,
    Purchase,
)
from tokens.services import (
    purchase_record,
)
from tokens.services.pool import PURCHASE_COMMENT_MAX, purchase_check


class PurchaseAddForm(forms.ModelForm):
    """Adding a purchase: the service's own checks (``purchase_check``: lots, dates,
    comment) show their messages on the form; ``PurchaseAdmin.save_model`` then
    records it through ``purchase_record``, which runs the same checks."""

    # The one number input convention (asksage_admin/lib/forms.py): "2,000,000".
    inference_tokens = TokenAmountField(
        label=gettext_lazy("Inference tokens"), initial=0
    )
    embedding_tokens = TokenAmountField(
        label=gettext_lazy("Embedding tokens"), initial=0
    )

    class Meta:
        model = Purchase
        fields = [
            "organization",
            "payer_email",
            "inference_tokens",
            "embedding_tokens",
            "purchased_on",
            "starts_on",
            "expires_on",
            "comment",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            purchase_check(**cleaned)
        except ValidationError as error:
            self.add_error(None, error)
        return cleaned


@admin.register(Purchase)
class PurchaseAdmin(admin.ModelAdmin):
    """Purchases are recorded once and never deleted; afterwards only the comment
    can change."""

    # The comment is a TextField: the form gives it the service's maximum.
    formfield_overrides = {models.TextField: {"max_length": PURCHASE_COMMENT_MAX}}

    list_display = [
        "organization",
        "starts_on",
        "expires_on",
        "inference",
        "embedding",
        "payer_email",
        "purchased_on",
        "recorded_by",
    ]
    list_filter = ["starts_on"]
    search_fields = ["organization__name", "payer_email", "comment"]
    list_select_related = ["organization", "recorded_by"]
    autocomplete_fields = ["organization"]
    date_hierarchy = "starts_on"
    inference = tokens_column("inference_tokens", gettext_lazy("Inference tokens"))
    embedding = tokens_column("embedding_tokens", gettext_lazy("Embedding tokens"))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PurchaseAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return PurchaseAddForm.Meta.fields
        return [*PurchaseAddForm.Meta.fields, "recorded_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f for f in self.get_fields(request, obj) if f != "comment"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["comment"])
            return
        data = {f: form.cleaned_data[f] for f in PurchaseAddForm.Meta.fields}
        purchase = purchase_record(actor=request.user, **data)
        obj.pk = purchase.pk
        obj.recorded_by = purchase.recorded_by
        obj.created_at = purchase.created_at

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    list_display = [
        "user",
        "organization",
        "token_type",
        "limit",
        "last_auto_increase_at",
    ]
    list_filter = ["token_type"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(AllocationChange)
class AllocationChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "time",
        "user",
        "organization",
        "token_type",
        "delta",
        "new_limit",
        "source",
        "actor",
    ]
    list_filter = ["source", "token_type"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization", "actor"]
