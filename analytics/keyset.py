"""Keyset pagination for the activity logs (no OFFSET): newest first by
(time, id); a page is "rows strictly older than the cursor" (or, going back,
"strictly newer"), so rows arriving meanwhile never shift a page, at any depth."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime


def encode(time: dt.datetime, pk: int) -> str:
    return f"{time.isoformat()}_{pk}"


# A primary key beyond this does not fit a BigAutoField (PostgreSQL would refuse
# the comparison with an overflow error).
_MAX_PK = 2**63 - 1


class InvalidCursor(ValueError):
    """A cursor that is not one this module made: no such page."""


def decode(cursor: str | None) -> tuple[dt.datetime, int] | None:
    """The (time, id) of a cursor; None for no cursor; ``InvalidCursor`` for one
    that is malformed, names an impossible date ("2026-13-01") or an out-of-range
    id or offset, so the view can say so instead of failing."""
    if not cursor:
        return None
    stamp, _sep, pk = cursor.rpartition("_")
    try:
        moment = parse_datetime(stamp.replace(" ", "+"))
    except (ValueError, OverflowError):
        moment = None
    if (
        moment is None
        or not (pk.isascii() and pk.isdigit())
        or len(pk) > 19
        or int(pk) > _MAX_PK
    ):
        raise InvalidCursor(cursor)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        # Out-of-range offsets or years fail here rather than in the database.
        moment = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise InvalidCursor(cursor) from None
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
