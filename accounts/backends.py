from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    """Email + password, the email compared without regard to case.

    Banned users do authenticate here (so that the sign-in form can tell them, and
    only them, why they may not enter); the form then refuses them.
    """


def axes_username(request, credentials: dict | None) -> str | None:
    """The sign-in email as django-axes counts it: lower-cased, so that failures in
    any case add up against the same account."""
    source = credentials or (request.POST if request is not None else {})
    username = source.get("username") if source else None
    return username.strip().lower() if username else None
