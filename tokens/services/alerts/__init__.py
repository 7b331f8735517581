"""Alerts (docs/forecasts.md, Alerts): organization and user thresholds, the
run-out projection, delivery by e-mail and webhook, and their settings.

- ``detect``: the usage batch's one statement and the insert (at most once per
  threshold, user or organization, type and month: a unique key and ON CONFLICT
  DO NOTHING);
- ``runout``: the run-out projection (``send_alerts``);
- ``delivery``: after the commit, and retried by ``send_alerts``, claiming rows
  with ``FOR NO KEY UPDATE SKIP LOCKED``;
- ``settings``: the panel's settings and the webhook test; ``webhook``: the URL's
  checks (SSRF) and the POST.
"""

from tokens.services.alerts.delivery import DeliveryReport, deliver
from tokens.services.alerts.detect import detect_for_batch
from tokens.services.alerts.runout import runout_check
from tokens.services.alerts.settings import (
    alert_settings_of,
    alert_settings_update,
    alert_webhook_test,
)

__all__ = [
    "DeliveryReport",
    "alert_settings_of",
    "alert_settings_update",
    "alert_webhook_test",
    "deliver",
    "detect_for_batch",
    "runout_check",
]
