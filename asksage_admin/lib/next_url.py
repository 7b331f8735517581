"""The one check of a ``next`` parameter (where to go after an action or sign-in)."""

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

_MAX_LENGTH = 2_000


def safe_next(request: HttpRequest, default: str) -> str:
    """``next`` from the form or the query when it is a path on this site, else
    ``default``. Only absolute paths ("/panel/…") qualify: a bare word such as
    "-1" would be taken by ``redirect`` for a view name and fail, and control
    characters or unpaired surrogates cannot be put in a Location header."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if (
        not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or len(target) > _MAX_LENGTH
        or any(
            ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in target
        )
    ):
        return default
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
