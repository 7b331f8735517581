"""A friendly 503 when the database is unreachable (docs/security.md, Security
guarantees: faults; docs/gateway-api.md).

``OperationalError`` and ``InterfaceError`` mean the database cannot be reached (or
the connection broke): not a bug in the page, and not something a person can fix but
by waiting. Pages answer ``templates/503.html`` (standalone: no database, no context
processors) and everything under ``/api/`` answers ``{"error":
"service_unavailable", …}``, both with status 503 and ``Retry-After``; never a
stack trace.

Two ways in, because Django turns an exception into a 500 at the layer that raised it:

- from a view: ``process_exception`` answers the 503 directly, and it passes out
  through every middleware (CSP, X-Frame-Options, …) like any response;
- from a middleware (a signed-in request's session and user are loaded there, so with
  the database down this is the usual case): ``got_request_exception`` marks the
  request, and on the way out this middleware replaces that 500 with the 503, keeping
  the headers already set and adding the security headers the inner layers that
  were skipped would have set.

Placed right after SecurityMiddleware, so HSTS, nosniff, the referrer policy and the
request id still apply to it.
"""

import logging
import sys

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

logger = logging.getLogger(__name__)

UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
_MARK = "_database_unavailable"


def unavailable_response(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "error": "service_unavailable",
                "detail": "The service cannot answer now: its database is "
                "unreachable. Nothing was changed; retry in a moment.",
            },
            status=503,
        )
    else:
        # No request: no context processors, which may need the database.
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _mark_request(sender, request=None, **kwargs) -> None:
    """got_request_exception: runs inside Django's handler of the exception."""
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, UNAVAILABLE):
        setattr(request, _MARK, True)


got_request_exception.connect(_mark_request, dispatch_uid="asksage_admin.db_errors")


def _security_headers(response: HttpResponse) -> None:
    """What XFrameOptionsMiddleware and CSPMiddleware would have added."""
    from csp.utils import build_policy

    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", build_policy())


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 500 and getattr(request, _MARK, False):
            replacement = unavailable_response(request)
            for header, value in response.items():
                if header.lower() not in ("content-type", "content-length"):
                    replacement.headers.setdefault(header, value)
            _security_headers(replacement)
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, UNAVAILABLE):
            logger.error(
                "Database unavailable: %s %s answered 503",
                request.method,
                request.path,
                exc_info=exception,
            )
            return unavailable_response(request)
        return None
