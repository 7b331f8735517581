"""The alerts pages' URLs (docs/forecasts.md, Alerts), added to ``tokens/urls.py``
(namespace ``tokens``)."""

from django.urls import path

from tokens.views import alerts

urlpatterns = [
    path("panel/alerts/", alerts.AlertsView.as_view(), name="alerts"),
    path(
        "panel/alerts/settings/",
        alerts.AlertSettingsUpdateView.as_view(),
        name="alert_settings_update",
    ),
    path(
        "panel/alerts/test/",
        alerts.AlertWebhookTestView.as_view(),
        name="alert_webhook_test",
    ),
]
