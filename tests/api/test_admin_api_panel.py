"""The panel's Admin API pages (docs/admin-api.md, Tokens): a token is created with
its secret shown once, only its digest stored; bad input saves nothing; the
reference lists every operation of the generated document."""

import pytest
from django.urls import reverse

from accounts.access_tokens import access_token_authenticate, access_token_digest
from accounts.models import AdminAccessToken
from api.admin import admin_api

pytestmark = pytest.mark.django_db


def test_a_new_tokens_secret_is_shown_once_and_only_its_digest_kept(
    admin_client, admin_user
):
    response = admin_client.post(
        reverse("api_panel:token_create"),
        {"name": "Nightly report", "scope": "read", "expires_in_days": 90},
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.encode() in response.content
    token = AdminAccessToken.objects.get()
    assert (token.name, token.scope, token.owner) == (
        "Nightly report",
        "read",
        admin_user,
    )
    assert token.digest == access_token_digest(secret) and secret not in token.digest
    assert access_token_authenticate(secret) == (token, "")
    listing = admin_client.get(reverse("api_panel:token_list"))
    assert b"Nightly report" in listing.content
    assert secret.encode() not in listing.content


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "scope": "read", "expires_in_days": 30}, "name"),
        ({"name": "x", "scope": "admin", "expires_in_days": 30}, "scope"),
        ({"name": "x", "scope": "read", "expires_in_days": 3}, "expires_in_days"),
    ],
)
def test_bad_input_shows_the_message_and_saves_nothing(admin_client, data, field):
    response = admin_client.post(reverse("api_panel:token_create"), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert response.context["secret"] is None
    assert not AdminAccessToken.objects.exists()


def test_revoking_stops_the_token(admin_client, admin_user):
    admin_client.post(
        reverse("api_panel:token_create"),
        {"name": "ci", "scope": "write", "expires_in_days": 7},
    )
    token = AdminAccessToken.objects.get()
    response = admin_client.post(reverse("api_panel:token_revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.is_revoked
    again = admin_client.post(
        reverse("api_panel:token_revoke", args=[token.pk]), follow=True
    )
    assert b"already revoked" in again.content


def test_the_reference_lists_every_operation(admin_client):
    document = admin_api.get_openapi_schema(path_prefix="/api/v1/admin")
    page = admin_client.get(reverse("api_panel:docs")).content.decode()
    for path, item in document["paths"].items():
        for method in item:
            assert f'data-operation="{method.upper()} {path}"' in page
    assert "<script" not in page.split("</header>", 1)[-1]
