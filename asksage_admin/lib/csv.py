"""CSV output that spreadsheets cannot turn into formulas (docs/security.md, Security
guarantees).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
prefixed with ``'``, so Excel, LibreOffice and Google Sheets show it as text instead
of running it. Only strings are escaped: numbers, dates and ``None`` are ours, never
user input, and a negative number must stay a number.
"""

from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell, with formula-leading text made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_rows(writer, rows: Iterable[Iterable[Any]]) -> int:
    """Write each row through ``safe_cell``; returns the number of rows written.

    ``writer`` is a ``csv.writer`` (or anything with ``writerow``); ``rows`` may be a
    lazy iterator, so a large export is streamed, never held in memory.
    """
    count = 0
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        count += 1
    return count


class _Echo:
    """A file-like object whose write returns the line, for streaming."""

    def write(self, value: str) -> str:
        return value


def csv_response(*, filename: str, header: list[str], rows: Iterable[Iterable[Any]]):
    """A streamed CSV download: memory stays flat whatever the number of rows."""
    import csv

    from django.http import StreamingHttpResponse

    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([safe_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
