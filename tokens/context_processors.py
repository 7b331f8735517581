"""Template context for the admin panel's chrome."""

from django.http import HttpRequest

from tokens import selectors


def panel(request: HttpRequest) -> dict:
    """The sidebar's pending token-request badge, on panel pages only (the panel
    access mixin sets ``request.org``): one COUNT on the (organization, status)
    index."""
    org = getattr(request, "org", None)
    if org is None:
        return {}
    return {"pending_requests_count": selectors.pending_request_count(org)}
