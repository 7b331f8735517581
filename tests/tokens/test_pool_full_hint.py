"""When a type's whole pool is allocated (as right after activation, which shares it
all out), Token Requests and Token Distribution say why nothing can be granted
(docs/product.md, Token Requests)."""

import pytest
from django.urls import reverse

from tests.factories import UserFactory, fund, give

pytestmark = pytest.mark.django_db
HINT = "The whole inference pool is allocated"


@pytest.fixture
def full(org, admin_user):
    fund(org, inference=2_000_000, embedding=2_000_000)
    give(admin_user, 1_000_000)
    give(UserFactory(organization=org, email="ava@acme.example"), 1_000_000)
    return org


@pytest.mark.parametrize("page", ["tokens:request_list", "tokens:distribution"])
def test_a_full_pool_is_explained(admin_client, full, page):
    html = admin_client.get(reverse(page)).content.decode()
    assert HINT in html
    assert "have sales staff record a purchase" in html
    assert "The whole embedding pool" not in html  # that one has room


@pytest.mark.parametrize("page", ["tokens:request_list", "tokens:distribution"])
def test_no_hint_while_there_is_room(admin_client, org, admin_user, page):
    fund(org, inference=2_000_000, embedding=2_000_000)
    give(admin_user, 1_000_000)
    assert HINT not in admin_client.get(reverse(page)).content.decode()
