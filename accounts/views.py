from urllib.parse import urlencode

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from accounts import services
from accounts.forms import OTPCodeForm, RegistrationForm, ResetRequestForm, SignInForm
from accounts.sessions import end_user_sessions
from asksage_admin.lib.next_url import safe_next


def _safe_next(request: HttpRequest, default: str) -> str:
    return safe_next(request, default)


def _with_next(name: str, target: str) -> str:
    url = reverse(name)
    return f"{url}?{urlencode({'next': target})}" if target else url


def home(request: HttpRequest) -> HttpResponse:
    """Send each person to where they work: admins to the panel, members to /me/."""
    user = request.user
    if not user.is_authenticated:
        return redirect("accounts:login")
    if user.is_org_admin or user.is_superuser:
        return redirect("panel")
    return redirect("tokens:me")


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        user = self.request.user
        url = super().get_success_url()
        if user.needs_mfa:
            name = (
                "accounts:mfa_verify"
                if services.user_has_mfa(user)
                else "accounts:mfa_setup"
            )
            return _with_next(name, url)
        return url


class SignOutView(auth_views.LogoutView):
    http_method_names = ["post", "options"]


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The same answer whether or not the email already has an account (then its
        # owner gets an email instead): the page reveals nothing about who is here.
        services.user_register(
            email=form.cleaned_data["email"],
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
            password=form.cleaned_data["password1"],
        )
        messages.success(
            request,
            _(
                "Thank you. We sent an email to %(email)s: follow the link in it to "
                "verify your address, then sign in."
            )
            % {"email": form.cleaned_data["email"]},
        )
        return redirect("accounts:login")
    return render(request, "accounts/register.html", {"form": form})


@require_http_methods(["GET"])
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user, newly = services.user_verify_email(token=token)
    except ValidationError as error:
        return render(
            request,
            "accounts/verify_failed.html",
            {"error": error.messages[0]},
            status=400,
        )
    if newly:
        messages.success(request, _("Thank you: your email address is verified."))
        if user.organization_id is None:
            # The way in (docs/product.md, Sales flow): /me/ shows the call to action.
            messages.info(
                request,
                _(
                    "Next: request an Enterprise Account for your organization from "
                    "your account page, or ask sales staff to add you to your "
                    "organization's existing one."
                ),
            )
    else:
        messages.info(request, _("This link was already used: your email is verified."))
    return redirect("home")


@login_required
@require_http_methods(["POST"])
def resend_verification(request: HttpRequest) -> HttpResponse:
    if not request.user.is_email_verified:
        services.user_send_verification_email(user=request.user)
        messages.success(
            request,
            _("We sent a new verification link to %(email)s.")
            % {"email": request.user.email},
        )
    return redirect("home")


@login_required
@require_http_methods(["GET", "POST"])
def mfa_setup(request: HttpRequest) -> HttpResponse:
    user = request.user
    if services.user_has_mfa(user):
        return redirect(_with_next("accounts:mfa_verify", _safe_next(request, "")))
    device = services.mfa_device_for_enrolment(user=user)
    form = OTPCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = services.mfa_enrol(
                user=user, code=form.cleaned_data["code"]
            )
        except ValidationError as error:
            form.add_error("code", error)
        else:
            otp_login(request, device)
            request.session["mfa_backup_codes"] = codes
            request.session["mfa_next"] = _safe_next(request, reverse("home"))
            return redirect("accounts:mfa_backup_codes")
    qr = segno.make(device.config_url, error="m")
    return render(
        request,
        "accounts/mfa_setup.html",
        {
            "form": form,
            "qr_data_uri": qr.svg_data_uri(scale=5, border=2),
            "secret": _base32_secret(device),
            "next": _safe_next(request, ""),
        },
    )


def _base32_secret(device) -> str:
    from base64 import b32encode

    raw = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@login_required
@require_http_methods(["GET"])
def mfa_backup_codes(request: HttpRequest) -> HttpResponse:
    codes = request.session.pop("mfa_backup_codes", None)
    if not codes:
        return redirect("home")
    return render(
        request,
        "accounts/mfa_backup_codes.html",
        {"codes": codes, "next": request.session.pop("mfa_next", reverse("home"))},
    )


@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not services.user_has_mfa(user):
        return redirect(_with_next("accounts:mfa_setup", _safe_next(request, "")))
    form = OTPCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = services.mfa_check(user=user, code=form.cleaned_data["code"])
        if device is None:
            form.add_error("code", _("That code is not right. Try the current code."))
        else:
            otp_login(request, device)
            return redirect(_safe_next(request, reverse("home")))
    return render(
        request,
        "accounts/mfa_verify.html",
        {"form": form, "next": _safe_next(request, "")},
    )


class PasswordResetView(auth_views.PasswordResetView):
    form_class = ResetRequestForm
    template_name = "accounts/password_reset.html"
    email_template_name = "emails/password_reset.txt"
    html_email_template_name = "emails/password_reset.html"
    subject_template_name = "emails/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        services.user_password_reset_requested(email=form.cleaned_data["email"])
        # Absolute links in e-mails come from SITE_URL, never from the request's
        # Host (docs/operations.md, Configuration): the same base as every other
        # e-mail, and a forged Host header cannot redirect the reset link.
        self.extra_email_context = {"SITE_URL": settings.SITE_URL}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_password_reset_done(user=form.user)
        # The new password already voids the user's other sessions (Django checks the
        # session's password hash on each request); delete them now as well.
        end_user_sessions(
            user_ids=[form.user.pk], keep=self.request.session.session_key
        )
        return response
