"""Exceptions mirroring the gateway API's error codes (docs/gateway-api.md, Calls).

Every refusal of the platform is a ``BudgetError`` with the HTTP ``status``, the
API's ``code`` and ``detail``, and the rest of the body in ``extra``. The class
tells what to do: ``InsufficientTokens`` (402, with ``remaining``) and
``Forbidden`` (403) are answers about the user; ``PlatformUnavailable`` (503, a
5xx, a timeout or no connection) means the platform could not answer and nothing
was recorded; the others are mistakes of the caller or its configuration."""

from typing import Any

_CLASS_STATUS: Any = object()  # "the class's status" (None is a status here)


class BudgetError(Exception):
    """A refusal of the platform, or no answer from it."""

    status: int | None = None
    code: str = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = _CLASS_STATUS,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        if status is not _CLASS_STATUS:
            self.status = status
        if code is not None:
            self.code = code
        self.extra = extra or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.detail!r})"


class InvalidRequest(BudgetError):
    """400 ``invalid_request``: a field is missing or invalid (``fields``)."""

    status, code = 400, "invalid_request"

    @property
    def fields(self) -> dict[str, str]:
        return self.extra.get("fields", {})


class Unauthorized(BudgetError):
    """401 ``unauthorized``: no service key, or an unknown or revoked one."""

    status, code = 401, "unauthorized"


class InsufficientTokens(BudgetError):
    """402 ``insufficient_tokens``: the user has fewer tokens left than asked."""

    status, code = 402, "insufficient_tokens"

    @property
    def remaining(self) -> int:
        return int(self.extra.get("remaining", 0))


class Forbidden(BudgetError):
    """403: the user may not spend tokens (``forbidden``: not in an active
    Enterprise Account)."""

    status, code = 403, "forbidden"


class UserBanned(Forbidden):
    code = "user_banned"


class UserNotPaid(Forbidden):
    code = "user_not_paid"


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"


class NotFound(BudgetError):
    status, code = 404, "not_found"


class UnknownUser(NotFound):
    code = "unknown_user"


class UnknownModel(NotFound):
    code = "unknown_model"


class UnknownHold(NotFound):
    code = "unknown_hold"


class Conflict(BudgetError):
    """409 ``conflict``: a request_id reused for a different authorization."""

    status, code = 409, "conflict"


class PlatformUnavailable(BudgetError):
    """The platform did not answer: 503 ``service_unavailable`` (nothing was
    recorded), another 5xx, a timeout or no connection (``status`` None, code
    ``unreachable``). Raised after the client's retries."""

    status, code = 503, "service_unavailable"


_BY_CODE: dict[str, type[BudgetError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        InsufficientTokens,
        Forbidden,
        UserBanned,
        UserNotPaid,
        ModelNotAllowed,
        NotFound,
        UnknownUser,
        UnknownModel,
        UnknownHold,
        Conflict,
        PlatformUnavailable,
    )
}
_BY_STATUS: dict[int, type[BudgetError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    402: InsufficientTokens,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def error_for(status: int, body: Any) -> BudgetError:
    """The exception for an error answer (its JSON body, or None if not JSON)."""
    body = body if isinstance(body, dict) else {}
    code = str(body.get("error") or "")
    detail = str(body.get("detail") or f"The platform answered HTTP {status}.")
    extra = {k: v for k, v in body.items() if k not in {"error", "detail"}}
    if status >= 500:
        cls: type[BudgetError] = PlatformUnavailable
    else:
        cls = _BY_CODE.get(code) or _BY_STATUS.get(status, BudgetError)
        if cls.status != status:  # a code under an unexpected status: by status
            cls = _BY_STATUS.get(status, BudgetError)
    return cls(detail, status=status, code=code or cls.code, extra=extra)
