"""User Management's column chooser (docs/product.md, User Management): each admin's
own choice of columns, kept server-side (accounts.TablePreference), not audited."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, TablePreference
from tests.conftest import sign_in
from tests.factories import AdminFactory, UserFactory
from tokens.tables.members import DEFAULT_USER_COLUMNS

pytestmark = pytest.mark.django_db

LIST = reverse("tokens:user_list")
SAVE = reverse("tokens:user_columns")


def shown(response) -> list[str]:
    return [column.name for column in response.context["table"].columns]


def test_default_columns_then_the_admins_choice_is_kept(admin_client, admin_user):
    UserFactory(organization=admin_user.organization, email="ava@acme.example")
    default = shown(admin_client.get(LIST))
    assert default == ["select", "user", "status", *DEFAULT_USER_COLUMNS, "actions"]
    audit_before = AuditEvent.objects.count()

    response = admin_client.post(
        SAVE, {"columns": ["total_usage", "id"], "next": LIST + "?q=ava"}
    )

    assert response.status_code == 302
    assert response["Location"] == LIST + "?q=ava"
    page = admin_client.get(LIST)
    assert shown(page) == ["select", "user", "status", "id", "total_usage", "actions"]
    assert "table-default-columns" not in page.context["table"].attrs["class"]
    # Stored in the table's order; a display preference is not audited.
    assert TablePreference.objects.get(user=admin_user).columns == ["id", "total_usage"]
    assert AuditEvent.objects.count() == audit_before


def test_each_admin_has_their_own_columns(admin_client, admin_user):
    other = AdminFactory(organization=admin_user.organization, email="bo@acme.example")
    admin_client.post(SAVE, {"columns": ["id"]})
    other_client = sign_in(other, mfa=True)
    assert shown(other_client.get(LIST))[3:-1] == list(DEFAULT_USER_COLUMNS)


def test_hidden_columns_still_sort(admin_client, admin_user):
    admin_client.post(SAVE, {"columns": []})
    response = admin_client.get(LIST, {"sort": "-is_paid"})
    assert response.status_code == 200
    assert shown(response) == ["select", "user", "status", "actions"]
    assert response.context["table"].order_by == ("-is_paid",)


def test_an_unknown_column_is_refused_and_nothing_is_saved(admin_client, admin_user):
    response = admin_client.post(SAVE, {"columns": ["id", "password"]}, follow=True)
    assert "Choose among the columns offered (unknown: password)." in (
        response.content.decode()
    )
    assert not TablePreference.objects.filter(user=admin_user).exists()


def test_the_chooser_lists_every_choosable_column_with_its_state(admin_client):
    body = admin_client.get(LIST).content.decode()
    assert 'name="columns" value="max_inference" checked' in body
    assert 'name="columns" value="total_usage">' in body
    assert "Save columns" in body


def test_get_is_not_allowed_and_members_are_refused(admin_client, member_client):
    assert admin_client.get(SAVE).status_code == 405
    assert member_client.post(SAVE, {"columns": ["id"]}).status_code == 403
    assert not TablePreference.objects.exists()
