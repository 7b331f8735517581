"""The sales flow's e-mails (docs/product.md, Sales flow): sales staff on a new
Enterprise Account request, the requester on activation and on rejection, a user
added to an organization. Sent after commit; a failure to send is logged and never
undoes or breaks the action."""

import logging

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import EnterpriseAccountRequest
from tests.conftest import sign_in
from tests.factories import UserFactory, fund
from tokens.services import (
    enterprise_request_activate,
    enterprise_request_reject,
    enterprise_request_submit,
    organization_add_member,
    sales_emails,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    return {
        "ceo": UserFactory(organization=None, email="ceo@initech.example"),
        "dev": UserFactory(organization=None, email="dev@initech.example"),
    }


def submit(requester) -> EnterpriseAccountRequest:
    return enterprise_request_submit(
        requester=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=["ceo@initech.example", "dev@initech.example"],
        admin_emails=["ceo@initech.example"],
        inference_tokens=4_000_000,
        embedding_tokens=2_000_000,
    )


def test_a_new_request_is_mailed_to_the_sales_desk_after_commit(
    people, sales_user, superuser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enterprise = submit(people["ceo"])
    assert mail.outbox == []  # nothing before the commit
    for callback in callbacks:
        callback()
    (email,) = mail.outbox
    assert email.to == ["sales@vendor.example"]  # the Sales group, not superusers
    assert email.subject == "New Enterprise Account request: Initech"
    assert "ceo@initech.example" in email.body
    assert "2 users, 4,000,000 inference and 2,000,000 embedding tokens" in email.body
    review = reverse(
        "admin:accounts_enterpriseaccountrequest_change", args=[enterprise.pk]
    )
    assert settings.SITE_URL + review in email.body


def test_the_web_form_mails_sales(
    people, sales_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_in(people["ceo"]).post(
            reverse("tokens:enterprise_request"),
            {
                "organization_name": "Initech",
                "billing_address": "1 Initech Way",
                "user_emails": "ceo@initech.example, dev@initech.example",
                "admin_emails": "ceo@initech.example",
                "inference_tokens": "2,000,000",
                "embedding_tokens": "2 000 000",
            },
        )
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["sales@vendor.example"]]


def test_activation_mails_the_requester_and_each_added_user(
    people, sales_user, django_capture_on_commit_callbacks
):
    enterprise = submit(people["ceo"])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        organization = enterprise_request_activate(actor=sales_user, request=enterprise)
    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {("ceo@initech.example",), ("dev@initech.example",)}
    activated = by_recipient[("ceo@initech.example",)]
    assert activated.subject == "Your Enterprise Account Initech is active"
    assert settings.SITE_URL + reverse("panel") in activated.body
    added = by_recipient[("dev@initech.example",)]
    assert added.subject == f"You are now a member of {organization.name}"
    assert "as user" in added.body
    assert settings.SITE_URL + reverse("tokens:me") in added.body


def test_rejection_mails_the_reason_to_the_requester(
    people, sales_user, django_capture_on_commit_callbacks
):
    enterprise = submit(people["ceo"])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        enterprise_request_reject(
            actor=sales_user, request=enterprise, reason="Payment not received."
        )
    (email,) = mail.outbox
    assert email.to == ["ceo@initech.example"]
    assert "Reason: Payment not received." in email.body
    assert settings.SITE_URL + reverse("tokens:enterprise_request") in email.body


def test_a_refused_decision_sends_nothing(
    people, sales_user, django_capture_on_commit_callbacks
):
    enterprise = submit(people["ceo"])
    mail.outbox.clear()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValidationError, match="reason"),
    ):
        enterprise_request_reject(actor=sales_user, request=enterprise, reason="")
    assert mail.outbox == []


def test_staff_adding_a_member_mails_them(
    org, sales_user, django_capture_on_commit_callbacks
):
    fund(org)
    newcomer = UserFactory(organization=None, email="new@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        organization_add_member(
            actor=sales_user, organization=org, user=newcomer, role="admin"
        )
    (email,) = mail.outbox
    assert email.to == ["new@acme.example"]
    assert f"You were added to the Enterprise Account {org.name} as admin" in (
        email.body
    )
    assert settings.SITE_URL + reverse("panel") in email.body


def test_a_failure_to_send_is_logged_and_the_action_stands(
    people, sales_user, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    enterprise = submit(people["ceo"])

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("SMTP server down")

    monkeypatch.setattr(sales_emails, "send_templated_email", broken)
    with (
        caplog.at_level(logging.ERROR, logger="tokens.emails"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        organization = enterprise_request_activate(actor=sales_user, request=enterprise)
    enterprise.refresh_from_db()
    assert enterprise.status == EnterpriseAccountRequest.Status.ACTIVATED
    assert organization.members.count() == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("Could not send the activation e-mail" in m for m in messages)
    assert any("Could not send the member added e-mail" in m for m in messages)


def test_the_staff_action_survives_a_failing_mail_server(
    people, sales_user, monkeypatch, django_capture_on_commit_callbacks
):
    enterprise = submit(people["ceo"])

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("SMTP server down")

    monkeypatch.setattr(sales_emails, "send_templated_email", broken)
    client = sign_in(sales_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:accounts_enterpriseaccountrequest_changelist"),
            {
                "action": "reject_requests",
                "_selected_action": [enterprise.pk],
                "apply": "1",
                "reason": "Not now.",
            },
        )
    assert response.status_code == 302
    enterprise.refresh_from_db()
    assert enterprise.status == EnterpriseAccountRequest.Status.REJECTED
