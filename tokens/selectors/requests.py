"""Reads of Token Requests (docs/product.md, Token Requests): the queue, its tabs'
counts, a member's own requests and the auto-approval rule."""

from django.db.models import Count

from accounts.models import Organization, User
from tokens.models import AutoApprovalRule, TokenRequest

REQUEST_TABS = ("pending", "approved", "denied", "all")


def token_requests_in(org: Organization):
    """The organization's token requests: every panel lookup by id goes through this
    (404 outside the organization)."""
    return TokenRequest.objects.filter(organization=org)


def token_requests_for_panel(org: Organization, status: str = "pending"):
    """The queue's rows for one tab (a status, or "all"), with the user and the
    deciding admin joined in the same query."""
    rows = token_requests_in(org).select_related("user", "decided_by")
    if status != "all":
        rows = rows.filter(status=status)
    return rows


def token_request_counts(org: Organization) -> dict[str, int]:
    """The count per tab (pending, approved, denied, all) in one query."""
    counts = dict.fromkeys(REQUEST_TABS, 0)
    for row in (
        token_requests_in(org).order_by().values("status").annotate(n=Count("id"))
    ):
        counts[row["status"]] = row["n"]
    # "all" counts every request, withdrawn ones too (listed on the All tab).
    counts["all"] = sum(n for status, n in counts.items() if status != "all")
    return counts


def pending_request_count(org: Organization) -> int:
    """The sidebar badge: one COUNT on the (organization, status) index."""
    return token_requests_in(org).filter(status=TokenRequest.Status.PENDING).count()


def user_token_requests(org: Organization, user: User):
    """A member's own requests in ``org``, newest first, with the deciding admin."""
    return token_requests_in(org).filter(user=user).select_related("decided_by")


def auto_approval_rule(org: Organization) -> AutoApprovalRule:
    """The organization's rule, or an unsaved one with the defaults (off)."""
    return AutoApprovalRule.objects.filter(
        organization=org
    ).first() or AutoApprovalRule(organization=org)
