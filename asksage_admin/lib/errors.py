"""Domain errors: how a service refuses (docs/development.md, House style).

A service raises one of these, never an HTTP status. Each carries a ``code`` (stable,
for programs and tests) and a ``message`` a person can act on, plus any ``extra``
facts a surface may show (the gateway's ``remaining``, ``fields``). Each surface
maps them in one place: the JSON surfaces (the gateway API and the admin API:
``api/errors.py``) take the status from ``HTTP_STATUS`` below and answer
``{"error": code, "detail": message, **extra}``; the panel and the staff site
through Django's own paths: every refusal but ``NotPermitted`` is a
``ValidationError`` (a form shows it, on a field when ``field`` is given), and
``NotPermitted`` is a ``PermissionDenied`` (a 403, never a form message).
"""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError


class DomainError(Exception):
    """A refusal of the domain: nothing was changed."""

    default_code = "invalid"

    def __init__(
        self,
        message: Any,
        *,
        code: str | None = None,
        field: str | None = None,
        **extra,
    ):
        code = code or self.default_code
        if isinstance(self, ValidationError):
            if field:
                ValidationError.__init__(
                    self, {field: [ValidationError(message, code=code)]}
                )
            else:
                ValidationError.__init__(self, message, code=code)
        else:
            Exception.__init__(self, message)
        self.message, self.code, self.field, self.extra = message, code, field, extra

    @property
    def detail(self) -> str:
        return str(self.message)

    def __str__(self) -> str:
        return self.detail


class NotPermitted(DomainError, PermissionDenied):
    """The actor may not do this (docs/security.md, Accounts and security), or the
    gateway refuses this user or model."""

    default_code = "forbidden"


class Refusal(DomainError, ValidationError):
    """A refusal a form can show: the input or the state does not allow it."""


class InvalidInput(Refusal):
    default_code = "invalid_request"


class NotFound(Refusal):
    default_code = "not_found"


class Conflict(Refusal):
    """The state changed or disagrees (already decided, a request id reused)."""

    default_code = "conflict"


class OverAllocation(Refusal):
    """More tokens than the pool's headroom (docs/product.md, Tokens: pool, limits and
    minimum)."""

    default_code = "over_allocation"


class LimitExceeded(Refusal):
    """A user's own limit does not cover what is asked (the gateway's 402)."""

    default_code = "insufficient_tokens"


# The HTTP status of each refusal, for the JSON surfaces (the gateway API and the
# admin API): each builds its own body from the error, with this one status table.
HTTP_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    OverAllocation: 400,
    LimitExceeded: 402,
    NotPermitted: 403,
    NotFound: 404,
    Conflict: 409,
}


def http_status(error: DomainError) -> int:
    """The status of ``error`` (its closest class in ``HTTP_STATUS``; 400 when none)."""
    return next((HTTP_STATUS[c] for c in type(error).__mro__ if c in HTTP_STATUS), 400)
