"""Analytics → Activity Logs (docs/product.md, Activity Logs): user activity and the
audit trail, newest first, keyset-paginated, filterable, exportable; both read-only."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin
from accounts.models import AuditEvent
from accounts.services import data_export_record, organization_set_prompt_excerpts
from analytics import keyset
from analytics.filtersets import AuditEventFilterSet, UsageEventFilterSet
from analytics.tables import AuditEventTable, UsageEventTable
from asksage_admin.lib.csv import csv_response
from tokens.models import UsageEvent

PAGE_SIZE = 50
TABS = {
    "usage": (UsageEventFilterSet, UsageEventTable, "occurred_at"),
    "audit": (AuditEventFilterSet, AuditEventTable, "time"),
}


def usage_events(org):
    return UsageEvent.objects.filter(organization=org).select_related("user", "model")


def audit_events(org):
    return AuditEvent.objects.filter(organization=org)


SOURCES = {"usage": usage_events, "audit": audit_events}


class ActivityMixin(PanelAccessMixin):
    nav_active = "activity"

    def tab(self) -> str:
        tab = self.kwargs.get("tab") or self.request.GET.get("tab", "usage")
        return tab if tab in TABS else "usage"

    def filterset(self, tab: str):
        filterset_class = TABS[tab][0]
        return filterset_class(self.request.GET, queryset=SOURCES[tab](self.org))


class ActivityView(ActivityMixin, TemplateView):
    template_name = "analytics/activity.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tab = self.tab()
        filterset = self.filterset(tab)
        _filters, table_class, time_field = TABS[tab]
        valid = filterset.is_valid()
        rows = filterset.qs if valid else filterset.queryset.none()
        try:
            page = keyset.paginate(
                rows,
                time_field=time_field,
                size=PAGE_SIZE,
                after=self.request.GET.get("after"),
                before=self.request.GET.get("before"),
            )
        except keyset.InvalidCursor:
            messages.warning(
                self.request,
                _("That page does not exist (the link is damaged); here is the first."),
            )
            page = keyset.paginate(rows, time_field=time_field, size=PAGE_SIZE)
        query = self.request.GET.copy()
        for key in ("after", "before"):
            query.pop(key, None)
        org_query = self.panel_context()["org_query"]
        context.update(
            tab=tab,
            filter=filterset,
            table=table_class(page.rows, org_query=org_query),
            page=page,
            filter_query=query.urlencode(),
            export_url=reverse("analytics:activity_export", kwargs={"tab": tab}),
        )
        return context


class ActivityExportView(ActivityMixin, View):
    """The tab's rows for the current filter as CSV, newest first, streamed."""

    def get(self, request: HttpRequest, tab: str) -> StreamingHttpResponse:
        if tab not in TABS:
            raise Http404(_("No such activity tab."))
        filterset = self.filterset(self.tab())
        rows = filterset.qs if filterset.is_valid() else filterset.queryset.none()
        data_export_record(
            actor=request.user,
            organization=self.org,
            what=f"activity-{tab}",
            filters={k: v for k, v in request.GET.items() if k != "org"},
        )
        stamp = timezone.now().strftime("%Y-%m-%d")
        if tab == "usage":
            return csv_response(
                filename=f"user-activity-{self.org.pk}-{stamp}.csv",
                header=[
                    "time",
                    "event_id",
                    "user",
                    "model",
                    "token_type",
                    "prompt_tokens",
                    "completion_tokens",
                    "charged_tokens",
                    "application",
                    "prompt_excerpt",
                    "response_excerpt",
                ],
                rows=(
                    [
                        e.occurred_at.isoformat(),
                        e.event_id,
                        e.user.email,
                        e.model.key,
                        e.token_type,
                        e.prompt_tokens,
                        e.completion_tokens,
                        e.tokens,
                        e.application,
                        e.prompt_excerpt,
                        e.response_excerpt,
                    ]
                    for e in rows.order_by("-occurred_at", "-pk").iterator(
                        chunk_size=2000
                    )
                ),
            )
        return csv_response(
            filename=f"audit-trail-{self.org.pk}-{stamp}.csv",
            header=[
                "time",
                "actor_email",
                "action",
                "target_type",
                "target_id",
                "target",
                "before",
                "after",
                "message",
                "ip",
                "request_id",
            ],
            rows=(
                [
                    e.time.isoformat(),
                    e.actor_email,
                    e.action,
                    e.target_type,
                    e.target_id,
                    e.target_repr,
                    _json(e.before),
                    _json(e.after),
                    e.message,
                    e.ip or "",
                    e.request_id,
                ]
                for e in rows.order_by("-time", "-pk").iterator(chunk_size=2000)
            ),
        )


def _json(value) -> str:
    import json

    return "" if value is None else json.dumps(value, sort_keys=True)


class ExcerptSettingView(ActivityMixin, View):
    """POST: turn the storing of prompt/response excerpts on or off."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        enabled = request.POST.get("store_prompt_excerpts") == "on"
        organization_set_prompt_excerpts(
            actor=request.user, organization=self.org, enabled=enabled
        )
        messages.success(
            request,
            _("Prompt and response excerpts are now stored (first 2,000 characters).")
            if enabled
            else _("Prompt and response excerpts are no longer stored."),
        )
        return redirect(
            reverse("analytics:activity") + self.panel_context()["org_query"]
        )
