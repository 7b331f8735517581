"""Token Statistics' forecast (docs/forecasts.md): the projection drawn on the
daily chart and its table twin, when the period shown contains today. The math
is ``asksage_admin/lib/forecasts.py``; the rollups are read by
``tokens/selectors/forecasts.py`` (two queries)."""

import datetime as dt
from typing import Any

from django.utils import timezone

from analytics.selectors import StatsPeriod
from tokens.selectors.forecasts import daily_projection, org_forecasts


def statistics_forecast(
    org, period: StatsPeriod, days: list, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Context for the page: ``forecasts`` (per type shown), ``projection_rows``
    (day, per type, projected) and the chart's projection datasets, or nothing
    when the period does not contain today."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    if not period.start <= today <= period.end:
        return {"forecasts": None, "projection": {}}
    forecasts = org_forecasts(org, now)
    shown = [forecasts[t] for t in period.token_types]
    per_day: dict[dt.date, dict[str, int]] = {}
    for f in shown:
        for day, value in daily_projection(f.forecast, now):
            if day > period.end:
                continue
            per_day.setdefault(day, {})[f.token_type] = value
    by_label = {d.isoformat(): v for d, v in per_day.items()}
    projection = {
        t: [by_label.get(row.day.isoformat(), {}).get(t, 0) for row in days]
        for t in period.token_types
    }
    return {
        "forecasts": shown,
        "projection": projection,
        "projection_rows": sorted(per_day.items()),
    }
