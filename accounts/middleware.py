import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts import sessions
from asksage_admin.db_errors import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)

# last_active_at is written at most this often per user, to keep requests read-only.
LAST_ACTIVE_RESOLUTION_SECONDS = 300
User = get_user_model()


class BannedUserMiddleware:
    """Ends the session of a user who was banned or deactivated since signing in,
    and keeps ``last_active_at`` roughly current."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if user.is_banned or not user.is_active:
                logout(request)
                messages.error(
                    request,
                    _("Your account has been banned. Contact your administrator."),
                )
                return redirect("accounts:login")
            now = timezone.now()
            last = user.last_active_at
            if last is None or (now - last).total_seconds() > (
                LAST_ACTIVE_RESOLUTION_SECONDS
            ):
                User.objects.filter(pk=user.pk).update(last_active_at=now)
                user.last_active_at = now
        return self.get_response(request)


class SessionLifetimeMiddleware:
    """Ends a signed-in session past its absolute lifetime (SESSION_ABSOLUTE_SECONDS,
    from sign-in) or, for people who can open the panel, after
    ADMIN_SESSION_IDLE_SECONDS without a request; they are sent to sign in with a
    message. The rules and the session marks are in ``accounts.sessions``.

    The gateway API (``/api/``) never uses cookie sessions, so it is left alone:
    it always answers JSON."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            return self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = sessions.now_seconds()
            reason = sessions.expiry_reason(request.session, user, now=now)
            if reason is not None:
                return self.end(request, reason)
            sessions.touch(request.session, user, now=now)
        response = self.get_response(request)
        # A sign-in during this request: Django's login() gave the session a new key
        # (and flushed any other user's data); its lifetime starts now.
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and sessions.STARTED_AT not in request.session
        ):
            sessions.stamp(request.session, user)
        return response

    def end(self, request, reason: str):
        next_url = request.get_full_path() if request.method in ("GET", "HEAD") else ""
        logout(request)
        if reason == sessions.IDLE:
            minutes = max(1, settings.ADMIN_SESSION_IDLE_SECONDS // 60)
            message = ngettext(
                "You were signed out after %(n)d minute without activity. "
                "Sign in again to continue.",
                "You were signed out after %(n)d minutes without activity. "
                "Sign in again to continue.",
                minutes,
            ) % {"n": minutes}
        else:
            hours = max(1, settings.SESSION_ABSOLUTE_SECONDS // 3600)
            message = ngettext(
                "Your session ended after %(n)d hour. Sign in again to continue.",
                "Your session ended after %(n)d hours. Sign in again to continue.",
                hours,
            ) % {"n": hours}
        messages.warning(request, message)
        if next_url:
            return redirect_to_login(next_url)
        return redirect(settings.LOGIN_URL)


class StaffMFAMiddleware:
    """Superusers pass MFA before the staff site too (when MFA is required): it can
    change every organization. Sales staff are not org admins and are not asked."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            request.path.startswith("/staff/")
            and user is not None
            and user.is_authenticated
            and user.is_superuser
            and user.needs_mfa
            and not user.is_verified()
        ):
            from accounts.access import mfa_redirect

            return mfa_redirect(request)
        return self.get_response(request)


class SessionSaveMiddleware(SessionMiddleware):
    """Django's SessionMiddleware, but a session that cannot be saved after the view
    has run never ends in the bare "Bad Request (400)".

    The session is saved after the view, so by then the view's transaction has
    committed: when the save fails (the database connection dropped, or the session
    row was deleted meanwhile, e.g. by a sign-out in another tab) the change may well
    be saved, and only the answer and its message are lost. Django raises
    ``SessionInterrupted`` then; this answers a page that says so and where to check
    instead: 503 with ``Retry-After`` when the database failed, 400 (and the stale
    cookie deleted) when the session was gone."""

    def process_response(self, request, response):
        try:
            return super().process_response(request, response)
        except SessionInterrupted as error:
            down = isinstance(_root_cause(error), (OperationalError, InterfaceError))
            logger.warning(
                "Session not saved after %s %s (%s): answered the after-commit page",
                request.method,
                request.path,
                "database unavailable" if down else "session gone",
            )
            return interrupted_response(request, response, database_down=down)


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
    return error


def interrupted_response(request, original, *, database_down: bool) -> HttpResponse:
    """The after-commit page (standalone: no database, no context processors)."""
    back = request.headers.get("Referer", "")
    if not back or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}
    ):
        back = "/"
    in_panel = request.path.startswith("/panel/")
    html = loader.get_template("session_interrupted.html").render(
        {
            "database_down": database_down,
            "write": request.method not in ("GET", "HEAD", "OPTIONS"),
            "back_url": back,
            "activity_url": reverse("analytics:activity") if in_panel else "",
        }
    )
    response = HttpResponse(html, status=503 if database_down else 400)
    for header, value in original.items():
        if header.lower() not in ("content-type", "content-length", "location"):
            response.headers.setdefault(header, value)
    response["Cache-Control"] = "no-store"
    if database_down:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    else:
        response.delete_cookie(
            settings.SESSION_COOKIE_NAME,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
    return response
