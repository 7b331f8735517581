import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import User

YES_NO = [("yes", _("Yes")), ("no", _("No"))]


class UserFilterSet(django_filters.FilterSet):
    """User Management filters (docs/product.md, User Management): search, paid, hide
    banned, type, verified."""

    q = django_filters.CharFilter(
        method="search",
        label=_("Search"),
        widget=forms.TextInput(
            attrs={"placeholder": _("Email or name"), "type": "search"}
        ),
    )
    paid = django_filters.ChoiceFilter(
        choices=YES_NO, method="yes_no", label=_("Paid"), empty_label=_("Any")
    )
    hide_banned = django_filters.BooleanFilter(
        method="hide_banned_users",
        label=_("Hide banned"),
        widget=forms.CheckboxInput,
    )
    role = django_filters.ChoiceFilter(
        choices=User.Role.choices, label=_("Type"), empty_label=_("Any")
    )
    verified = django_filters.ChoiceFilter(
        choices=YES_NO, method="yes_no", label=_("Verified"), empty_label=_("Any")
    )

    class Meta:
        model = User
        fields = ["q", "paid", "hide_banned", "role", "verified"]

    def search(self, queryset, name, value):
        for word in value.split():
            queryset = queryset.filter(
                Q(email__icontains=word)
                | Q(first_name__icontains=word)
                | Q(last_name__icontains=word)
            )
        return queryset

    def yes_no(self, queryset, name, value):
        yes = value == "yes"
        if name == "paid":
            return queryset.filter(is_paid=yes)
        return queryset.filter(email_verified_at__isnull=not yes)

    def hide_banned_users(self, queryset, name, value):
        return queryset.filter(is_banned=False) if value else queryset
