"""Management → Alerts (docs/forecasts.md, Alerts): the organization's alert
settings, the webhook test, and the list of alerts that fired."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.generic import TemplateView
from django_tables2 import RequestConfig

from accounts.access import PanelAccessMixin
from tokens.forms.alerts import AlertSettingsForm
from tokens.selectors.forecasts import alerts_for_panel
from tokens.services.alerts import (
    alert_settings_of,
    alert_settings_update,
    alert_webhook_test,
)
from tokens.tables.alerts import AlertTable

TEMPLATE = "tokens/alerts.html"


class AlertsView(PanelAccessMixin, TemplateView):
    template_name = TEMPLATE
    nav_active = "alerts"

    def page_url(self) -> str:
        return reverse("tokens:alerts") + self.panel_context()["org_query"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        settings = alert_settings_of(self.org)
        table = AlertTable(alerts_for_panel(self.org))
        RequestConfig(self.request, paginate={"per_page": 25}).configure(table)
        context.update(
            alert_settings=settings,
            form=kwargs.get("form") or AlertSettingsForm.initial_from(settings),
            table=table,
        )
        return context


class AlertSettingsUpdateView(AlertsView):
    """POST only: save the settings; bad input re-renders the page (400)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = AlertSettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            before = alert_settings_of(self.org)
            was = (before.pk, before.updated_at)
            try:
                saved = alert_settings_update(
                    actor=request.user, organization=self.org, **data
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                if (saved.pk, saved.updated_at) == was:
                    messages.info(request, _("The alert settings are unchanged."))
                else:
                    messages.success(request, _("Alert settings saved."))
                return redirect(self.page_url())
        return self.render_to_response(self.get_context_data(form=form), status=400)


class AlertWebhookTestView(AlertsView):
    """POST only: send a test message to the saved webhook, say how it went."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            url = alert_webhook_test(actor=request.user, organization=self.org)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request, _("A test message was sent to %(url)s.") % {"url": url}
            )
        return redirect(self.page_url())
