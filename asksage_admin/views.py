from django.conf import settings
from django.db import DatabaseError, connection
from django.http import (
    HttpRequest,
    HttpResponseRedirect,
    HttpResponseServerError,
    JsonResponse,
)
from django.shortcuts import render
from django.template import loader
from django.templatetags.static import static
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers a query, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "up"})


def server_error(request: HttpRequest):
    """500: JSON for the API, a friendly page elsewhere; never a stack trace."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": "server_error", "detail": "Something went wrong on our side."},
            status=500,
        )
    return HttpResponseServerError(loader.get_template("500.html").render())


@cache_control(max_age=86_400, public=True)
@require_GET
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers and tools ask for whatever the page says: a
    redirect to the static icon (whose own URL is cached for a year by WhiteNoise),
    itself cached for a day. Not permanent, so a new icon is seen within a day."""
    return HttpResponseRedirect(static("favicon.ico"))


@require_GET
def terms(request: HttpRequest):
    """The terms of service (public), accepted at registration."""
    return render(
        request,
        "site/terms.html",
        {
            "TOKEN_LOT": settings.TOKEN_LOT,
            "MIN_USER_TOKENS": settings.MIN_USER_TOKENS,
        },
    )
