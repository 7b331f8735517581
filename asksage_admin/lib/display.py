"""Small HTML pieces the tables share (docs/product.md, The panel shell)."""

import re

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

_BREAK_BEFORE = re.compile(r"([@.+_-])")


def breakable_email(email: str) -> SafeString:
    """The address, escaped, with break opportunities (<wbr>) before "@", dots and
    other separators: a long address wraps between its parts, never mid-word."""
    parts = _BREAK_BEFORE.split(email or "")
    return mark_safe(
        "".join(
            f"<wbr>{escape(part)}" if _BREAK_BEFORE.fullmatch(part) else escape(part)
            for part in parts
        )
    )


def user_status_badges(user) -> SafeString:
    """A member's flags in one cell: Admin, Paid/Unpaid, Banned, Unverified, MFA."""
    badges = []
    if getattr(user, "role", "") == "admin":
        badges.append(("badge-accent", _("Admin")))
    if user.is_banned:
        badges.append(("badge-danger", _("Banned")))
    badges.append(
        ("badge-success", _("Paid")) if user.is_paid else ("badge-warning", _("Unpaid"))
    )
    if not user.email_verified_at:
        badges.append(("badge-warning", _("Unverified")))
    if getattr(user, "has_mfa", False):
        badges.append(("badge-muted", _("MFA")))
    return format_html(
        '<span class="badge-row">{}</span>',
        format_html_join(" ", '<span class="badge {}">{}</span>', badges),
    )
