"""The one date and time format of the product (docs/product.md, Numbers and dates):
ISO-like dates (2026-12-05) and times in UTC (2026-12-05 14:30 UTC), everywhere a
template or the staff site shows a date (``|date``, ``|date:"DATETIME_FORMAT"``,
django-tables2's date columns). Django's own English formats ("Dec. 5, 2026") would
otherwise win over the DATE_FORMAT setting, so they are replaced here
(``FORMAT_MODULE_PATH`` in settings)."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = r"Y-m-d H:i \U\T\C"
SHORT_DATETIME_FORMAT = r"Y-m-d H:i \U\T\C"
TIME_FORMAT = r"H:i \U\T\C"
YEAR_MONTH_FORMAT = "F Y"
MONTH_DAY_FORMAT = "F j"
FIRST_DAY_OF_WEEK = 1  # Monday
