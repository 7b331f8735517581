"""Test settings: the production settings with fast hashing and captured email."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from asksage_admin.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 31536000
REQUIRE_ADMIN_MFA = True
DEMO_MODE = False
# Alerts delivered in the request that fired them, so tests read the outbox after
# the call; the background thread has its own test (tests/tokens/test_alerts.py).
ALERTS_DELIVER_IN_BACKGROUND = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# The failed-authentication counter of the admin API lives in the (per-process)
# cache across tests: only the rate-limit tests lower this (docs/admin-api.md).
ADMIN_API_AUTH_FAILURES = 1_000_000
