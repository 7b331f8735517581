"""Withdrawing one's own pending request (docs/product.md, Token Requests and Sales
flow): only the requester, only while pending, POST only, one audit event."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from accounts.models import AuditEvent, EnterpriseAccountRequest
from tests.conftest import sign_in
from tests.factories import AdminFactory, UserFactory, fund, give
from tokens.models import TokenRequest
from tokens.services.requests import token_request_approve, token_request_submit
from tokens.services.withdrawal import (
    enterprise_request_withdraw,
    token_request_withdraw,
)

pytestmark = pytest.mark.django_db
Action = AuditEvent.Action


@pytest.fixture
def asker(org):
    fund(org)
    user = UserFactory(organization=org, email="asker@acme.example")
    give(user, 300_000)
    return user


@pytest.fixture
def pending(asker):
    return token_request_submit(
        user=asker, token_type="inference", amount=50_000, reason="A project."
    )


def withdraw_url(token_request) -> str:
    return reverse("tokens:request_withdraw", kwargs={"pk": token_request.pk})


def events(action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


def test_the_requester_withdraws_a_pending_token_request(asker, pending):
    client = sign_in(asker)
    response = client.post(withdraw_url(pending))
    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:me") + "#requests"
    pending.refresh_from_db()
    assert pending.status == TokenRequest.Status.WITHDRAWN
    [event] = events(Action.REQUEST_WITHDRAWN)
    assert event.actor == asker
    assert event.organization_id == asker.organization_id
    assert (event.before, event.after) == (
        {"status": "pending"},
        {"status": "withdrawn"},
    )
    page = client.get(reverse("tokens:me")).content.decode()
    assert "Withdrawn: your request for 50,000 inference tokens." in page
    # The member may ask again for that type at once.
    again = token_request_submit(
        user=asker, token_type="inference", amount=10_000, reason="Again."
    )
    assert again.status == TokenRequest.Status.PENDING


def test_get_on_the_withdraw_url_is_refused_and_changes_nothing(asker, pending):
    response = sign_in(asker).get(withdraw_url(pending))
    assert response.status_code == 405
    pending.refresh_from_db()
    assert pending.status == TokenRequest.Status.PENDING


@pytest.mark.parametrize("persona", ["member", "admin", "other_admin", "sales"])
def test_only_the_requester_may_withdraw_a_token_request(
    persona, pending, member, admin_user, other_admin_user, sales_user
):
    people = {
        "member": member,
        "admin": admin_user,
        "other_admin": other_admin_user,
        "sales": sales_user,
    }
    response = sign_in(people[persona], mfa=True).post(withdraw_url(pending))
    assert response.status_code == 404
    pending.refresh_from_db()
    assert pending.status == TokenRequest.Status.PENDING
    assert events(Action.REQUEST_WITHDRAWN) == []


def test_anonymous_is_sent_to_sign_in(client, pending):
    response = client.post(withdraw_url(pending))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_the_service_refuses_anyone_but_the_requester(pending, admin_user, superuser):
    for actor in (None, admin_user, superuser):
        with pytest.raises(PermissionDenied):
            token_request_withdraw(actor=actor, request=pending)
    pending.refresh_from_db()
    assert pending.status == TokenRequest.Status.PENDING


def test_a_decided_request_cannot_be_withdrawn(asker, pending, org):
    admin = AdminFactory(organization=org, email="boss@acme.example")
    token_request_approve(actor=admin, request=pending, amount=50_000)
    response = sign_in(asker).post(withdraw_url(pending), follow=True)
    assert "This request is already approved: only a pending request can be" in (
        response.content.decode()
    )
    pending.refresh_from_db()
    assert pending.status == TokenRequest.Status.APPROVED
    assert events(Action.REQUEST_WITHDRAWN) == []


def test_an_admin_deciding_a_withdrawn_request_is_told_so(asker, pending, org):
    admin = AdminFactory(organization=org, email="boss@acme.example")
    token_request_withdraw(actor=asker, request=pending)
    with pytest.raises(ValidationError, match="The requester withdrew this request"):
        token_request_approve(actor=admin, request=pending, amount=50_000)


# --- enterprise account requests ------------------------------------------------------


@pytest.fixture
def enterprise(db):
    requester = UserFactory(organization=None, email="ceo@initech.example")
    return EnterpriseAccountRequest.objects.create(
        requested_by=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=["ceo@initech.example", "dev@initech.example"],
        admin_emails=["ceo@initech.example"],
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )


def enterprise_withdraw_url(enterprise) -> str:
    return reverse("tokens:enterprise_request_withdraw", kwargs={"pk": enterprise.pk})


def test_the_requester_withdraws_a_pending_enterprise_request(enterprise):
    client = sign_in(enterprise.requested_by)
    page = client.get(reverse("tokens:enterprise_request")).content.decode()
    assert enterprise_withdraw_url(enterprise) in page
    response = client.post(enterprise_withdraw_url(enterprise), follow=True)
    enterprise.refresh_from_db()
    assert enterprise.status == EnterpriseAccountRequest.Status.WITHDRAWN
    [event] = events(Action.ORG_REQUEST_WITHDRAWN)
    assert event.actor == enterprise.requested_by
    assert event.after == {"status": "withdrawn"}
    page = response.content.decode()
    assert "Withdrawn: your request for Initech. You can send a new one." in page
    assert 'name="organization_name"' in page  # the form again


@pytest.mark.parametrize("persona", ["member", "admin", "sales", "superuser"])
def test_only_the_requester_may_withdraw_an_enterprise_request(
    persona, enterprise, member, admin_user, sales_user, superuser
):
    people = {
        "member": member,
        "admin": admin_user,
        "sales": sales_user,
        "superuser": superuser,
    }
    response = sign_in(people[persona], mfa=True).post(
        enterprise_withdraw_url(enterprise)
    )
    assert response.status_code == 404
    enterprise.refresh_from_db()
    assert enterprise.status == EnterpriseAccountRequest.Status.PENDING
    with pytest.raises(PermissionDenied):
        enterprise_request_withdraw(actor=people[persona], request=enterprise)
    assert events(Action.ORG_REQUEST_WITHDRAWN) == []


def test_get_on_the_enterprise_withdraw_url_is_refused(enterprise):
    response = sign_in(enterprise.requested_by).get(enterprise_withdraw_url(enterprise))
    assert response.status_code == 405


def test_a_rejected_enterprise_request_cannot_be_withdrawn(enterprise):
    EnterpriseAccountRequest.objects.filter(pk=enterprise.pk).update(
        status=EnterpriseAccountRequest.Status.REJECTED
    )
    enterprise.refresh_from_db()
    with pytest.raises(ValidationError, match="already rejected"):
        enterprise_request_withdraw(actor=enterprise.requested_by, request=enterprise)
    response = sign_in(enterprise.requested_by).post(
        enterprise_withdraw_url(enterprise), follow=True
    )
    assert "only a pending request can be withdrawn" in response.content.decode()
    assert events(Action.ORG_REQUEST_WITHDRAWN) == []


def test_the_queue_counts_and_lists_withdrawn_requests(asker, pending, admin_client):
    token_request_withdraw(actor=asker, request=pending)
    queue = reverse("tokens:request_list")
    page = admin_client.get(queue).content.decode()
    assert "0 pending · 0 approved · 0 denied · 1 withdrawn" in page
    everything = admin_client.get(queue, {"status": "all"})
    assert everything.context["counts"]["all"] == 1
    assert "Withdrawn" in everything.content.decode()
