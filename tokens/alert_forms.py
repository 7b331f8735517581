"""The alerts page's form and table (docs/forecasts.md, Alerts). Parsing only: the
rules and their messages are the service's (``tokens/services/alerts/settings.py``)."""

import django_tables2 as tables
from django import forms
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from tokens.models import Alert
from tokens.tables import KnownSortTable, NumberColumn


class ThresholdsField(forms.CharField):
    """Comma-separated whole percentages, e.g. "50, 80, 100"."""

    def to_python(self, value):
        text = super().to_python(value)
        parts = [p.strip().rstrip("%") for p in text.replace(";", ",").split(",")]
        parts = [p for p in parts if p]
        # ASCII digits only: str.isdigit() also accepts "²" and "٣".
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise forms.ValidationError(
                _("Enter whole percentages separated by commas, such as 50, 80, 100.")
            )
        return [int(p) for p in parts]


class AlertSettingsForm(forms.Form):
    org_enabled = forms.BooleanField(
        label=_("E-mail admins when the pool reaches a threshold"), required=False
    )
    org_thresholds = ThresholdsField(
        label=_("Pool thresholds (%)"),
        max_length=40,
        help_text=_("Percent of the month's pool per type used, e.g. 50, 80, 100."),
    )
    runout_enabled = forms.BooleanField(
        label=_("E-mail admins when the pool is projected to run out"),
        required=False,
    )
    user_enabled = forms.BooleanField(
        label=_("E-mail users when they reach a threshold of their limit"),
        required=False,
    )
    user_thresholds = ThresholdsField(
        label=_("User thresholds (%)"),
        max_length=40,
        help_text=_(
            "Percent of a user's limit used; at 100% a paid user's admins are told too."
        ),
    )
    webhook_url = forms.CharField(
        label=_("Webhook URL"),
        required=False,
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/…"}),
        help_text=_(
            "Optional. Receives each alert as JSON (Slack-compatible text plus the "
            "fields); https, public hosts only."
        ),
    )

    @classmethod
    def initial_from(cls, settings) -> "AlertSettingsForm":
        return cls(
            initial={
                "org_enabled": settings.org_enabled,
                "org_thresholds": ", ".join(map(str, settings.org_thresholds)),
                "runout_enabled": settings.runout_enabled,
                "user_enabled": settings.user_enabled,
                "user_thresholds": ", ".join(map(str, settings.user_thresholds)),
                "webhook_url": settings.webhook_url,
            }
        )


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
