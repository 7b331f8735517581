"""The User Management table (docs/product.md, User Management)."""

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma
from django.db.models import F
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from asksage_admin.lib.display import breakable_email, user_status_badges
from tokens.tables.columns import (
    NUM,
    PAGE_SIZES,
    KnownSortTable,
    NumberColumn,
    YesNoColumn,
)


def _nulls_low(queryset, field: str, descending: bool):
    column = F(field)
    order = column.desc(nulls_last=True) if descending else column.asc(nulls_first=True)
    return queryset.order_by(order, "email")


# The columns an admin may show or hide, in the table's order, and those shown until
# they choose (docs/product.md, User Management). User, Status and the row menu stay.
CHOOSABLE_USER_COLUMNS = (
    "id",
    "name",
    "email",
    "has_mfa",
    "role",
    "is_paid",
    "is_banned",
    "email_verified_at",
    "max_inference",
    "max_embedding",
    "monthly_inference",
    "prev_month_inference",
    "total_usage",
    "likely_percent",
    "last_active_at",
)
DEFAULT_USER_COLUMNS = (
    "max_inference",
    "max_embedding",
    "monthly_inference",
    "likely_percent",
    "last_active_at",
)


class UserTable(KnownSortTable):
    """User Management (docs/product.md, User Management): every column sortable on the
    server."""

    select = tables.CheckBoxColumn(
        accessor="pk",
        orderable=False,
        attrs={
            "th__input": {
                "aria-label": _("Select all on this page"),
                "data-select-all": "pk",
            },
            "td__input": {"name": "pk", "form": "bulk-form", "aria-label": _("Select")},
        },
    )
    # The identity column stays in view while the figures scroll (css/tables.css).
    user = tables.Column(
        verbose_name=_("User"),
        accessor="email",
        order_by=("email",),
        attrs={"th": {"class": "col-identity"}, "td": {"class": "col-identity"}},
    )
    # The yes/no flags, folded into one cell of badges.
    status = tables.Column(
        verbose_name=_("Status"),
        accessor="pk",
        empty_values=(),
        order_by=("is_banned", "-is_paid", "email_verified_at", "email"),
        attrs={"td": {"class": "col-status"}},
    )
    id = tables.Column(verbose_name=_("ID"), attrs=NUM)
    name = tables.Column(
        verbose_name=_("Name"),
        order_by=("first_name", "last_name", "email"),
        empty_values=(),
    )
    email = tables.Column(verbose_name=_("Email"), linkify=False)
    # Ties sort by email, so the order (and so every page) is stable.
    has_mfa = YesNoColumn(verbose_name=_("MFA"), order_by=("has_mfa", "email"))
    role = tables.Column(verbose_name=_("Type"), order_by=("role", "email"))
    is_paid = YesNoColumn(
        verbose_name=_("Paid"), no_class="badge-warning", order_by=("is_paid", "email")
    )
    is_banned = YesNoColumn(
        verbose_name=_("Banned"),
        yes_class="badge-danger",
        no_class="badge-muted",
        order_by=("is_banned", "email"),
    )
    email_verified_at = YesNoColumn(
        verbose_name=_("Verified"), no_class="badge-warning"
    )
    max_inference = NumberColumn(
        verbose_name=_("Max Inference Tokens"), order_by=("max_inference", "email")
    )
    max_embedding = NumberColumn(
        verbose_name=_("Max Embedding Tokens"), order_by=("max_embedding", "email")
    )
    monthly_inference = NumberColumn(
        verbose_name=_("Monthly Inference"), order_by=("monthly_inference", "email")
    )
    prev_month_inference = NumberColumn(
        verbose_name=_("Prev Month Inference"),
        order_by=("prev_month_inference", "email"),
    )
    total_usage = NumberColumn(
        verbose_name=_("Total Usage"), order_by=("total_usage", "email")
    )
    last_active_at = tables.DateColumn(
        accessor="last_active",
        verbose_name=_("Last active"),
        format="DATE_FORMAT",
        default="—",
        attrs={
            "th": {
                "class": "col-wide",
                "title": _(
                    "The later of the last day with usage (through the gateway) and "
                    "the last sign-in to this console, in UTC."
                ),
            },
            "td": {"class": "col-wide nowrap"},
        },
    )
    # docs/forecasts.md: month-end projection in % of the limit (the higher type).
    likely_percent = tables.Column(
        verbose_name=_("Likely to hit the limit"),
        order_by=("likely_percent", "email"),
        attrs=NUM,
    )
    actions = tables.Column(
        verbose_name=_("Actions"),
        accessor="pk",
        orderable=False,
        empty_values=(),
        attrs={"th": {"class": "col-actions"}, "td": {"class": "col-actions"}},
    )

    class Meta:
        model = User
        fields = []
        sequence = (
            "select",
            "user",
            "status",
            "id",
            "name",
            "email",
            "has_mfa",
            "role",
            "is_paid",
            "is_banned",
            "email_verified_at",
            "max_inference",
            "max_embedding",
            "monthly_inference",
            "prev_month_inference",
            "total_usage",
            "likely_percent",
            "last_active_at",
            "actions",
        )
        order_by = ("email",)
        empty_text = _("No users match these filters.")
        attrs = {"class": "table table-users"}

    def __init__(self, *args, org_query: str = "", chosen=None, **kwargs):
        self.org_query = org_query
        super().__init__(*args, **kwargs)
        # The admin's own choice of columns (accounts.TablePreference), else the
        # default; columns marked col-wide give way below 1200 px only by default.
        shown = DEFAULT_USER_COLUMNS if chosen is None else chosen
        for name in CHOOSABLE_USER_COLUMNS:
            if name not in shown:
                self.columns.hide(name)
        self.attrs = {
            **self.attrs,
            "class": "table table-users"
            + (" table-default-columns" if chosen is None else ""),
        }

    def paginate(self, *args, per_page=None, **kwargs):
        # Only the offered page sizes: ?per_page=100000 must not load the whole org.
        per_page = per_page if per_page in PAGE_SIZES else PAGE_SIZES[0]
        return super().paginate(*args, per_page=per_page, **kwargs)

    # Dates may be empty (never verified, never active): empty sorts first ascending
    # and last descending on every database (PostgreSQL and SQLite differ).
    def order_email_verified_at(self, queryset, is_descending):
        return _nulls_low(queryset, "email_verified_at", is_descending), True

    def order_last_active_at(self, queryset, is_descending):
        return _nulls_low(queryset, "last_active", is_descending), True

    def render_user(self, record):
        url = reverse("tokens:user_detail", kwargs={"pk": record.pk}) + self.org_query
        return format_html(
            '<a class="cell-primary" href="{}">{}</a>'
            '<span class="cell-secondary email">{}</span>',
            url,
            record.get_full_name() or record.email,
            breakable_email(record.email),
        )

    def render_status(self, record):
        return user_status_badges(record)

    def render_actions(self, record):
        # No request here: context processors (queries) would run for every row.
        request = getattr(self, "request", None)
        return render_to_string(
            "tokens/includes/user_row_menu.html",
            {
                "u": record,
                "org_query": self.org_query,
                "is_self": request is not None and request.user.pk == record.pk,
                "csrf_token": get_token(request) if request is not None else "",
            },
        )

    def render_name(self, record):
        url = reverse("tokens:user_detail", kwargs={"pk": record.pk}) + self.org_query
        return format_html('<a href="{}">{}</a>', url, record.get_full_name() or "—")

    def render_role(self, record):
        return record.get_role_display()

    def render_likely_percent(self, value):
        if value is None or value < 0:
            return "—"
        percent = f"{round(value):,}%"
        if value >= 100:
            return format_html(
                '<span class="badge badge-warning" title="{}">{}</span>',
                _("Projected month-end usage in % of the limit"),
                percent,
            )
        return percent

    def value_likely_percent(self, value):
        return "" if value is None or value < 0 else round(value)

    def render_max_inference(self, record, value):
        return self._limit_link(record, "inference", value)

    def render_max_embedding(self, record, value):
        return self._limit_link(record, "embedding", value)

    def _limit_link(self, record, token_type, value):
        url = (
            reverse(
                "tokens:user_limit_edit",
                kwargs={"pk": record.pk, "token_type": token_type},
            )
            + self.org_query
        )
        return format_html(
            '<a href="{}" class="limit-link" title="{}">{}</a>',
            url,
            _("Edit limit"),
            intcomma(value),
        )


# --- Token Requests (docs/product.md, Token Requests) ---------------------------------

# Imported here so this section stays one appended block (the top import is shared).
