"""The alerts page's settings form (docs/forecasts.md, Alerts). Parsing only: the
rules and their messages are the service's (``tokens/services/alerts/settings.py``)."""

from django import forms
from django.utils.translation import gettext_lazy as _


class ThresholdsField(forms.CharField):
    """Comma-separated whole percentages, e.g. "50, 80, 100"."""

    def to_python(self, value):
        text = super().to_python(value)
        parts = [p.strip().rstrip("%") for p in text.replace(";", ",").split(",")]
        parts = [p for p in parts if p]
        # ASCII digits only: str.isdigit() also accepts "²" and "٣".
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise forms.ValidationError(
                _("Enter whole percentages separated by commas, such as 50, 80, 100.")
            )
        return [int(p) for p in parts]


class AlertSettingsForm(forms.Form):
    org_enabled = forms.BooleanField(
        label=_("E-mail admins when the pool reaches a threshold"), required=False
    )
    org_thresholds = ThresholdsField(
        label=_("Pool thresholds (%)"),
        max_length=40,
        help_text=_("Percent of the month's pool per type used, e.g. 50, 80, 100."),
    )
    runout_enabled = forms.BooleanField(
        label=_("E-mail admins when the pool is projected to run out"),
        required=False,
    )
    user_enabled = forms.BooleanField(
        label=_("E-mail users when they reach a threshold of their limit"),
        required=False,
    )
    user_thresholds = ThresholdsField(
        label=_("User thresholds (%)"),
        max_length=40,
        help_text=_(
            "Percent of a user's limit used; at 100% a paid user's admins are told too."
        ),
    )
    webhook_url = forms.CharField(
        label=_("Webhook URL"),
        required=False,
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/…"}),
        help_text=_(
            "Optional. Receives each alert as JSON (Slack-compatible text plus the "
            "fields); https, public hosts only."
        ),
    )

    @classmethod
    def initial_from(cls, settings) -> "AlertSettingsForm":
        return cls(
            initial={
                "org_enabled": settings.org_enabled,
                "org_thresholds": ", ".join(map(str, settings.org_thresholds)),
                "runout_enabled": settings.runout_enabled,
                "user_enabled": settings.user_enabled,
                "user_thresholds": ", ".join(map(str, settings.user_thresholds)),
                "webhook_url": settings.webhook_url,
            }
        )
