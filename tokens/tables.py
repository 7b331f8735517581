import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma
from django.db.models import F
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts.models import User

NUM = {"th": {"class": "num"}, "td": {"class": "num"}}
PAGE_SIZES = (25, 50, 100, 500)


class NumberColumn(tables.Column):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", NUM)
        super().__init__(*args, **kwargs)

    def render(self, value):
        return intcomma(value)

    def value(self, value):
        return value


class YesNoColumn(tables.Column):
    def __init__(self, *args, yes_class="badge-success", no_class="badge-muted", **kw):
        self.yes_class, self.no_class = yes_class, no_class
        super().__init__(*args, **kw)

    def render(self, value):
        if value:
            return format_html(
                '<span class="badge {}">{}</span>', self.yes_class, _("Yes")
            )
        return format_html('<span class="badge {}">{}</span>', self.no_class, _("No"))

    def value(self, value):
        return "yes" if value else "no"


def _nulls_low(queryset, field: str, descending: bool):
    column = F(field)
    order = column.desc(nulls_last=True) if descending else column.asc(nulls_first=True)
    return queryset.order_by(order, "email")


class KnownSortTable(tables.Table):
    """``?sort=`` may only name sortable columns of this table; anything else
    (a typo, a dotted path, a 10 KB string) is ignored and the default order holds."""

    @property
    def order_by(self):
        return tables.Table.order_by.fget(self)

    @order_by.setter
    def order_by(self, value):
        names = value.split(",") if isinstance(value, str) else list(value or ())
        known = {column.name for column in self.columns if column.orderable}
        wanted = tuple(
            n for n in names if isinstance(n, str) and n.lstrip("-") in known
        )
        tables.Table.order_by.fset(self, wanted or self._meta.order_by)


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
                "title": _(
                    "The later of the last day with usage (through the gateway) and "
                    "the last sign-in to this console, in UTC."
                )
            }
        },
    )

    class Meta:
        model = User
        fields = []
        sequence = (
            "select",
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
            "last_active_at",
        )
        order_by = ("email",)
        empty_text = _("No users match these filters.")
        attrs = {"class": "table table-users"}

    def __init__(self, *args, org_query: str = "", **kwargs):
        self.org_query = org_query
        super().__init__(*args, **kwargs)

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

    def render_name(self, record):
        url = reverse("tokens:user_detail", kwargs={"pk": record.pk}) + self.org_query
        return format_html('<a href="{}">{}</a>', url, record.get_full_name() or "—")

    def render_role(self, record):
        return record.get_role_display()

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
from urllib.parse import urlencode  # noqa: E402

from django.utils.dateformat import format as date_format  # noqa: E402
from django.utils.timezone import localtime  # noqa: E402

_STATUS_BADGES = {
    "pending": "badge-warning",
    "approved": "badge-success",
    "denied": "badge-danger",
}


def _with_query(url: str, org_query: str, **params) -> str:
    query = org_query.lstrip("?")
    extra = urlencode({k: v for k, v in params.items() if v})
    joined = "&".join(part for part in (query, extra) if part)
    return f"{url}?{joined}" if joined else url


class TokenRequestTable(KnownSortTable):
    """The Token Requests queue: sorted on the server by date, amount, user, type,
    current tokens and status; Approve / Deny on pending rows, the decision on the
    others."""

    email = tables.Column(
        accessor="user__email", verbose_name=_("User Email"), order_by=("user__email",)
    )
    token_type = tables.Column(verbose_name=_("Type"))
    amount = NumberColumn(verbose_name=_("Requested Amount"))
    reason = tables.Column(
        verbose_name=_("Reason"), orderable=False, attrs={"td": {"class": "reason"}}
    )
    limit_at_request = NumberColumn(verbose_name=_("Current Tokens"))
    status = tables.Column(verbose_name=_("Status"))
    created_at = tables.DateTimeColumn(verbose_name=_("Date"), format="DATETIME_FORMAT")
    actions = tables.Column(
        verbose_name=_("Actions"),
        accessor="pk",
        orderable=False,
        empty_values=(),
        attrs={"td": {"class": "actions"}},
    )

    class Meta:
        sequence = (
            "email",
            "token_type",
            "amount",
            "reason",
            "limit_at_request",
            "status",
            "created_at",
            "actions",
        )
        order_by = ("-created_at",)
        empty_text = _("No requests here.")
        attrs = {"class": "table table-requests"}

    def __init__(self, *args, org_query: str = "", back: str = "", **kwargs):
        self.org_query, self.back = org_query, back
        super().__init__(*args, **kwargs)

    def paginate(self, *args, per_page=None, **kwargs):
        # One page size: ?per_page=-1 or 10**9 must neither fail nor load everything.
        return super().paginate(*args, per_page=25, **kwargs)

    # Ties (same second, same amount) break on id so pages never overlap.
    def order_created_at(self, queryset, is_descending):
        sign = "-" if is_descending else ""
        return queryset.order_by(f"{sign}created_at", f"{sign}id"), True

    def order_amount(self, queryset, is_descending):
        sign = "-" if is_descending else ""
        return queryset.order_by(f"{sign}amount", f"{sign}id"), True

    def render_token_type(self, record):
        return record.get_token_type_display()

    def render_created_at(self, value):
        # Date over time: two short lines keep the queue within the page width.
        moment = localtime(value)
        return format_html(
            '<span class="nowrap">{}</span><span class="cell-secondary">{}</span>',
            date_format(moment, "Y-m-d"),
            date_format(moment, "H:i"),
        )

    def render_reason(self, value):
        return format_html(
            '<span class="reason-text" title="{}">{}</span>', value, value
        )

    def render_status(self, record):
        badge = format_html(
            '<span class="badge {}">{}</span>',
            _STATUS_BADGES.get(record.status, "badge-muted"),
            record.get_status_display(),
        )
        if record.auto_approved:
            badge = format_html(
                '{} <span class="badge badge-info badge-plain">{}</span>',
                badge,
                _("auto"),
            )
        elif record.status == "pending" and record.hold_note:
            badge = format_html(
                '{} <span class="cell-secondary hold-note">{}</span>',
                badge,
                record.hold_note,
            )
        return badge

    def render_actions(self, record):
        if record.status == "pending":
            approve = _with_query(
                reverse("tokens:request_approve", kwargs={"pk": record.pk}),
                self.org_query,
                next=self.back,
            )
            deny = _with_query(
                reverse("tokens:request_deny", kwargs={"pk": record.pk}),
                self.org_query,
                next=self.back,
            )
            return format_html(
                '<span class="row-actions">'
                '<a class="btn btn-primary btn-sm" href="{}">{}</a>'
                '<a class="btn btn-secondary btn-sm" href="{}">{}</a></span>',
                approve,
                _("Approve…"),
                deny,
                _("Deny…"),
            )
        if record.auto_approved:
            who = _("auto-approval")
        else:
            who = record.decided_by.email if record.decided_by else _("system")
        if record.status == "approved":
            headline = format_html(
                "{} {}", _("Approved"), intcomma(record.approved_amount)
            )
        else:
            headline = record.get_status_display()  # Denied, or Withdrawn
        when = (
            date_format(localtime(record.decided_at), "DATETIME_FORMAT")
            if record.decided_at
            else ""
        )
        note = (
            format_html('<span class="decision-note">“{}”</span>', record.admin_note)
            if record.admin_note and not record.auto_approved
            else ""
        )
        return format_html(
            '<span class="decision"><span class="cell-primary">{}</span>'
            '<span class="cell-secondary">{} · {}</span>{}</span>',
            headline,
            who,
            when,
            note,
        )
