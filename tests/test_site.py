from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.urls import reverse

from accounts.models import Organization, User

pytestmark = pytest.mark.django_db


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up"}


def test_healthz_503_when_database_unreachable(client):
    with mock.patch(
        "asksage_admin.views.connection.cursor",
        side_effect=OperationalError("connection refused"),
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "down"


def test_security_headers_on_html_pages(client):
    response = client.get(reverse("accounts:login"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Request-ID"]


def test_hsts_on_secure_requests(client):
    response = client.get(reverse("accounts:login"), secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_request_id_is_echoed_when_well_formed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    bad = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n")
    assert bad["X-Request-ID"] != "bad id\n"


def test_seed_demo_is_idempotent(settings, capsys):
    settings.DEMO_MODE = True
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "admin@northwind.example" in out
    assert Organization.objects.count() == 1
    assert User.objects.filter(role="admin").count() == 1
    assert User.objects.filter(role="user").count() == 12


def test_seed_demo_refused_outside_demo(settings):
    settings.DEMO_MODE = False
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEMO_MODE"):
        call_command("seed_demo")
    assert not Organization.objects.exists()


def test_sales_group_exists_with_its_permissions(sales_user):
    perms = set(sales_user.get_all_permissions())
    assert "accounts.view_user" in perms
    assert "accounts.change_organization" in perms
    assert "accounts.delete_organization" not in perms


def test_staff_site_shows_audit_read_only(superuser_client):
    response = superuser_client.get(reverse("admin:accounts_auditevent_changelist"))
    assert response.status_code == 200
    assert (
        superuser_client.get(reverse("admin:accounts_auditevent_add")).status_code
        == 403
    )


def test_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404


def test_favicon_is_served_and_cached(client):
    """/favicon.ico (asked by browsers and tools whatever the page says) leads to
    the static icon, a real .ico file; the redirect is cached for a day."""
    import pathlib

    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("favicon.ico")
    assert response["Location"].startswith("/static/")
    assert "max-age=86400" in response["Cache-Control"]
    icon = pathlib.Path(__file__).resolve().parent.parent / "static" / "favicon.ico"
    assert icon.read_bytes()[:4] == b"\x00\x00\x01\x00"  # an ICO header


def test_the_terms_are_a_page_linked_from_registration_and_every_footer(
    client, member_client
):
    from django.urls import reverse

    terms = reverse("terms")
    page = client.get(terms)
    assert page.status_code == 200
    assert "Terms of service" in page.content.decode()
    assert "2,000,000 tokens" in page.content.decode()  # TOKEN_LOT, from settings
    assert (
        f'href="{terms}"' in client.get(reverse("accounts:register")).content.decode()
    )
    assert f'href="{terms}"' in client.get(reverse("accounts:login")).content.decode()
    assert f'href="{terms}"' in member_client.get(reverse("tokens:me")).content.decode()
