"""Settings for the Enterprise Account admin platform.

Everything comes from the environment through one django-environ ``env`` (a ``.env``
file in the project folder is read when present). Every variable is documented in
docs/operations.md (Configuration) and ``.env.example``.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# Demo mode: what `make run` starts. Plain HTTP on localhost, MFA optional, a banner.
DEMO_MODE = env.bool("DEMO_MODE", default=False)
_RELAXED = DEBUG or DEMO_MODE

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not _RELAXED:
        raise ImproperlyConfigured(
            "SECRET_KEY is required outside DEBUG and DEMO_MODE: set it in the "
            "environment (for example `python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'`)."
        )
    SECRET_KEY = "insecure-demo-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if _RELAXED else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_tables2",
    "django_filters",
    "axes",
    "csp",
    "accounts",
    "tokens",
    "analytics",
]

MIDDLEWARE = [
    "asksage_admin.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "asksage_admin.db_errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's, answering a page that tells the truth when the session cannot be
    # saved after the view committed (never the bare "Bad Request (400)").
    "accounts.middleware.SessionSaveMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.BannedUserMiddleware",
    "accounts.middleware.StaffMFAMiddleware",
    "accounts.middleware.SessionLifetimeMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # django-axes must be last.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "asksage_admin.urls"
WSGI_APPLICATION = "asksage_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "asksage_admin.context_processors.site",
                "tokens.context_processors.panel",
            ],
        },
    },
]

# Database: unset → an SQLite file in the project folder; postgres://… → psycopg 3.
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so concurrent writers
    # wait (up to the timeout) instead of failing half-way with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # The covering indexes (INCLUDE) are for PostgreSQL; SQLite gets them as plain
    # indexes, which is all the demo database needs.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses locked-out credentials before any other backend.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.EmailBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24  # 1 day
# How long an email-verification link stays valid.
EMAIL_VERIFICATION_MAX_AGE = 60 * 60 * 24 * 7

# Failed sign-ins (django-axes): lock a user+IP pair after 5 failures for a cool-off.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.backends.axes_username"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
# Number of reverse proxies in front of gunicorn: the client IP is taken from
# X-Forwarded-For that many hops from the right. 0 = use REMOTE_ADDR.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
AXES_CLIENT_IP_CALLABLE = "asksage_admin.lib.request_context.client_ip"

# MFA (django-otp): org admins and superusers must pass TOTP before the panel.
REQUIRE_ADMIN_MFA = env.bool("REQUIRE_ADMIN_MFA", default=not DEMO_MODE)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Enterprise Account")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One date and time format everywhere (asksage_admin/formats/en/formats.py).
FORMAT_MODULE_PATH = ["asksage_admin.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Email: console by default; SMTP with EMAIL_URL=smtp+tls://user:pass@host:587
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="Enterprise Account <no-reply@localhost>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security headers. Production defaults are strict; DEBUG/DEMO_MODE serve plain HTTP.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not _RELAXED)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=0 if _RELAXED else 31536000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not _RELAXED
CSRF_COOKIE_SECURE = not _RELAXED
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12
# Session rules (accounts/sessions.py): a panel session (org admins, superusers) ends
# after this long without a request; every session ends this long after sign-in.
ADMIN_SESSION_IDLE_SECONDS = env.int("ADMIN_SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=12 * 60 * 60)
# Messages may carry a one-time secret (a new service key): keep them server-side.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Content Security Policy: no inline script or style anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

# django-tables2
DJANGO_TABLES2_TEMPLATE = "includes/table.html"

# A full usage batch (1,000 events with 2,000-character excerpts) is about 4.3 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024
)

# Absolute base URL for links in emails (verification, password reset, decisions).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# Product rules (docs/product.md, Tokens: pool, limits and minimum;
# docs/gateway-api.md, Rules).
CHAT_URL = env.str("CHAT_URL", default="https://chat.asksage.ai/")
MIN_USER_TOKENS = env.int("MIN_USER_TOKENS", default=200_000)
DISABLED_USER_TOKENS = env.int("DISABLED_USER_TOKENS", default=1_000)
TOKEN_LOT = env.int("TOKEN_LOT", default=2_000_000)
HOLD_TTL_SECONDS = env.int("HOLD_TTL_SECONDS", default=600)
# Alerts fired by a usage call are delivered in a thread of their own after its
# commit, so the gateway's answer never waits for e-mail or a webhook
# (docs/forecasts.md, Alerts); send_alerts (cron) delivers what a stopped process left.
ALERTS_DELIVER_IN_BACKGROUND = env.bool("ALERTS_DELIVER_IN_BACKGROUND", default=True)

# Admin API (docs/admin-api.md): failed authentications allowed per client IP in a
# window before it answers 429 (counted in Django's cache: per process unless a
# shared cache is configured).
ADMIN_API_AUTH_FAILURES = env.int("ADMIN_API_AUTH_FAILURES", default=20)
ADMIN_API_AUTH_WINDOW_SECONDS = env.int("ADMIN_API_AUTH_WINDOW_SECONDS", default=300)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "asksage_admin.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"axes": {"level": "WARNING"}},
}
