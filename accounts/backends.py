from django.contrib.auth.backends import ModelBackend

from accounts.emails import canonical_email


class EmailBackend(ModelBackend):
    """Email + password, the email in its canonical form (accounts.emails), looked
    up by ``UserManager.get_by_natural_key`` with the same function as the lockout
    key below: a look-alike spelling is either the same account (and the same
    counter) or an address no account has.

    Banned users do authenticate here (so that the sign-in form can tell them, and
    only them, why they may not enter); the form then refuses them.
    """


def axes_username(request, credentials: dict | None) -> str | None:
    """The sign-in email as django-axes counts it: canonical (accounts.emails), the
    very form the account is looked up by, so that failures in any case or
    compatibility spelling add up against the same account."""
    source = credentials or (request.POST if request is not None else {})
    username = source.get("username") if source else None
    return canonical_email(username) or None
