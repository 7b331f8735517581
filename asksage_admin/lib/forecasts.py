"""Usage forecasts (docs/forecasts.md): pure functions on lists of daily totals.

No database, no clock: the caller passes the daily totals read from the rollups,
the month's usage so far and the instant "now", so every figure is reproducible
in a test. Here, below ``accounts``, because both ``tokens`` (``/me/``, User
Management, Token Distribution, the alerts) and ``analytics`` (Token Statistics)
show forecasts (docs/architecture.md, Layers and layout).

The method, in short (the reasons are in docs/forecasts.md):

- the history is the complete days before today, at most ``WINDOW`` (28), oldest
  first, cut at the day the organization (or user) started;
- with the full 28 days, the rate of a future day is the mean of the 28 days'
  values on that weekday blended half and half with the mean of the last 7 days
  (a weekly cycle is kept, a recent change is followed);
- with 7 to 27 days, the mean of the last 7; with 1 to 6, the mean of those days;
- with no complete day (a brand-new organization), today's usage over the part of
  today gone by, once at least ``MIN_TODAY_HOURS`` have gone; before that, no rate;
- the projection adds the rate over what is left of the month: the rest of today
  (a fraction of a day) and each day after it, to the month's last day.
"""

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW = 28
RECENT = 7
MIN_TODAY_HOURS = 1

METHOD_WEEKDAY = "weekday"
METHOD_RECENT = "recent"
METHOD_SHORT = "short"
METHOD_TODAY = "today"
METHOD_NONE = "none"

_DAY = dt.timedelta(days=1)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    """The last day of ``day``'s month."""
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - _DAY


@dataclass(frozen=True)
class Rate:
    """Tokens a day expected on each weekday (Monday = 0), and how it was found."""

    by_weekday: tuple[float, ...]
    method: str

    def on(self, day: dt.date) -> float:
        return self.by_weekday[day.weekday()]

    @property
    def known(self) -> bool:
        return self.method != METHOD_NONE


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def daily_rate(
    history: Sequence[int], *, today: dt.date, today_used: int, now: dt.datetime
) -> Rate:
    """The burn rate per weekday from ``history`` (complete days, oldest first,
    the last one yesterday; at most ``WINDOW`` are used)."""
    history = list(history)[-WINDOW:]
    n = len(history)
    if n >= WINDOW:
        recent = _mean(history[-RECENT:])
        first = today - dt.timedelta(days=n)
        per_weekday: list[list[int]] = [[] for _ in range(7)]
        for offset, value in enumerate(history):
            per_weekday[(first + dt.timedelta(days=offset)).weekday()].append(value)
        return Rate(
            tuple((_mean(values) + recent) / 2 for values in per_weekday),
            METHOD_WEEKDAY,
        )
    if n >= RECENT:
        return Rate((_mean(history[-RECENT:]),) * 7, METHOD_RECENT)
    if n >= 1:
        return Rate((_mean(history),) * 7, METHOD_SHORT)
    gone = _day_gone(now)
    if gone * 24 >= MIN_TODAY_HOURS:
        return Rate((today_used / gone,) * 7, METHOD_TODAY)
    return Rate((0.0,) * 7, METHOD_NONE)


def _day_gone(now: dt.datetime) -> float:
    """The fraction of ``now``'s UTC day gone by (0 at midnight)."""
    now = now.astimezone(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (now - midnight) / _DAY


def _future(now: dt.datetime, until: dt.date) -> list[tuple[dt.date, float]]:
    """The rest of today and each day after it up to ``until`` (inclusive), with
    the fraction of a day each one still has."""
    today = now.astimezone(dt.UTC).date()
    days = [(today, 1 - _day_gone(now))] if today <= until else []
    day = today + _DAY
    while day <= until:
        days.append((day, 1.0))
        day += _DAY
    return days


@dataclass(frozen=True)
class Forecast:
    """One month's forecast for one budget (a pool or a limit) and token type."""

    used: int
    projected: int
    budget: int | None
    runout: dt.date | None
    rate: Rate
    next_month: int

    @property
    def projected_percent(self) -> int | None:
        if not self.budget:
            return None
        return math.floor(100 * self.projected / self.budget)

    @property
    def runs_out(self) -> bool:
        """Used up before the month's last day ends."""
        return self.runout is not None

    @property
    def shortfall(self) -> int:
        return max(0, self.projected - (self.budget or 0)) if self.budget else 0


def forecast(
    *,
    history: Sequence[int],
    month_used: int,
    today_used: int,
    now: dt.datetime,
    budget: int | None = None,
) -> Forecast:
    """This month's projection at ``now``: ``month_used`` (the month so far,
    today's usage included) plus the rate over the rest of the month; the day the
    ``budget`` is used up at that rate (None when it lasts the month, or when
    there is no budget); and the projected usage of the whole next month."""
    today = now.astimezone(dt.UTC).date()
    rate = daily_rate(history, today=today, today_used=today_used, now=now)
    end = month_end(today)
    projected = float(month_used)
    runout = None
    if budget is not None and budget > 0 and month_used >= budget:
        runout = today
    for day, share in _future(now, end):
        projected += rate.on(day) * share
        if runout is None and budget and budget > 0 and projected >= budget:
            runout = day
    following = end + _DAY
    next_month = sum(
        rate.on(following + dt.timedelta(days=i))
        for i in range((month_end(following) - following).days + 1)
    )
    return Forecast(
        used=month_used,
        projected=math.ceil(projected),
        budget=budget,
        runout=runout,
        rate=rate,
        next_month=math.ceil(next_month),
    )


def lots_needed(projected: int, budget: int, lot: int) -> int:
    """Lots of ``lot`` tokens to buy so that ``budget`` covers ``projected``."""
    if lot <= 0 or projected <= budget:
        return 0
    return math.ceil((projected - budget) / lot)


def recent_projection(
    *, month_used: int, last_days: int, now: dt.datetime, days: int = RECENT
) -> int:
    """A user's month-end projection (User Management's column and ``/me/``):
    the month so far plus the mean of the last ``days`` complete days over the
    rest of the month. The same formula as the table's SQL annotation, which
    sorts on it (``tokens/selectors/forecasts.py``)."""
    today = now.astimezone(dt.UTC).date()
    left = sum(share for _day, share in _future(now, month_end(today)))
    return math.ceil(month_used + last_days / days * left)


def future_days(now: dt.datetime) -> list[tuple[dt.date, float]]:
    """Each day left in ``now``'s month with the share of it still to come
    (today's a fraction, the others 1)."""
    return _future(now, month_end(now.astimezone(dt.UTC).date()))


def month_left(now: dt.datetime) -> float:
    """Days left in ``now``'s month, a fraction of today included."""
    today = now.astimezone(dt.UTC).date()
    return sum(share for _day, share in _future(now, month_end(today)))
