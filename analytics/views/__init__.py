"""Pages of the analytics app, one module per page (URL map: analytics/urls.py)."""
