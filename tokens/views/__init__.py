"""Pages of the tokens app, one module per page (the URL map is tokens/urls.py)."""
