"""The project's one CSV writer (asksage_admin/lib/csv.py), by property
(docs/security.md, Security guarantees): a text cell starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return gets a leading ``'``, every other value is written as it
is, and what ``write_rows`` and the streamed ``csv_response`` write reads back through
Python's csv reader (RFC 4180 quoting) as exactly the rows given, each cell through
``safe_cell``.

Text is drawn from every Unicode character except NUL and lone surrogates, weighted
towards what CSV quoting and spreadsheets care about: quotes, commas, CR, LF, tabs,
the formula characters."""

import csv
import datetime as dt
import io
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from asksage_admin.lib.csv import FORMULA_PREFIXES, csv_response, safe_cell, write_rows

SPECIAL = "\"',;\r\n\t =+-@|%!"
characters = st.one_of(
    st.sampled_from(SPECIAL),
    st.characters(codec="utf-8", exclude_characters="\x00"),  # no lone surrogates
)
plain_text = st.text(characters, max_size=30)
formula_text = st.builds(
    lambda prefix, rest: prefix + rest, st.sampled_from(FORMULA_PREFIXES), plain_text
)
text = st.one_of(plain_text, formula_text)
# Values exports write besides text: ours, never escaped (a negative stays a number).
other = st.one_of(
    st.none(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.dates(),
)
cell = st.one_of(text, text, other)
rows = st.lists(st.lists(cell, max_size=8), max_size=8)


def as_read(value) -> str:
    """What csv.reader gives back for a written value."""
    return "" if value is None else str(value)


def expected(rows_) -> list[list[str]]:
    return [[as_read(safe_cell(value)) for value in row] for row in rows_]


def read(text_: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text_, newline="")))


@settings(max_examples=1_000, deadline=None)
@given(value=st.one_of(text, other))
@example(value='=HYPERLINK("http://evil.example","x")')
@example(value="-1")
@example(value=-1)
@example(value="\t=1")
@example(value="\r=1")
@example(value="a=b")
@example(value="")
def test_safe_cell_escapes_formula_text_and_nothing_else(value):
    escaped = safe_cell(value)
    if isinstance(value, str) and value[:1] in FORMULA_PREFIXES:
        assert escaped == "'" + value
    else:
        assert escaped is value


@settings(max_examples=1_000, deadline=None)
@given(rows_=rows, header=st.lists(plain_text, min_size=1, max_size=8))
@example(rows_=[["=1+2", '"quoted"', "a,b", "line\nbreak", "\r\n"]], header=["h"])
@example(rows_=[[], [""], [None], ["", ""]], header=["h"])
def test_both_writers_round_trip_through_the_csv_reader(rows_, header):
    # write_rows over a csv.writer, as commands write files
    buffer = io.StringIO(newline="")
    assert write_rows(csv.writer(buffer), iter(rows_)) == len(rows_)
    assert read(buffer.getvalue()) == expected(rows_)

    # csv_response, as the pages stream downloads
    response = csv_response(filename="export.csv", header=header, rows=iter(rows_))
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="export.csv"'
    streamed = b"".join(response.streaming_content).decode("utf-8")
    assert read(streamed) == [header, *expected(rows_)]


def test_other_values_are_written_as_they_are():
    row = [-5, Decimal("-1.5000"), None, dt.date(2026, 1, 2), "-5"]
    buffer = io.StringIO(newline="")
    write_rows(csv.writer(buffer), [row])
    assert read(buffer.getvalue()) == [["-5", "-1.5000", "", "2026-01-02", "'-5"]]
