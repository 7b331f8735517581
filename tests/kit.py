"""The test kit: helpers every test file may use, defined once here (personas are
the fixtures of ``tests/conftest.py``, data comes from ``tests/factories.py``).

- ``limit(user, token_type)``: a user's current limit (0 where none was set).
- ``member(org, email, inference=..., embedding=...)``: a member of ``org`` with
  those limits: the building block of the files' ``team`` fixtures, whose people
  and amounts differ with what each file proves.
- ``run_threads(count, work)``: real threads released together by a barrier.
- ``race`` / ``RACE_MARKS``: the marks of a test that races real threads:
  PostgreSQL only (the ``postgres`` marker, which ``tests/conftest.py`` skips on
  SQLite with its reason: SQLite serializes every writer, so there is no race to
  test) and committed transactions (the threads use their own connections).
"""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from accounts.models import User
from tests.factories import UserFactory, give
from tokens.models import Allocation

NO_RACE_ON_SQLITE = "SQLite serializes all writers, so there is no race"

RACE_MARKS = [
    pytest.mark.postgres(reason=NO_RACE_ON_SQLITE),
    pytest.mark.django_db(transaction=True),
]


def race(test):
    """Decorate one test with ``RACE_MARKS``."""
    for mark in reversed(RACE_MARKS):
        test = mark(test)
    return test


def limit(user, token_type: str = "inference") -> int:
    """The user's current limit of ``token_type`` in any organization (0 where none
    was set)."""
    row = Allocation.objects.filter(user=user, token_type=token_type).first()
    return row.limit if row else 0


def member(
    org, email: str, *, inference: int = 0, embedding: int = 0, **fields
) -> User:
    """A new member of ``org`` (``fields`` for ``UserFactory``) given these limits
    (inference first; a type left at 0 is not set)."""
    user = UserFactory(organization=org, email=email, **fields)
    if inference:
        give(user, inference)
    if embedding:
        give(user, embedding, "embedding")
    return user


def flush_statistics() -> None:
    """Make this thread's PostgreSQL backend report its statistics now (a backend
    reports its counters only when idle, at most once a second), so that
    ``pg_stat_database.deadlocks`` counts what the thread ran into."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        # The flush happens when the backend goes idle after the statement above,
        # so it is done once the next one is answered.
        cursor.execute("SELECT 1")


def run_threads(
    count: int,
    work: Callable[[int], object],
    *,
    refusals: bool = False,
    before_close: Callable[[], None] | None = None,
) -> list:
    """Run ``work(i)`` in ``count`` threads released together by a barrier and
    return their results in order. With ``refusals``, a thread that meets a
    ValidationError returns its message instead. ``before_close`` runs in each
    thread before its database connection is closed."""
    barrier = threading.Barrier(count)

    def task(i):
        try:
            barrier.wait()
            return work(i)
        except ValidationError as error:
            if not refusals:
                raise
            return " ".join(error.messages)
        finally:
            if before_close is not None:
                before_close()
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(task, range(count)))


def run_in_own_loop(coroutine):
    """Run ``coroutine`` on a fresh event loop in a thread of its own: the browser
    tests' Playwright may have left a loop running in this worker's thread, where
    ``asyncio.run`` refuses to start another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
