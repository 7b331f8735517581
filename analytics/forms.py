"""The Token Statistics period picker (docs/product.md, Token Statistics): this month, a
chosen month or a date range, and a token type. Every bad value gets a message a person
can act on."""

import datetime as dt
import re

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics.selectors import MAX_RANGE_DAYS, StatsPeriod
from asksage_admin.lib.periods import last_day, period_of
from tokens.models import TokenType

# Dates outside these bounds are typos (year 20225) or would overflow month arithmetic.
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2999, 12, 31)
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodForm(forms.Form):
    """Bound to the query string; ``period`` is inferred from the filled fields when
    absent, so ``?month=2025-03`` and ``?start=…&end=…`` are valid links."""

    CURRENT, MONTH, RANGE = "current", "month", "range"
    ALL = "all"

    period = forms.ChoiceField(
        label=_("Period"),
        required=False,
        choices=[
            (CURRENT, _("This month")),
            (MONTH, _("A month")),
            (RANGE, _("Date range")),
        ],
        widget=forms.Select(attrs={"data-period-mode": ""}),
        error_messages={
            "invalid_choice": _(
                "Choose the period: this month, a month or a date range."
            )
        },
    )
    month = forms.CharField(
        label=_("Month"),
        required=False,
        max_length=7,
        widget=forms.TextInput(
            attrs={"type": "month", "placeholder": "YYYY-MM", "data-period": "month"}
        ),
    )
    start = forms.DateField(
        label=_("From"),
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": _("Enter the start date as YYYY-MM-DD.")},
        widget=forms.DateInput(
            format="%Y-%m-%d", attrs={"type": "date", "data-period": "range"}
        ),
    )
    end = forms.DateField(
        label=_("To"),
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": _("Enter the end date as YYYY-MM-DD.")},
        widget=forms.DateInput(
            format="%Y-%m-%d", attrs={"type": "date", "data-period": "range"}
        ),
    )
    token_type = forms.ChoiceField(
        label=_("Token type"),
        required=False,
        choices=[(ALL, _("All types")), *TokenType.choices],
        error_messages={
            "invalid_choice": _(
                "Choose a token type: all, inference or embedding (not “%(value)s”)."
            )
        },
    )

    def __init__(self, data=None, **kwargs):
        if data is not None and not data.get("period"):
            # Show the mode that will be used, so the picker matches the page.
            data = data.copy()
            data["period"] = self._inferred_mode(data)
        super().__init__(data, **kwargs)

    def clean_month(self) -> dt.date | None:
        value = (self.cleaned_data.get("month") or "").strip()
        if not value:
            return None
        match = _MONTH_RE.match(value)
        month = None
        if match:
            year, number = int(match[1]), int(match[2])
            if 1 <= number <= 12 and EARLIEST.year <= year <= LATEST.year:
                month = dt.date(year, number, 1)
        if month is None:
            raise forms.ValidationError(
                _("Enter the month as YYYY-MM (for example %(example)s).")
                % {"example": timezone.now().strftime("%Y-%m")}
            )
        return month

    def _check_bounds(self, name: str) -> None:
        value = self.cleaned_data.get(name)
        if value is not None and not EARLIEST <= value <= LATEST:
            self.add_error(
                name,
                _("Choose a date between %(first)s and %(last)s.")
                % {"first": EARLIEST.isoformat(), "last": LATEST.isoformat()},
            )

    def clean(self):
        data = super().clean()
        mode = data.get("period") or self._inferred_mode(self.data)
        data["period"] = mode
        data["token_type"] = data.get("token_type") or self.ALL
        if mode == self.MONTH and not data.get("month") and "month" not in self.errors:
            self.add_error("month", _("Choose the month to show (YYYY-MM)."))
        if mode == self.RANGE:
            self._clean_range(data)
        return data

    def _clean_range(self, data: dict) -> None:
        for name, message in (
            ("start", _("Choose the first day of the range.")),
            ("end", _("Choose the last day of the range.")),
        ):
            if data.get(name) is None and name not in self.errors:
                self.add_error(name, message)
        self._check_bounds("start")
        self._check_bounds("end")
        start, end = data.get("start"), data.get("end")
        if self.errors or start is None or end is None:
            return
        if start > end:
            self.add_error(
                "end",
                _("The range ends (%(end)s) before it starts (%(start)s): swap them.")
                % {"start": start.isoformat(), "end": end.isoformat()},
            )
            return
        days = (end - start).days + 1
        if days > MAX_RANGE_DAYS:
            self.add_error(
                "end",
                _(
                    "A range can cover at most 2 years (%(max)s days); this one "
                    "covers %(days)s days. Export a shorter range or several."
                )
                % {"max": f"{MAX_RANGE_DAYS:,}", "days": f"{days:,}"},
            )

    @classmethod
    def _inferred_mode(cls, data) -> str:
        if data.get("start") or data.get("end"):
            return cls.RANGE
        if data.get("month"):
            return cls.MONTH
        return cls.CURRENT

    def stats_period(self) -> StatsPeriod:
        """The validated choice as a period; call after ``is_valid()``."""
        data = self.cleaned_data
        if data["period"] == self.MONTH:
            start, end = data["month"], last_day(data["month"])
        elif data["period"] == self.RANGE:
            start, end = data["start"], data["end"]
        else:
            start = period_of()
            end = last_day(start)
        token_type = data["token_type"]
        types = tuple(TokenType) if token_type == self.ALL else (TokenType(token_type),)
        return StatsPeriod(start=start, end=end, token_types=types)

    def errors_text(self) -> list[str]:
        """Every error as one sentence, for the alert above the page."""
        return [str(error) for errors in self.errors.values() for error in errors]
