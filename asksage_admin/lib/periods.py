"""Monthly periods (docs/product.md, Months and edges): a period is a calendar month in
UTC, named by its first day."""

import datetime as dt

from django.utils import timezone


def period_of(moment: dt.datetime | dt.date | None = None) -> dt.date:
    """The first day of the month (UTC) that ``moment`` (default: now) falls in."""
    if moment is None:
        moment = timezone.now()
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date()
    return moment.replace(day=1)


def next_period(period: dt.date) -> dt.date:
    return (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def previous_period(period: dt.date) -> dt.date:
    return (period.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def last_day(period: dt.date) -> dt.date:
    return next_period(period) - dt.timedelta(days=1)


def label(period: dt.date) -> str:
    return period.strftime("%Y-%m")
