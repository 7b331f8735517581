"""The product's conventions for numbers and dates (docs/product.md, Numbers and
dates): one date format (2026-12-05), one date-time format with UTC stated
(2026-12-05 14:30 UTC), set once (asksage_admin/formats/en/formats.py) and used by
every template."""

import datetime as dt
import importlib
import pathlib
import pkgutil
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


# --- numbers --------------------------------------------------------------------------

TYPED = [
    "1,200,000",
    "1 200 000",
    "1_200_000",
    "1\u2009200\u2009000",
    "1\u202f200\u202f000",
]
# Whole-number fields that are not token amounts (minutes, days, percent, a count).
NOT_TOKENS = {
    "cooldown_minutes",
    "lookback_days",
    "headroom_percent",
    "max_approvals_per_day",
}


def every_form_class():
    from django import forms

    from accounts import forms as account_forms
    from analytics import forms as analytics_forms
    from tokens import admin as staff
    from tokens import forms as token_forms

    modules = []
    for package in (token_forms, staff, analytics_forms, account_forms):
        modules.append(package)
        if hasattr(package, "__path__"):  # one module per subdomain
            modules += [
                importlib.import_module(f"{package.__name__}.{info.name}")
                for info in pkgutil.iter_modules(package.__path__)
            ]
    for module in modules:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, forms.BaseForm)
                and value.__module__ == module.__name__
            ):
                yield value


def test_every_whole_number_field_of_every_form_is_the_token_amount_field():
    from django import forms

    from asksage_admin.lib.forms import TokenAmountField, TokenAmountInput

    checked, offenders = 0, []
    for form_class in every_form_class():
        for name, field in form_class.base_fields.items():
            if (
                isinstance(field, forms.IntegerField)
                and not isinstance(field, forms.DecimalField)  # percentages
                and name not in NOT_TOKENS
            ):
                checked += 1
                if not isinstance(field, TokenAmountField) or not isinstance(
                    field.widget, TokenAmountInput
                ):
                    offenders.append(f"{form_class.__name__}.{name}")
    assert offenders == []
    assert checked >= 15  # the staff purchase, the panel and /me/ forms


def test_the_token_amount_field_accepts_separators_and_shows_them():
    from asksage_admin.lib.forms import TokenAmountField

    field = TokenAmountField()
    for typed in TYPED:
        assert field.clean(typed) == 1_200_000, typed
    assert field.widget.format_value(800_000) == "800,000"
    assert field.widget.format_value("800 000") == "800 000"  # as typed


def test_the_staff_purchase_form_takes_separators(db, org):
    import datetime as dt

    from tokens.admin.pool import PurchaseAddForm

    form = PurchaseAddForm(
        {
            "organization": org.pk,
            "payer_email": "billing@acme.example",
            "inference_tokens": "2,000,000",
            "embedding_tokens": "4 000 000",
            "purchased_on": dt.date(2026, 12, 1),
            "starts_on": dt.date(2026, 12, 1),
            "comment": "",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["inference_tokens"] == 2_000_000
    assert form.cleaned_data["embedding_tokens"] == 4_000_000


def test_a_prefilled_limit_shows_separators(admin_client, org):
    from django.urls import reverse

    from tests.factories import UserFactory, fund, give

    fund(org)
    user = UserFactory(organization=org, email="ava@acme.example")
    give(user, 800_000)
    page = admin_client.get(
        reverse("tokens:user_limit_edit", args=[user.pk, "inference"])
    ).content.decode()
    assert 'value="800,000"' in page


def test_durations_are_said_in_words():
    from asksage_admin.lib.durations import human_duration

    assert human_duration(dt.timedelta(minutes=15)) == "15 minutes"
    assert human_duration(dt.timedelta(minutes=1)) == "1 minute"
    assert human_duration(dt.timedelta(hours=1, minutes=30)) == "1 hour 30 minutes"
    assert human_duration(dt.timedelta(days=2, hours=3, minutes=5)) == "2 days 3 hours"
    assert human_duration(None) == ""


def test_counted_messages_agree_with_their_number(admin_client, org):
    """ "Ban 1 user?", not "Ban 1 users?" (ngettext wherever a count is said)."""
    from django.urls import reverse

    from tests.factories import UserFactory, fund

    fund(org)
    ava = UserFactory(organization=org, email="ava@acme.example")
    page = admin_client.post(
        reverse("tokens:user_bulk"), {"action": "ban", "pk": [ava.pk]}
    ).content.decode()
    assert "Ban 1 user?" in page
    assert "1 users" not in page
