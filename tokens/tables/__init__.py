"""The django-tables2 tables of the tokens app, one module per page: ``members``
(User Management), ``requests`` (Token Requests), and ``columns`` (what they share)."""

from tokens.tables.columns import PAGE_SIZES
from tokens.tables.members import UserTable
from tokens.tables.requests import TokenRequestTable

__all__ = ["PAGE_SIZES", "TokenRequestTable", "UserTable"]
