"""The product's conventions for numbers and dates (docs/product.md, Numbers and
dates): one date format (2026-12-05), one date-time format with UTC stated
(2026-12-05 14:30 UTC), set once (asksage_admin/formats/en/formats.py) and used by
every template."""

import datetime as dt
import pathlib
import re

from django.template import Context, Template
from django.utils.formats import date_format

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent / "templates"
MOMENT = dt.datetime(2026, 12, 5, 14, 30, 15, tzinfo=dt.UTC)
# Named formats, month headings, and the activity log's seconds.
ALLOWED = {"DATE_FORMAT", "DATETIME_FORMAT", "F Y", "F", "Y", "Y-m-d H:i:s"}


def render(text: str, **context) -> str:
    return Template(text).render(Context(context))


def test_dates_and_times_have_one_format_with_utc_stated():
    assert render("{{ d|date }}", d=MOMENT) == "2026-12-05"
    assert render('{{ d|date:"DATETIME_FORMAT" }}', d=MOMENT) == "2026-12-05 14:30 UTC"
    assert date_format(MOMENT.date(), "DATE_FORMAT") == "2026-12-05"


def test_no_template_spells_a_date_format_of_its_own():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        for fmt in re.findall(r'\|date:"([^"]*)"', path.read_text()):
            if fmt not in ALLOWED:
                offenders.append(f"{path.relative_to(TEMPLATES)}: {fmt}")
    assert offenders == []
