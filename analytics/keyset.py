"""Keyset pagination for the activity logs (no OFFSET): newest first by
(time, id); a page is "rows strictly older than the cursor" (or, going back,
"strictly newer"), so rows arriving meanwhile never shift a page, at any depth."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime


def encode(time: dt.datetime, pk: int) -> str:
    return f"{time.isoformat()}_{pk}"


def decode(cursor: str | None) -> tuple[dt.datetime, int] | None:
    if not cursor or "_" not in cursor:
        return None
    stamp, _sep, pk = cursor.rpartition("_")
    moment = parse_datetime(stamp.replace(" ", "+"))
    if moment is None or not pk.isdigit():
        return None
    return moment, int(pk)


@dataclass(frozen=True)
class Page:
    rows: list
    older: str | None  # cursor for the next (older) page
    newer: str | None  # cursor for the previous (newer) page


def paginate(
    queryset: QuerySet,
    *,
    time_field: str,
    size: int,
    after: str | None = None,
    before: str | None = None,
) -> Page:
    """One page of ``queryset`` newest first. ``after`` = the cursor of the last row
    seen (give older rows); ``before`` = the cursor of the first row seen (give
    newer rows, still shown newest first)."""
    back = decode(before)
    if back is not None:
        moment, pk = back
        newer_rows = list(
            queryset.filter(
                Q(**{f"{time_field}__gt": moment})
                | Q(**{time_field: moment, "pk__gt": pk})
            ).order_by(time_field, "pk")[: size + 1]
        )
        has_newer = len(newer_rows) > size
        rows = list(reversed(newer_rows[:size]))
        return Page(
            rows=rows,
            older=_cursor(rows[-1], time_field) if rows else None,
            newer=_cursor(rows[0], time_field) if rows and has_newer else None,
        )
    cursor = decode(after)
    if cursor is not None:
        moment, pk = cursor
        queryset = queryset.filter(
            Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "pk__lt": pk})
        )
    rows = list(queryset.order_by(f"-{time_field}", "-pk")[: size + 1])
    has_older = len(rows) > size
    rows = rows[:size]
    return Page(
        rows=rows,
        older=_cursor(rows[-1], time_field) if rows and has_older else None,
        newer=_cursor(rows[0], time_field) if rows and cursor is not None else None,
    )


def _cursor(row, time_field: str) -> str:
    return encode(getattr(row, time_field), row.pk)
