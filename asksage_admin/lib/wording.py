"""Django's own form and validator messages, said in the product's words
(docs/product.md, Numbers and dates).

Django's defaults leak the framework ("Ensure this value is less than or equal to
1000000000000000.", "Select a valid choice. bogus is not one of the available
choices.") on every form that does not spell its own message: filters, the staff
site, a field added later. They are replaced once, here, before any form class is
built (``asksage_admin/__init__.py`` calls ``install``), so every field of every
form, including django-filter's and the Django admin's, speaks the same way;
``tests/test_hostile_input.py`` fails on any page that still shows the old wording.
Forms may still give a field a more specific message of their own.
"""

from django import forms
from django.core import validators
from django.utils.translation import gettext_lazy as _

_INSTALLED = False


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    validators.MaxValueValidator.message = _(
        "That number is too large: enter at most %(limit_value)s."
    )
    validators.MinValueValidator.message = _(
        "That number is too small: enter at least %(limit_value)s."
    )
    validators.MaxLengthValidator.message = _(
        "Keep this to %(limit_value)d characters or fewer (it has %(show_value)d)."
    )
    validators.MinLengthValidator.message = _(
        "Use at least %(limit_value)d characters (it has %(show_value)d)."
    )
    choose = _("Choose one of the options offered.")
    forms.ChoiceField.default_error_messages["invalid_choice"] = choose
    forms.MultipleChoiceField.default_error_messages["invalid_choice"] = choose
    forms.MultipleChoiceField.default_error_messages["invalid_list"] = choose
    forms.ModelChoiceField.default_error_messages["invalid_choice"] = choose
    forms.ModelMultipleChoiceField.default_error_messages["invalid_choice"] = choose
    forms.ModelMultipleChoiceField.default_error_messages["invalid_pk_value"] = choose
    forms.DecimalField.default_error_messages["invalid"] = _(
        "Enter a number, such as 25 or 99.9."
    )
    forms.FloatField.default_error_messages["invalid"] = _(
        "Enter a number, such as 25 or 99.9."
    )
    forms.DateField.default_error_messages["invalid"] = _(
        "Enter a date as YYYY-MM-DD, such as 2026-12-31."
    )
    forms.DateTimeField.default_error_messages["invalid"] = _(
        "Enter a date and time as YYYY-MM-DD HH:MM, such as 2026-12-31 23:59."
    )
    forms.SplitDateTimeField.default_error_messages["invalid_date"] = _(
        "Enter a date as YYYY-MM-DD, such as 2026-12-31."
    )
    forms.SplitDateTimeField.default_error_messages["invalid_time"] = _(
        "Enter a time as HH:MM, such as 23:59."
    )
    validators.DecimalValidator.messages.update(
        {
            "invalid": _("Enter a number, such as 25 or 99.9."),
            "max_digits": _("Use at most %(max)s digits."),
            "max_decimal_places": _("Use at most %(max)s decimal places."),
            "max_whole_digits": _("That number is too large."),
        }
    )
