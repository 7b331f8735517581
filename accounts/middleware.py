from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _

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
