"""The one canonical form of an e-mail address (issue 14, defect 2).

Every place that stores, looks up or counts an e-mail uses ``canonical_email``:
the User model, registration, sign-in, the django-axes lockout key, password reset,
the staff forms, the enterprise intake and the gateway API. Look-ups then compare
the canonical form with the stored (canonical) one by exact equality, never with
``iexact``: PostgreSQL's ``UPPER()`` folds look-alikes (dotless ``ı`` → ``I``,
long ``ſ`` → ``S``) that Python's ``lower()`` keeps apart, which let a look-alike
spelling sign in to an account under a lockout counter of its own.

The canonical form is NFKC, then ``casefold``, then NFKC again (casefold can undo
a normalization): ``ſ`` and full-width letters become their ASCII letters, so they
are the same account and the same counter; ``ı`` stays ``ı``, so such a spelling
is a different address that no account has (registration refuses addresses that
are not ASCII after NFKC) and its failures cannot unlock or reach the real one.
"""

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

NOT_ASCII_MESSAGE = _(
    "Use an e-mail address with plain ASCII letters (a–z, digits and . _ - +): "
    "look-alike letters such as ı or ſ are not accepted. Write an international "
    "domain in its xn-- form."
)


def canonical_email(value) -> str:
    """The address as stored and compared: stripped, NFKC, case-folded."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value).strip())
    return unicodedata.normalize("NFKC", text.casefold())


def is_plain_email(value) -> bool:
    """True when the address is ASCII once compatibility characters are folded."""
    return unicodedata.normalize("NFKC", str(value).strip()).isascii()


def validate_plain_email(value) -> None:
    """Refuse an address with non-ASCII letters (a look-alike of another one)."""
    if not is_plain_email(value):
        raise ValidationError(NOT_ASCII_MESSAGE, code="not_ascii")
