import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.models import AuditEvent
from asksage_admin.lib.display import breakable_email
from tokens.models import UsageEvent

NUM = {"th": {"class": "num"}, "td": {"class": "num"}}


def _user_link(user_id, label, org_query: str):
    if not user_id:
        return label or "—"
    url = reverse("tokens:user_detail", kwargs={"pk": user_id}) + org_query
    return format_html('<a href="{}">{}</a>', url, breakable_email(label))


def _toggle(pk, label) -> str:
    return render_to_string(
        "analytics/includes/row_toggle.html", {"pk": pk, "label": label}
    )


class ActivityTable(tables.Table):
    """Rows are one keyset page, newest first: no sorting or offset paging here.
    Each row's details open in a full-width row under it (includes/table.html)."""

    has_row_detail = True
    row_detail_toggle = True

    def __init__(self, *args, org_query: str = "", **kwargs):
        self.org_query = org_query
        super().__init__(*args, orderable=False, **kwargs)


class UsageEventTable(ActivityTable):
    occurred_at = tables.DateTimeColumn(
        verbose_name=_("Time (UTC)"), format="Y-m-d H:i:s"
    )
    user = tables.Column(verbose_name=_("User"), accessor="user__email")
    model = tables.Column(verbose_name=_("Model"), accessor="model__name")
    token_type = tables.Column(verbose_name=_("Type"))
    prompt_tokens = tables.Column(verbose_name=_("Prompt"), attrs=NUM)
    completion_tokens = tables.Column(verbose_name=_("Completion"), attrs=NUM)
    tokens = tables.Column(verbose_name=_("Charged"), attrs=NUM)
    application = tables.Column(verbose_name=_("Application"), default="—")
    details = tables.Column(
        verbose_name=_("Details"),
        empty_values=(),
        accessor="pk",
        attrs={"td": {"class": "col-toggle"}},
    )
    row_detail = tables.Column(visible=False, empty_values=(), accessor="pk")
    scroll_label = _("User activity")

    class Meta:
        model = UsageEvent
        fields = []
        row_attrs = {"class": "has-detail"}
        empty_text = _("No usage matches these filters.")
        attrs = {"class": "table table-activity"}

    def render_user(self, record):
        return _user_link(record.user_id, record.user.email, self.org_query)

    def render_token_type(self, record):
        return record.get_token_type_display()

    def render_prompt_tokens(self, value):
        return intcomma(value)

    def render_completion_tokens(self, value):
        return intcomma(value)

    def render_tokens(self, value):
        return intcomma(value)

    def render_details(self, record):
        return _toggle(record.pk, _("Show"))

    def render_row_detail(self, record):
        return render_to_string("analytics/includes/usage_details.html", {"e": record})


class AuditEventTable(ActivityTable):
    time = tables.DateTimeColumn(verbose_name=_("Time (UTC)"), format="Y-m-d H:i:s")
    actor_email = tables.Column(verbose_name=_("Actor"), default=_("system"))
    action = tables.Column(verbose_name=_("Action"))
    target_repr = tables.Column(verbose_name=_("Target"), default="—")
    change = tables.Column(
        verbose_name=_("Before → after"), empty_values=(), accessor="pk"
    )
    ip = tables.Column(verbose_name=_("IP address"), default="—")
    request_id = tables.Column(verbose_name=_("Request id"), default="—")
    row_detail = tables.Column(visible=False, empty_values=(), accessor="pk")
    scroll_label = _("Audit trail")

    class Meta:
        model = AuditEvent
        fields = []
        row_attrs = {"class": "has-detail"}
        empty_text = _("No audit events match these filters.")
        attrs = {"class": "table table-activity"}

    def render_actor_email(self, record):
        return _user_link(record.actor_id, record.actor_email, self.org_query)

    def render_action(self, record):
        return record.get_action_display()

    def render_target_repr(self, record):
        if record.target_type == "accounts.user" and record.target_id.isdigit():
            return _user_link(int(record.target_id), record.target_repr, self.org_query)
        # Break between an address's parts, never mid-word.
        return breakable_email(record.target_repr) if record.target_repr else "—"

    def render_request_id(self, value):
        return format_html('<code class="small">{}</code>', value[:12])

    def render_change(self, record):
        diff = audit_diff(record.before, record.after)
        if diff:
            count = len(diff)
            label = ngettext("%(n)d change", "%(n)d changes", count) % {"n": count}
            return _toggle(record.pk, label)
        if record.message:
            return _toggle(record.pk, _("Message"))
        return mark_safe('<span class="muted">—</span>')

    def render_row_detail(self, record):
        diff = audit_diff(record.before, record.after)
        if not diff and not record.message:
            return ""
        return render_to_string(
            "analytics/includes/audit_details.html", {"e": record, "diff": diff}
        )


def audit_diff(before: dict | None, after: dict | None) -> list[tuple[str, str, str]]:
    """The changed fields as (field, before, after), readable."""
    before, after = before or {}, after or {}

    def show(value) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return _("yes") if value else _("no")
        if isinstance(value, int):
            return intcomma(value)
        return str(value)

    keys = list(dict.fromkeys([*before, *after]))
    return [
        (key.replace("_", " "), show(before.get(key)), show(after.get(key)))
        for key in keys
        if before.get(key) != after.get(key)
    ]
