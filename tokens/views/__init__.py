"""Pages of the tokens app, one module per subdomain (the URL map is tokens/urls.py):
``members`` (User Management), ``requests`` (Token Requests), ``distribution``
(Token Distribution, a package), ``metering`` (the gateway API), ``enterprise``
(the enterprise account request) and ``me`` (/me/)."""
