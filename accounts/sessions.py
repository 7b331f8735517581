"""Session rules (issue 9): how long a signed-in session lives, and ending every
session of a user whose access was taken away.

- Sign-in cycles the session key (Django's ``login``); sign-out deletes the server
  session (Django's ``logout`` flushes it).
- Every signed-in session carries when it started and, for people who can open the
  admin panel (org admins and superusers), when it was last used. A session older than
  ``SESSION_ABSOLUTE_SECONDS`` ends; a panel session unused for
  ``ADMIN_SESSION_IDLE_SECONDS`` ends (``SessionLifetimeMiddleware`` applies both).
- Banning, deactivating or removing a user from their organization ends all of their
  sessions once the change commits (``end_user_sessions_on_commit``); a password reset
  ends the others (the session-auth-hash check already refuses them at their next
  request; deleting the rows makes it immediate).

Finding a user's sessions: sessions live in the database (``SESSION_ENGINE`` db or
cached_db) and the product may not add a model, so the unexpired rows are read in
chunks and decoded. That is one pass over the live sessions per ban, deactivation or
removal: fine at this product's scale (thousands of sessions), and far rarer than
requests, which pay nothing for it.
"""

from collections.abc import Iterable
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

# Seconds since the epoch, in the session (JSON-serialisable, easy to rewrite in tests).
STARTED_AT = "_session_started_at"
LAST_SEEN_AT = "_session_last_seen_at"
# The last-use time is rewritten at most this often, so that a burst of requests does
# not write the session row on every one; the idle timeout is precise to this much.
LAST_SEEN_RESOLUTION_SECONDS = 60
DECODE_CHUNK = 2000
DELETE_BATCH = 500

IDLE = "idle"
ABSOLUTE = "absolute"


def _store_class():
    return import_module(settings.SESSION_ENGINE).SessionStore


def now_seconds() -> int:
    return int(timezone.now().timestamp())


def is_panel_user(user) -> bool:
    """People who can open the admin panel get the idle timeout."""
    return bool(user.is_org_admin or user.is_superuser)


def stamp(session, user, *, now: int | None = None) -> None:
    """Mark a session as starting now (at sign-in, or the first time it is seen
    without a mark)."""
    now = now_seconds() if now is None else now
    session[STARTED_AT] = now
    if is_panel_user(user):
        session[LAST_SEEN_AT] = now


def expiry_reason(session, user, *, now: int | None = None) -> str | None:
    """``ABSOLUTE`` or ``IDLE`` when this signed-in session must end, else None."""
    now = now_seconds() if now is None else now
    started = session.get(STARTED_AT)
    if started is not None and now - started >= settings.SESSION_ABSOLUTE_SECONDS:
        return ABSOLUTE
    if is_panel_user(user):
        seen = session.get(LAST_SEEN_AT, started)
        if seen is not None and now - seen >= settings.ADMIN_SESSION_IDLE_SECONDS:
            return IDLE
    return None


def touch(session, user, *, now: int | None = None) -> None:
    """Record use of a live session: its start when unmarked, and the last use of a
    panel session (at most once per LAST_SEEN_RESOLUTION_SECONDS)."""
    now = now_seconds() if now is None else now
    if STARTED_AT not in session:
        stamp(session, user, now=now)
        return
    if is_panel_user(user):
        seen = session.get(LAST_SEEN_AT)
        if seen is None or now - seen >= LAST_SEEN_RESOLUTION_SECONDS:
            session[LAST_SEEN_AT] = now


def user_session_keys(user_ids: Iterable[int]) -> list[str]:
    """The keys of the unexpired sessions signed in as any of ``user_ids``."""
    wanted = {str(pk) for pk in user_ids}
    if not wanted:
        return []
    store_class = _store_class()
    model = store_class.get_model_class()
    decoder = store_class()
    rows = model.objects.filter(expire_date__gt=timezone.now()).values_list(
        "session_key", "session_data"
    )
    return [
        key
        for key, data in rows.iterator(chunk_size=DECODE_CHUNK)
        if str(decoder.decode(data).get(SESSION_KEY)) in wanted
    ]


def end_user_sessions(*, user_ids: Iterable[int], keep: str | None = None) -> int:
    """Delete every session of these users except ``keep`` (the current one, when a
    user changes their own password). Returns how many were ended."""
    keys = [key for key in user_session_keys(user_ids) if key != keep]
    store_class = _store_class()
    model = store_class.get_model_class()
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        model.objects.filter(session_key__in=batch).delete()
        if hasattr(store_class, "cache_key_prefix"):  # cached_db: drop the copies
            caches[settings.SESSION_CACHE_ALIAS].delete_many(
                [store_class.cache_key_prefix + key for key in batch]
            )
    return len(keys)


def end_user_sessions_on_commit(user_ids: Iterable[int]) -> None:
    """After the current transaction commits, end these users' sessions; nothing
    happens if it rolls back. ``robust``: the change has committed by then, so a
    failure here is logged rather than turned into an error page (the request-time
    checks still refuse banned and removed users)."""
    ids = sorted(set(user_ids))
    if ids:
        transaction.on_commit(lambda: end_user_sessions(user_ids=ids), robust=True)
