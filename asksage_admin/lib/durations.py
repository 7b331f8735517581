"""Durations in words ("15 minutes", "1 hour 30 minutes"), never ISO 8601 ("PT15M"):
the sign-in lockout page says how long it lasts with ``human_duration``."""

import datetime as dt

from django.utils.translation import ngettext

_UNITS = (
    (86_400, lambda n: ngettext("%(n)d day", "%(n)d days", n)),
    (3_600, lambda n: ngettext("%(n)d hour", "%(n)d hours", n)),
    (60, lambda n: ngettext("%(n)d minute", "%(n)d minutes", n)),
    (1, lambda n: ngettext("%(n)d second", "%(n)d seconds", n)),
)


def human_duration(value: dt.timedelta | None) -> str:
    """The two largest whole units: 15 minutes, 1 hour 30 minutes, 2 days 3 hours."""
    if not isinstance(value, dt.timedelta):
        return ""
    seconds = max(0, int(value.total_seconds()))
    parts = []
    for size, word in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(word(count) % {"n": count})
    return " ".join(parts[:2]) or ngettext("%(n)d second", "%(n)d seconds", 0) % {
        "n": 0
    }
