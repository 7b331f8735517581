"""The "projected to run out before month end" alert (docs/forecasts.md,
Alerts): checked by ``send_alerts`` (cron), not on the usage path, since it
needs the last 28 days of the organization's rollup."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from asksage_admin.lib.periods import period_of
from tokens.models import Alert, AlertSettings
from tokens.selectors.forecasts import org_forecasts
from tokens.services.alerts.detect import fire


def runout_check(now: dt.datetime | None = None) -> list[int]:
    """Fire the run-out alert of every active organization whose pool of a type
    is projected to be used up before the month's last day ends (once per
    organization, type and month). Returns the ids fired (delivered after commit)."""
    now = now or timezone.now()
    period = period_of(now)
    disabled = set(
        AlertSettings.objects.filter(runout_enabled=False).values_list(
            "organization_id", flat=True
        )
    )
    fired_already = set(
        Alert.objects.filter(
            month=period, kind=Alert.Kind.ORG_RUNOUT, user__isnull=True
        ).values_list("organization_id", "token_type")
    )
    ids: list[int] = []
    for org in Organization.objects.filter(status=Organization.Status.ACTIVE).order_by(
        "pk"
    ):
        if org.pk in disabled:
            continue
        due = []
        for token_type, f in org_forecasts(org, now).items():
            if (org.pk, token_type) in fired_already or not f.forecast.runs_out:
                continue
            if f.forecast.used >= f.pool:
                continue  # used up already: the 100% alert says so
            due.append(
                {
                    "organization_id": org.pk,
                    "user_id": None,
                    "token_type": token_type,
                    "kind": Alert.Kind.ORG_RUNOUT,
                    "threshold": 0,
                    "used": f.forecast.used,
                    "budget": f.pool,
                    "detail": {
                        "runout": f.forecast.runout.isoformat(),
                        "projected": f.forecast.projected,
                        "lots_this_month": f.lots_this_month,
                    },
                }
            )
        if due:
            with transaction.atomic():
                ids += fire(due, period=period, now=now)
    return ids
