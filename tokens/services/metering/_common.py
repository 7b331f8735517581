"""Errors, retries, constants and the user/model resolution shared by
authorize, balance and usage."""

import datetime as dt
from functools import wraps
from typing import Any

from django.db import DatabaseError, IntegrityError, OperationalError
from django.db.models import Exists, OuterRef

from accounts.emails import canonical_email
from accounts.models import ServiceKey, User
from tokens.models import AIModel, TokenType

TYPES = {TokenType.INFERENCE.value, TokenType.EMBEDDING.value}
MAX_BATCH = 1000
MAX_ID = 128
EXCERPT_CHARS = 2000
RETRIES = 3
# Usage may be reported a little ahead of our clock; further ahead is an error.
FUTURE_SKEW = dt.timedelta(minutes=5)


class MeteringError(Exception):
    """A refusal with its API error code and HTTP status."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class ServiceUnavailable(Exception):
    """The database is unreachable or a transaction kept failing: nothing saved."""


def _retryable(error: DatabaseError) -> bool:
    cause = getattr(error, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate in {"40001", "40P01"}:
        return True
    return "database is locked" in str(error)


def with_retries(func):
    """Run ``func`` (which opens its own transaction) up to RETRIES times on
    serialization failures and deadlocks; ServiceUnavailable when it still fails
    or the database cannot be reached."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        for attempt in range(1, RETRIES + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as error:
                if not _retryable(error) or attempt == RETRIES:
                    raise ServiceUnavailable(str(error)) from error
            except IntegrityError:
                # A concurrent request created the same row (a hold's request_id,
                # a counter): run again and find it.
                if attempt == RETRIES:
                    raise
        raise AssertionError("unreachable")

    return wrapper


# --- resolution shared by authorize, balance and usage ------------------------------


# The one answer for a user the key may not know of. It does not echo the email,
# so that it is the same, byte for byte, whoever was asked about.
UNKNOWN_USER = "No user with this email."


def hidden_from(key: ServiceKey, user: User | None) -> bool:
    """Whether ``key`` must not learn that ``user`` exists: no such user, or a
    key bound to an organization asking about anyone outside it (a user of
    another organization or of none), so that an organization's key cannot tell
    which emails have an account (registration and reset never tell either)."""
    return user is None or bool(
        key.organization_id and user.organization_id != key.organization_id
    )


def _user_refusal(key: ServiceKey, user: User | None) -> MeteringError | None:
    if hidden_from(key, user):
        return MeteringError(404, "unknown_user", UNKNOWN_USER)
    if user.organization is None or not user.organization.is_active:
        return MeteringError(
            403, "forbidden", "This user is not in an active Enterprise Account."
        )
    if user.is_banned:
        return MeteringError(403, "user_banned", "This user is banned.")
    if not user.is_paid:
        return MeteringError(
            403, "user_not_paid", "This user's account is deactivated (not paid)."
        )
    return None


def resolve_user(key: ServiceKey, email: str) -> User:
    user = (
        User.objects.select_related("organization")
        .filter(email=canonical_email(email))
        .first()
    )
    refusal = _user_refusal(key, user)
    if refusal:
        raise refusal
    return user


def _model_refusal(model: AIModel | None, key: str, allowed: set[int] | None):
    if model is None or not model.is_active:
        return MeteringError(404, "unknown_model", f"No active model {key!r}.")
    if allowed and model.pk not in allowed:
        return MeteringError(
            403,
            "model_not_allowed",
            f"Model {key!r} is not allowed for this organization.",
        )
    return None


def allowed_model_ids(org_id: int) -> set[int]:
    """The org's allowed models; empty means all."""
    return set(
        AIModel.allowed_for.through.objects.filter(organization_id=org_id).values_list(
            "aimodel_id", flat=True
        )
    )


def resolve_model(key: str, org_id: int) -> AIModel:
    """The model, with the organization's allowed-models check in the same query."""
    allowed = AIModel.allowed_for.through.objects.filter(organization_id=org_id)
    model = (
        AIModel.objects.filter(key=key)
        .annotate(
            restricted=Exists(allowed),
            permitted=Exists(allowed.filter(aimodel_id=OuterRef("pk"))),
        )
        .first()
    )
    # The set _model_refusal expects: empty = every model is allowed.
    allowed_ids: set[int] = set()
    if model is not None and model.restricted:
        allowed_ids = {model.pk} if model.permitted else {0}
    refusal = _model_refusal(model, key, allowed_ids)
    if refusal:
        raise refusal
    return model
