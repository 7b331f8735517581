"""The django-filter FilterSets of the tokens app, one module per page: ``members``
(User Management)."""

from tokens.filtersets.members import UserFilterSet

__all__ = ["UserFilterSet"]
