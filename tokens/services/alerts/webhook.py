"""The alerts' webhook (docs/security.md, Outgoing webhooks): the URL's checks
and the POST.

The URL is checked when it is saved and again before every call, because a
host name's address can change after it was saved: https only (plain http too in
DEBUG or DEMO_MODE), no credentials in it, and every address its host resolves to
public (no loopback, private, link-local, reserved or multicast address: the
platform must not be usable to reach its own network, SSRF). The call has a short
timeout and follows no redirect (a redirect could lead to an address that was not
checked). The standard library is enough for one POST (no new dependency)."""

import ipaddress
import json
import logging
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3


def _relaxed() -> bool:
    return bool(settings.DEBUG or settings.DEMO_MODE)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (patched in tests: no DNS in the suite)."""
    return sorted(
        {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    )


def check_url(url: str) -> str:
    """The webhook URL, stripped, or a ValidationError saying what is refused."""
    url = (url or "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. "https://[::1" (an unclosed IPv6 address)
        raise ValidationError(
            _("Enter a valid webhook URL."), code="webhook_invalid"
        ) from None
    allowed = ("https", "http") if _relaxed() else ("https",)
    if parts.scheme not in allowed:
        raise ValidationError(
            _("The webhook URL must start with https://."), code="webhook_scheme"
        )
    if not hostname or parts.username or parts.password:
        raise ValidationError(
            _("Enter a webhook URL with a host name and no user name or password."),
            code="webhook_host",
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolve(hostname, port)
    except (OSError, ValueError):
        raise ValidationError(
            _("The webhook host %(host)s could not be found.") % {"host": hostname},
            code="webhook_unknown_host",
        ) from None
    if not addresses or not all(_public(a) for a in addresses):
        raise ValidationError(
            _(
                "The webhook host %(host)s is a private, loopback or reserved "
                "address: only public hosts can receive alerts."
            )
            % {"host": hostname},
            code="webhook_private",
        )
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, payload: dict) -> None:
    """POST ``payload`` as JSON; raises on any failure (checked URL, 2xx only)."""
    check_url(url)
    # The scheme was checked above: https (or http in DEBUG/DEMO_MODE) only.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "asksage-admin"},
        method="POST",
    )
    with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
        if not 200 <= response.status < 300:
            raise OSError(f"webhook answered {response.status}")
