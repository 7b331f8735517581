"""The typed API layer (django-ninja): the admin API under /api/v1/admin/
(docs/admin-api.md). The gateway (/api/v1/, tokens/api.py) stays on plain views
for speed (docs/admin-api.md, Why the gateway stays on plain views)."""
