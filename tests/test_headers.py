"""Security headers and CSRF (docs/security.md, Security guarantees) on every URL of the
project: the URL list comes from the resolver (a URL added later is covered, and one
whose arguments this module cannot fill fails until ``KWARGS`` says how), requested with
GET by the org admin persona and by an anonymous visitor, plus the sign-in and
registration pages and the error pages (403, 404, 500, 503).

Every response: X-Frame-Options DENY, nosniff, Referrer-Policy, a well-formed
X-Request-ID, HSTS on secure requests (and not on plain ones). Every HTML response:
a Content Security Policy with script-src 'self' and no 'unsafe-inline' or
'unsafe-eval' anywhere.

CSRF: with Django's checks enforced, a POST without the token to any URL that
accepts one (every state change of the site) is refused with 403 and changes nothing;
only the gateway API, which no cookie authenticates, is exempt.

``site_urls`` is shared with the browser test of every page
(tests/browser/test_csp_all_pages.py)."""

import re
import uuid
from collections.abc import Callable
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from accounts.services import email_verification_token
from tests.conftest import sign_in
from tests.factories import fund, give
from tokens.models import TokenRequest

pytestmark = pytest.mark.django_db

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# --- every URL of the project ---------------------------------------------------------


def url_patterns() -> list[tuple[str, str, set[str]]]:
    """(namespaced name, route, argument names) of every URL pattern, except the
    staff site's (Django admin: its own pages, for staff only)."""
    found = []

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}:{pattern.namespace}".lstrip(":")
                if inner != "admin":
                    walk(pattern.url_patterns, route, inner)
                continue
            assert pattern.name, f"Name the URL pattern {route!r}"
            name = f"{namespace}:{pattern.name}".lstrip(":")
            arguments = set(getattr(pattern.pattern, "converters", {})) | set(
                pattern.pattern.regex.groupindex
            )
            found.append((name, route, arguments))

    walk(get_resolver().url_patterns, "", "")
    return found


def _pk(world) -> list[dict]:
    return [{"pk": world["member"].pk}]


# For each URL with arguments: the argument sets to request it with.
def _enterprise_request(requester):
    from accounts.models import EnterpriseAccountRequest

    return EnterpriseAccountRequest.objects.create(
        requested_by=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=["ceo@initech.example", "dev@initech.example"],
        admin_emails=["ceo@initech.example"],
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )


KWARGS: dict[str, Callable[[dict], list[dict]]] = {
    **{
        f"tokens:{name}": _pk
        for name in (
            "user_detail",
            "user_deactivate_confirm",
            "user_deactivate",
            "user_reactivate",
            "user_ban_confirm",
            "user_ban",
            "user_unban",
            "user_verify",
        )
    },
    "tokens:user_limit_edit": lambda w: [
        {"pk": w["member"].pk, "token_type": t} for t in ("inference", "embedding")
    ],
    "tokens:distribution_override_remove": lambda w: [{"user_id": w["member"].pk}],
    "tokens:request_approve": lambda w: [{"pk": w["token_request"].pk}],
    "tokens:request_deny": lambda w: [{"pk": w["token_request"].pk}],
    "tokens:request_withdraw": lambda w: [{"pk": w["token_request"].pk}],
    "tokens:enterprise_request_withdraw": lambda w: [
        {"pk": w["enterprise_request"].pk}
    ],
    "gateway_api:hold_release": lambda w: [{"hold_id": uuid.uuid4()}],
    "analytics:activity_export": lambda w: [{"tab": "usage"}, {"tab": "audit"}],
    "accounts:verify_email": lambda w: [
        {"token": email_verification_token(w["member"])},
        {"token": "not-a-valid-token"},
    ],
    "accounts:password_reset_confirm": lambda w: [
        {"uidb64": "MQ", "token": "not-a-valid-token"}
    ],
    # The admin API (docs/admin-api.md) and its panel pages.
    **{
        f"admin_api:{name}": lambda w: [{"user_id": w["member"].pk}]
        for name in ("user_detail", "user_set_paid", "user_ban", "user_unban")
    },
    "admin_api:user_set_limit": lambda w: [
        {"user_id": w["member"].pk, "token_type": "inference"}
    ],
    "admin_api:request_approve": lambda w: [{"request_id": w["token_request"].pk}],
    "admin_api:request_deny": lambda w: [{"request_id": w["token_request"].pk}],
    "api_panel:token_revoke": lambda w: [{"pk": 1}],
}


def site_urls(world: dict) -> list[tuple[str, str]]:
    """(name, path) for every URL of the project, arguments filled from ``world``
    (``member``: a member of the admin's organization; ``token_request``: a pending
    request of that member; ``enterprise_request``: a pending Enterprise Account
    request)."""
    urls = []
    for name, route, arguments in url_patterns():
        if not arguments:
            urls.append((name, reverse(name)))
            continue
        assert name in KWARGS, (
            f"{name} ({route}) takes {sorted(arguments)}: add it to KWARGS in "
            "tests/test_headers.py so its pages are checked"
        )
        for kwargs in KWARGS[name](world):
            assert set(kwargs) == arguments, (name, kwargs)
            urls.append((name, reverse(name, kwargs=kwargs)))
    return urls


@pytest.fixture
def world(org, admin_user, member):
    fund(org)
    give(member, 300_000)
    give(admin_user, 300_000)
    token_request = TokenRequest.objects.create(
        organization=org,
        user=member,
        token_type="inference",
        amount=100_000,
        reason="Indexing the contract archive for the legal team.",
        limit_at_request=300_000,
    )
    return {
        "member": member,
        "admin": admin_user,
        "token_request": token_request,
        "enterprise_request": _enterprise_request(member),
    }


# --- the checks -----------------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def is_html(response) -> bool:
    return response.get("Content-Type", "").startswith("text/html")


def assert_security_headers(response, where: str, *, secure: bool = True) -> None:
    headers = response.headers
    problems = []
    if headers.get("X-Frame-Options") != "DENY":
        problems.append(f"X-Frame-Options {headers.get('X-Frame-Options')!r}")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if headers.get("Referrer-Policy") != "same-origin":
        problems.append(f"Referrer-Policy {headers.get('Referrer-Policy')!r}")
    if not REQUEST_ID.match(headers.get("X-Request-ID", "")):
        problems.append(f"X-Request-ID {headers.get('X-Request-ID')!r}")
    hsts = headers.get("Strict-Transport-Security", "")
    if secure and not re.match(r"max-age=31536000\b.*includeSubDomains", hsts):
        problems.append(f"Strict-Transport-Security {hsts!r}")
    if not secure and hsts:
        problems.append("HSTS on a plain-HTTP response")
    if is_html(response):
        csp = headers.get("Content-Security-Policy", "")
        directives = csp_directives(csp) if csp else {}
        if directives.get("script-src") != ["'self'"]:
            problems.append(f"script-src {directives.get('script-src')}")
        for directive, expected in (
            ("default-src", ["'self'"]),
            ("style-src", ["'self'"]),
            ("frame-ancestors", ["'none'"]),
            ("object-src", ["'none'"]),
            ("base-uri", ["'self'"]),
            ("form-action", ["'self'"]),
        ):
            if directives.get(directive) != expected:
                problems.append(f"{directive} {directives.get(directive)}")
        if "'unsafe-inline'" in csp or "'unsafe-eval'" in csp:
            problems.append(f"unsafe CSP source: {csp}")
    assert not problems, f"{where} ({response.status_code}): " + "; ".join(problems)


def get(client: Client, url: str, **extra):
    return client.get(url, secure=True, **extra)


# --- every URL, as the org admin and as an anonymous visitor --------------------------


def test_every_url_as_the_org_admin(world):
    client = sign_in(world["admin"], mfa=True)
    pages = []
    for name, url in site_urls(world):
        response = get(client, url)
        assert_security_headers(response, f"admin GET {url} [{name}]")
        if response.status_code == 200 and is_html(response):
            pages.append(name)
        if name.startswith(("tokens:", "analytics:")):
            # The admin's own pages work (so the headers seen are the pages').
            assert response.status_code in (200, 302, 405), (url, response.status_code)
    # Sanity: the real pages were seen, not only redirects and errors.
    for name in (
        "tokens:user_list",
        "tokens:user_detail",
        "tokens:distribution",
        "tokens:distribution_preview",
        "tokens:request_list",
        "tokens:request_approve",
        "analytics:statistics",
        "analytics:activity",
        "tokens:me",
    ):
        assert name in pages, name


def test_every_url_as_an_anonymous_visitor(world):
    client = Client()
    pages = []
    for name, url in site_urls(world):
        response = get(client, url)
        assert_security_headers(response, f"anonymous GET {url} [{name}]")
        if response.status_code == 200 and is_html(response):
            pages.append(name)
    for name in (
        "accounts:login",
        "accounts:register",
        "accounts:password_reset",
        "accounts:password_reset_done",
        "accounts:password_reset_complete",
        "accounts:password_reset_confirm",
    ):
        assert name in pages, name


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/login/",
        "/accounts/register/",
        "/accounts/password-reset/",
        "/staff/login/",
    ],
)
def test_sign_in_and_registration_pages(db, url):
    response = get(Client(), url)
    assert response.status_code == 200
    assert is_html(response)
    assert_security_headers(response, url)


def test_form_errors_keep_the_headers(db):
    response = Client().post(
        "/accounts/register/", {"email": "not-an-email"}, secure=True
    )
    assert response.status_code == 200
    assert_security_headers(response, "registration with errors")


# --- error pages ----------------------------------------------------------------------


def test_404_pages(world, other_admin_user):
    admin = sign_in(world["admin"], mfa=True)
    for client, url in [
        (Client(), "/no-such-page/"),
        (admin, "/no-such-page/"),
        # another organization's user is a 404, not a 403
        (admin, reverse("tokens:user_detail", kwargs={"pk": other_admin_user.pk})),
    ]:
        response = get(client, url)
        assert response.status_code == 404
        assert is_html(response)
        assert_security_headers(response, f"404 {url}")


def test_403_page(member_client):
    response = get(member_client, reverse("tokens:user_list"))
    assert response.status_code == 403
    assert is_html(response)
    assert_security_headers(response, "403")


def test_500_page(world):
    client = sign_in(world["admin"], mfa=True)
    client.raise_request_exception = False
    with mock.patch("tokens.selectors.users_in", side_effect=RuntimeError("bug")):
        response = get(client, reverse("tokens:user_list"))
    assert response.status_code == 500
    assert is_html(response)
    assert_security_headers(response, "500")


def test_503_page(world):
    client = sign_in(world["admin"], mfa=True)
    client.raise_request_exception = False
    with mock.patch.object(
        BaseDatabaseWrapper, "ensure_connection", side_effect=OperationalError("down")
    ):
        response = get(client, reverse("tokens:user_list"))
    assert response.status_code == 503
    assert is_html(response)
    assert_security_headers(response, "503")


# --- HSTS only over HTTPS; the request id ---------------------------------------------


def test_no_hsts_on_plain_http(db):
    response = Client().get("/accounts/login/")
    assert_security_headers(response, "plain HTTP", secure=False)


def test_a_valid_request_id_is_kept_and_an_invalid_one_replaced(db):
    kept = get(Client(), "/accounts/login/", headers={"X-Request-ID": "gw-123.a_b"})
    assert kept["X-Request-ID"] == "gw-123.a_b"
    replaced = get(Client(), "/accounts/login/", headers={"X-Request-ID": "a b\nc"})
    assert REQUEST_ID.match(replaced["X-Request-ID"])
    assert replaced["X-Request-ID"] != "a b\nc"


def test_a_new_url_without_arguments_is_listed(world):
    names = {name for name, _url in site_urls(world)}
    assert {"home", "healthz", "panel", "tokens:user_list"} <= names


# --- CSRF on every state change ----------------------------------------------------


def test_every_post_without_the_csrf_token_is_refused(world):
    from tests.test_faults import snapshot

    client = sign_in(world["admin"], mfa=True)
    client.handler.enforce_csrf_checks = True
    before = snapshot()
    refused = []
    for name, url in site_urls(world):
        response = client.post(url, {"action": "ban", "pk": [world["member"].pk]})
        assert_security_headers(response, f"POST {url}", secure=False)
        if name.startswith(("gateway_api:", "admin_api:")) or name == "api_not_found":
            # The APIs: no cookie authenticates them, so no CSRF; JSON 401/405/404.
            assert response["Content-Type"] == "application/json", url
            assert response.status_code in (401, 404, 405), url
            continue
        assert response.status_code in (403, 405), (url, response.status_code)
        if response.status_code == 403:
            assert b"CSRF" in response.content or b"Forbidden" in response.content
            refused.append(name)
    assert snapshot() == before
    assert {
        "accounts:login",
        "accounts:register",
        "accounts:logout",
        "tokens:user_bulk",
        "tokens:user_ban",
        "tokens:distribution_run",
        "tokens:request_approve",
        "tokens:request_submit",
        "analytics:activity_excerpts",
    } <= set(refused)
    # With the token the same client gets through (the check is the token).
    client.get(reverse("tokens:user_list"))
    token = client.cookies["csrftoken"].value
    response = client.post(
        reverse("tokens:user_ban", kwargs={"pk": world["member"].pk}),
        {"csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
