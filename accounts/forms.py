from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.emails import canonical_email, validate_plain_email
from accounts.models import User


class CanonicalEmailField(forms.EmailField):
    """An e-mail field whose value is the canonical form (accounts.emails). With
    ``plain_only`` an address that is not ASCII after NFKC is refused with a clear
    message (and only that message) before the syntax check."""

    def __init__(self, *, plain_only: bool = False, **kwargs):
        self.plain_only = plain_only
        super().__init__(**kwargs)

    def run_validators(self, value):
        if self.plain_only and value not in self.empty_values:
            validate_plain_email(value)
        super().run_validators(canonical_email(value))

    def clean(self, value):
        return canonical_email(super().clean(value)) or ""


class SignInForm(AuthenticationForm):
    """Email + password; a banned user who gave the right password is told why."""

    # Canonical, so that the lockout key, the account look-up and the audit trail
    # see the same address whatever spelling was typed.
    username = CanonicalEmailField(
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
    email = CanonicalEmailField(
        plain_only=True,
        label=_("Work email"),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
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

    # No "already registered" error: that would tell anyone which emails have an
    # account. accounts.services.user_register handles a taken email.

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


class ResetRequestForm(PasswordResetForm):
    """Password reset by the canonical e-mail, compared exactly with the stored one
    (Django's form matches with ``iexact`` first)."""

    email = CanonicalEmailField(
        label=_("Email"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def get_users(self, email):
        users = User.objects.filter(email=canonical_email(email), is_active=True)
        return (u for u in users if u.has_usable_password())


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
