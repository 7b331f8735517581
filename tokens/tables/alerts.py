"""The alerts page's table of alerts fired (docs/forecasts.md, Alerts)."""

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from tokens.models import Alert
from tokens.tables.columns import KnownSortTable, NumberColumn


class AlertTable(KnownSortTable):
    """What fired, when, to whom, and whether it was delivered."""

    created_at = tables.DateTimeColumn(verbose_name=_("Fired"), format="Y-m-d H:i")
    kind = tables.Column(verbose_name=_("Alert"))
    threshold = tables.Column(
        verbose_name=_("Threshold"), attrs={"td": {"class": "num"}}
    )
    token_type = tables.Column(verbose_name=_("Type"))
    user = tables.Column(
        accessor="user__email",
        verbose_name=_("User"),
        order_by=("user__email",),
        default="—",
    )
    used = NumberColumn(verbose_name=_("Used"))
    budget = NumberColumn(verbose_name=_("Pool / limit"))
    recipients = tables.Column(
        verbose_name=_("Sent to"), orderable=False, empty_values=()
    )
    delivered_at = tables.Column(
        verbose_name=_("Delivered"), empty_values=(), order_by=("delivered_at",)
    )

    class Meta:
        model = Alert
        fields = ()
        sequence = (
            "created_at",
            "kind",
            "threshold",
            "token_type",
            "user",
            "used",
            "budget",
            "recipients",
            "delivered_at",
        )
        order_by = ("-created_at",)
        empty_text = _("No alert has fired yet.")
        attrs = {"class": "table table-alerts"}

    def paginate(self, *args, per_page=None, **kwargs):
        # 25 a page, whatever ?per_page= says (a negative or huge size is ignored).
        return super().paginate(*args, per_page=25, **kwargs)

    def render_kind(self, record):
        return record.get_kind_display()

    def render_threshold(self, record):
        return "—" if record.kind == Alert.Kind.ORG_RUNOUT else f"{record.threshold}%"

    def render_recipients(self, record):
        return ", ".join(record.recipients) if record.recipients else "—"

    def render_delivered_at(self, record):
        if record.delivered_at:
            return format_html(
                '<span class="badge badge-success">{}</span> {}',
                _("Delivered"),
                record.delivered_at.strftime("%Y-%m-%d %H:%M"),
            )
        return format_html(
            '<span class="badge badge-warning" title="{}">{}</span> {}',
            record.last_error,
            _("Not delivered"),
            _("%(n)d attempt(s)") % {"n": record.attempts},
        )
