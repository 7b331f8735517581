from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import User


class SignInForm(AuthenticationForm):
    """Email + password; a banned user who gave the right password is told why."""

    username = forms.EmailField(
        label=_("Email"),
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "That email and password do not match an account. Check both and try "
            "again; after 5 failed attempts sign-in is locked for a while."
        ),
        "banned": _(
            "This account has been banned. Contact your organization's administrator."
        ),
        "inactive": _("This account is inactive. Contact your administrator."),
    }

    def confirm_login_allowed(self, user):
        if user.is_banned:
            raise ValidationError(self.error_messages["banned"], code="banned")
        super().confirm_login_allowed(user)


class RegistrationForm(forms.Form):
    email = forms.EmailField(
        label=_("Work email"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150)
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 10 characters, not common, not only digits."),
    )
    password2 = forms.CharField(
        label=_("Confirm password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    accept_terms = forms.BooleanField(
        label=_("I accept the terms of service"),
        error_messages={"required": _("You must accept the terms of service.")},
    )

    def clean_email(self) -> str:
        # No "already registered" error: that would tell anyone which emails have
        # an account. accounts.services.user_register handles a taken email.
        return self.cleaned_data["email"].strip().lower()

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords do not match."))
        elif p1:
            probe = User(
                email=cleaned.get("email", ""),
                first_name=cleaned.get("first_name", ""),
                last_name=cleaned.get("last_name", ""),
            )
            try:
                password_validation.validate_password(p1, probe)
            except ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class OTPCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Authentication code"),
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
            }
        ),
        help_text=_("The 6-digit code from your authenticator app, or a backup code."),
    )

    def clean_code(self) -> str:
        return "".join(self.cleaned_data["code"].split())
