"""Errors, retries, constants and the user/model resolution shared by
authorize, balance and usage."""

import datetime as dt
from functools import wraps

from django.db import DatabaseError, IntegrityError, OperationalError

from accounts.emails import canonical_email
from accounts.models import ServiceKey
from asksage_admin.lib.errors import DomainError, NotFound, NotPermitted
from tokens.models import TOKEN_TYPES
from tokens.services.metering import hot
from tokens.services.metering.hot import Member

TYPES = set(TOKEN_TYPES)
MAX_BATCH = 1000
MAX_ID = 128
EXCERPT_CHARS = 2000
RETRIES = 3
# Usage may be reported a little ahead of our clock; further ahead is an error.
FUTURE_SKEW = dt.timedelta(minutes=5)


# The gateway's refusals are domain errors (asksage_admin/lib/errors.py): a code, a
# message and extra facts, never an HTTP status; ``api/errors.py`` maps them.
MeteringError = DomainError


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


def hidden_from(key: ServiceKey, user: Member | None) -> bool:
    """Whether ``key`` must not learn that ``user`` exists: no such user, or a
    key bound to an organization asking about anyone outside it (a user of
    another organization or of none), so that an organization's key cannot tell
    which emails have an account (registration and reset never tell either)."""
    return user is None or bool(
        key.organization_id and user.organization_id != key.organization_id
    )


def _user_refusal(key: ServiceKey, user: Member | None) -> DomainError | None:
    if hidden_from(key, user):
        return NotFound(UNKNOWN_USER, code="unknown_user")
    if not user.organization_active:
        return NotPermitted(
            "This user is not in an active Enterprise Account.", code="forbidden"
        )
    if user.is_banned:
        return NotPermitted("This user is banned.", code="user_banned")
    if not user.is_paid:
        return NotPermitted(
            "This user's account is deactivated (not paid).", code="user_not_paid"
        )
    return None


def resolve_user(key: ServiceKey, email: str) -> Member:
    """The user a call names, or its refusal."""
    user = hot.members({canonical_email(email)}).get(canonical_email(email))
    refusal = _user_refusal(key, user)
    if refusal:
        raise refusal
    return user


def resolve_user_and_model(
    key: ServiceKey, model_key: str, found: tuple[Member, hot.ModelCheck] | None
) -> tuple[Member, int]:
    """The user and the model (its id) of an authorization, read by
    ``hot.member_and_model_sql``: the user with the model's id if it is active, and
    the organization's allowed-models check (none listed = every model allowed).
    The user's refusals come first, then the model's."""
    user, model = found if found else (None, None)
    refusal = _user_refusal(key, user)
    if refusal:
        raise refusal
    if model.model_id is None:
        raise NotFound(f"No active model {model_key!r}.", code="unknown_model")
    if model.restricted and not model.permitted:
        raise NotPermitted(
            f"Model {model_key!r} is not allowed for this organization.",
            code="model_not_allowed",
        )
    return user, model.model_id
