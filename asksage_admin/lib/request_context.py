"""The current request's id and client IP, readable by services without a request.

Services take no ``request`` (docs/development.md, House style), yet every audit event
records the IP and the request id. The request-id middleware stores both here for the
life of the request; outside a request (commands, jobs) they are empty.
"""

from contextvars import ContextVar
from dataclasses import dataclass, replace

from django.conf import settings
from django.http import HttpRequest


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    via: str = ""  # the means when not the panel (an admin API token)


_current: ContextVar[RequestContext] = ContextVar(
    "request_context",
    default=RequestContext(),  # noqa: B039  (frozen: immutable)
)


def current() -> RequestContext:
    return _current.get()


def activate(context: RequestContext):
    return _current.set(context)


def reset(token) -> None:
    _current.reset(token)


def set_via(via: str) -> None:
    """Name the means of the rest of this request (the admin API's token); the
    request-id middleware's reset at the end of the request undoes it."""
    _current.set(replace(_current.get(), via=via))


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For behind NUM_PROXIES."""
    proxies = settings.NUM_PROXIES
    if proxies:
        hops = [
            h.strip()
            for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if h.strip()
        ]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None
