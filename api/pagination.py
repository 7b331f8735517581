"""Cursor pagination for the admin API (docs/admin-api.md, Pagination): a page is
the rows after the last one seen in the sort order (sort value, then id), so rows
added or changed meanwhile never shift a page. The cursor is opaque and signed: a
client cannot forge one that reaches outside its query."""

from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet

from api.errors import ApiError

_SALT = "api.pagination.v1"
MAX_PAGE = 200


def encode(value: Any, pk: int) -> str:
    return signing.dumps([value, pk], salt=_SALT, compress=True)


def decode(cursor: str) -> tuple[Any, int]:
    try:
        value, pk = signing.loads(cursor, salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError) as error:
        raise ApiError(
            400,
            "invalid_cursor",
            "This cursor is not one this API gave: start again without it.",
        ) from error
    return value, pk


def page(
    rows: QuerySet, *, field: str, descending: bool, size: int, cursor: str | None
) -> tuple[list, str | None]:
    """(one page of ``rows`` ordered by ``field`` then id, the next page's cursor or
    None). ``field`` must never be NULL (the keyset compares it)."""
    direction = "lt" if descending else "gt"
    if cursor:
        value, pk = decode(cursor)
        rows = rows.filter(
            Q(**{f"{field}__{direction}": value})
            | Q(**{field: value, f"pk__{direction}": pk})
        )
    sign = "-" if descending else ""
    found = list(rows.order_by(f"{sign}{field}", f"{sign}pk")[: size + 1])
    more = len(found) > size
    found = found[:size]
    last = found[-1] if found and more else None
    return found, (encode(_plain(getattr(last, field)), last.pk) if last else None)


def _plain(value: Any) -> Any:
    """A JSON-serializable form of a sort value (datetimes as ISO text)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
