"""Self-harming actions (issue 14, defect 9): an admin cannot ban, unban, deactivate,
reactivate or remove themselves, singly or in bulk (there is no demotion service).
A bulk action whose selection includes the admin is refused whole, and its review
page says so before anything is posted."""

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import User
from tests.conftest import sign_in
from tests.factories import UserFactory, fund, give
from tokens import services

pytestmark = pytest.mark.django_db

_WATCHED = [
    "accounts.AuditEvent",
    "accounts.User",
    "tokens.Allocation",
    "tokens.AllocationChange",
]


def _snapshot() -> dict:
    return {
        name: sorted(map(repr, apps.get_model(name).objects.values_list()))
        for name in _WATCHED
    }


@pytest.fixture
def team(org, admin_user):
    fund(org)
    other = UserFactory(organization=org, email="other@acme.example")
    for user in (admin_user, other):
        give(user, 300_000)
        give(user, 300_000, "embedding")
    return admin_user, other


def _unpaid(user):
    User.objects.filter(pk=user.pk).update(is_paid=False)
    user.refresh_from_db()
    return user


# (name, prepare the admin's own state, call as the admin on themselves)
SELF_ACTIONS = [
    ("ban", None, lambda me, o: services.user_ban(actor=me, user=me)),
    # A banned admin cannot act at all (the services refuse banned actors), so
    # unban is refused on the selection alone.
    ("unban", None, lambda me, o: services.user_unban(actor=me, user=me)),
    ("deactivate", None, lambda me, o: services.user_deactivate(actor=me, user=me)),
    ("reactivate", _unpaid, lambda me, o: services.user_reactivate(actor=me, user=me)),
    (
        "bulk ban",
        None,
        lambda me, o: services.users_set_banned(
            actor=me, organization=me.organization, users=[o, me], banned=True
        ),
    ),
    (
        "bulk unban",
        None,
        lambda me, o: services.users_set_banned(
            actor=me, organization=me.organization, users=[o, me], banned=False
        ),
    ),
    (
        "bulk deactivate",
        None,
        lambda me, o: services.users_set_paid(
            actor=me, organization=me.organization, users=[o, me], paid=False
        ),
    ),
    (
        "bulk reactivate",
        _unpaid,
        lambda me, o: services.users_set_paid(
            actor=me, organization=me.organization, users=[o, me], paid=True
        ),
    ),
    (
        "remove from organization",
        None,
        lambda me, o: services.organization_remove_member(actor=me, user=me),
    ),
]


@pytest.mark.parametrize(
    ("prepare", "call"),
    [(p, c) for _n, p, c in SELF_ACTIONS],
    ids=[n for n, _p, _c in SELF_ACTIONS],
)
def test_every_self_harming_action_is_refused_and_changes_nothing(team, prepare, call):
    me, other = team
    if prepare:
        prepare(me)
    if call is SELF_ACTIONS[-1][2]:
        # Removal is a staff action: the admin is also a superuser here, so the
        # permission check passes and the self rule is what refuses.
        User.objects.filter(pk=me.pk).update(is_staff=True, is_superuser=True)
        me.refresh_from_db()
    before = _snapshot()
    with pytest.raises(ValidationError) as caught:
        call(me, other)
    assert caught.value.code == "self_action"
    assert "yourself" in " ".join(caught.value.messages)
    assert _snapshot() == before


def test_sales_staff_cannot_remove_themselves_from_an_organization(org):
    sales = UserFactory(organization=org, email="sales@acme.example", is_staff=True)
    sales.groups.add(Group.objects.get(name="Sales"))
    with pytest.raises(ValidationError):
        services.organization_remove_member(actor=sales, user=sales)
    sales.refresh_from_db()
    assert sales.organization == org


def test_deactivating_yourself_from_the_panel_is_refused_with_a_message(
    team, admin_client
):
    me, _other = team
    response = admin_client.post(
        reverse("tokens:user_deactivate", args=[me.pk]), follow=True
    )
    assert response.status_code == 200
    assert "You cannot deactivate yourself" in response.content.decode()
    me.refresh_from_db()
    assert me.is_paid
    # The session was not ended: the admin is still signed in.
    assert admin_client.get(reverse("tokens:user_list")).status_code == 200


def test_bulk_deactivate_of_all_matching_warns_and_then_changes_nothing(
    team, admin_client
):
    _me, other = team
    post = {"action": "paid_off", "select_all": "1", "query": ""}
    review = admin_client.post(reverse("tokens:user_bulk"), post)
    assert review.status_code == 200
    body = review.content.decode()
    assert "You cannot deactivate yourself (admin@acme.example)" in body
    assert 'type="submit" class="btn btn-danger" disabled' in body
    before = _snapshot()
    done = admin_client.post(
        reverse("tokens:user_bulk"), {**post, "confirmed": "1"}, follow=True
    )
    assert "You cannot deactivate yourself" in done.content.decode()
    assert _snapshot() == before
    other.refresh_from_db()
    assert other.is_paid


def test_bulk_review_without_yourself_has_no_warning(team, admin_client):
    _me, other = team
    review = admin_client.post(
        reverse("tokens:user_bulk"), {"action": "paid_off", "pk": [str(other.pk)]}
    )
    assert "yourself" not in review.content.decode()


def test_another_admin_can_still_deactivate_you(team, org):
    me, _other = team
    second = sign_in(UserFactory(organization=org, role="admin"), mfa=True)
    response = second.post(reverse("tokens:user_deactivate", args=[me.pk]))
    assert response.status_code == 302
    me.refresh_from_db()
    assert not me.is_paid
