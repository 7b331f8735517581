"""Reads of Token Distribution (docs/product.md, Token Distribution): the
organization's per-user overrides and its recent runs."""

from django.db.models import Count

from accounts.models import Organization
from tokens.models import DistributionRun, UserOverride


def overrides_in(org: Organization):
    return (
        UserOverride.objects.filter(organization=org)
        .select_related("user")
        .order_by("user__email")
    )


def recent_runs(org: Organization):
    """The org's runs, newest first, with who started them and how many limits
    each changed."""
    return (
        DistributionRun.objects.filter(organization=org)
        .select_related("actor")
        .annotate(change_count=Count("allocation_changes"))
        .order_by("-started_at", "-id")
    )
