"""Reads of the accounts app that pages share."""

from accounts.models import TablePreference, User


def table_columns_of(user: User, table: str) -> list[str] | None:
    """The columns ``user`` chose to see in ``table``, or None (the table's default).
    A person's own display preference: no organization involved."""
    if not user.is_authenticated:
        return None
    preference = TablePreference.objects.filter(user=user, table=table).first()
    return None if preference is None else list(preference.columns)
