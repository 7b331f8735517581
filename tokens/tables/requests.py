"""The Token Requests table (docs/product.md, Token Requests)."""

from urllib.parse import urlencode

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from asksage_admin.lib.display import breakable_email
from tokens.tables.columns import KnownSortTable, NumberColumn

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
        accessor="user__email",
        verbose_name=_("User Email"),
        order_by=("user__email",),
        attrs={"th": {"class": "col-identity"}, "td": {"class": "col-identity"}},
    )
    token_type = tables.Column(verbose_name=_("Type"))
    amount = NumberColumn(verbose_name=_("Requested Amount"))
    # The reason is long text: shown in full in a row of its own under the request.
    reason = tables.Column(verbose_name=_("Reason"), orderable=False, visible=False)
    row_detail = tables.Column(
        accessor="pk", orderable=False, visible=False, empty_values=()
    )
    limit_at_request = NumberColumn(verbose_name=_("Current Tokens"))
    status = tables.Column(verbose_name=_("Status"))
    created_at = tables.DateTimeColumn(verbose_name=_("Date"), format="DATETIME_FORMAT")
    actions = tables.Column(
        verbose_name=_("Actions"),
        accessor="pk",
        orderable=False,
        empty_values=(),
        attrs={"th": {"class": "col-actions"}, "td": {"class": "actions col-actions"}},
    )
    has_row_detail = True
    scroll_label = _("Token requests")

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
            "row_detail",
        )
        order_by = ("-created_at",)
        empty_text = _("No requests here.")
        attrs = {"class": "table table-requests"}
        row_attrs = {"class": "has-detail"}

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
            date_format(moment, "DATE_FORMAT"),
            date_format(moment, "H:i"),
        )

    def render_email(self, value):
        return format_html('<span class="email">{}</span>', breakable_email(value))

    def render_row_detail(self, record):
        return format_html(
            '<p class="reason-text"><span class="row-detail-label">{}</span> {}</p>',
            _("Reason"),
            record.reason,
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
                '<a class="btn btn-primary btn-sm" href="{}" data-primary-action>{}</a>'
                '<a class="btn btn-secondary btn-sm" href="{}" data-primary-action>{}'
                "</a></span>",
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
