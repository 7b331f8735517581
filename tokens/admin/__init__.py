"""The staff site (/staff/) for the tokens app and the sales flow (docs/product.md,
Sales flow).

Every change goes through a service, so staff obey the same rules and leave the same
audit trail as everyone else: purchases through ``purchase_record``, enterprise
requests through ``enterprise_request_activate``/``_reject``, members through
``organization_add_member``/``_remove_member``. Ledger tables are view-only.

Member management extends the accounts app's Organization and User admins here,
because accounts may not import tokens (docs/architecture.md, Layers and layout).

One module per subdomain, each registering its admins when imported: ``catalog``,
``pool``, ``enterprise``, ``metering`` and ``members``; ``common`` holds what they
share.
"""

from tokens.admin import catalog, enterprise, members, metering, pool

__all__ = ["catalog", "enterprise", "members", "metering", "pool"]
