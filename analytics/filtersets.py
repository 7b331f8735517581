import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent
from tokens.models import AIModel, TokenType, UsageEvent

DATE = forms.DateInput(attrs={"type": "date"})


class UsageEventFilterSet(django_filters.FilterSet):
    """User activity filters (docs/product.md, Activity Logs): user, model, type, date
    range (UTC days)."""

    user = django_filters.CharFilter(
        field_name="user__email",
        lookup_expr="iexact",
        label=_("User email"),
        widget=forms.TextInput(attrs={"placeholder": _("user@example.com")}),
    )
    model = django_filters.CharFilter(
        method="model_key_or_name",
        label=_("Model"),
        widget=forms.TextInput(attrs={"placeholder": _("key or name, e.g. GPT-4o")}),
    )
    token_type = django_filters.ChoiceFilter(
        choices=TokenType.choices, label=_("Type"), empty_label=_("Any")
    )
    date_from = django_filters.DateFilter(
        field_name="occurred_at", lookup_expr="date__gte", label=_("From"), widget=DATE
    )
    date_to = django_filters.DateFilter(
        field_name="occurred_at", lookup_expr="date__lte", label=_("To"), widget=DATE
    )

    class Meta:
        model = UsageEvent
        fields = ["user", "model", "token_type", "date_from", "date_to"]

    def model_key_or_name(self, queryset, name, value):
        """The model's key or display name, in any case ("GPT-4o" finds gpt-4o):
        the few models are looked up first, so the events keep their index."""
        text = value.strip()
        ids = AIModel.objects.filter(Q(key__iexact=text) | Q(name__iexact=text))
        return queryset.filter(model_id__in=list(ids.values_list("pk", flat=True)))


class AuditEventFilterSet(django_filters.FilterSet):
    """Audit trail filters (docs/product.md, Activity Logs): actor, action, target user,
    date range."""

    actor = django_filters.CharFilter(
        field_name="actor_email",
        lookup_expr="iexact",
        label=_("Actor email"),
        widget=forms.TextInput(attrs={"placeholder": _("admin@example.com")}),
    )
    action = django_filters.ChoiceFilter(
        choices=AuditEvent.Action.choices, label=_("Action"), empty_label=_("Any")
    )
    target = django_filters.CharFilter(
        method="target_user",
        label=_("Target user email"),
        widget=forms.TextInput(attrs={"placeholder": _("user@example.com")}),
    )
    date_from = django_filters.DateFilter(
        field_name="time", lookup_expr="date__gte", label=_("From"), widget=DATE
    )
    date_to = django_filters.DateFilter(
        field_name="time", lookup_expr="date__lte", label=_("To"), widget=DATE
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "date_from", "date_to"]

    def target_user(self, queryset, name, value):
        from accounts.models import User

        ids = User.objects.filter(email__iexact=value.strip()).values_list(
            "pk", flat=True
        )
        return queryset.filter(
            target_type="accounts.user", target_id__in=[str(pk) for pk in ids]
        )
