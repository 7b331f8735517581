"""The marks of a test that races real threads: PostgreSQL only (SQLite serializes
every writer, so there is no race to test), committed transactions (the threads
use their own connections) and the ``postgres`` marker."""

import pytest
from django.db import connection

RACE_MARKS = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite serializes all writers, so there is no race",
    ),
]


def race(test):
    """Decorate one test with ``RACE_MARKS``."""
    for mark in reversed(RACE_MARKS):
        test = mark(test)
    return test
