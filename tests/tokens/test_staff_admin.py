"""The staff site (/staff/) as sales staff and superusers use it: the sales flow's
actions go through the services, ledger tables are view-only, and people who are
not staff are sent to the staff sign-in."""

import re

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import AuditEvent, EnterpriseAccountRequest, ServiceKey, User
from accounts.services import service_key_create, service_key_digest
from tests.conftest import sign_in
from tests.factories import AdminFactory, OrganizationFactory, UserFactory, fund, give
from tokens import selectors
from tokens.models import AllocationChange, Purchase
from tokens.services import enterprise_request_submit, organization_add_member

Action = AuditEvent.Action
MIN = 200_000


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def pending(db):
    requester = UserFactory(organization=None, email="ceo@initech.example")
    UserFactory(organization=None, email="dev@initech.example")
    return enterprise_request_submit(
        requester=requester,
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails="ceo@initech.example, dev@initech.example",
        admin_emails="ceo@initech.example",
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )


@pytest.fixture
def funded_org(db):
    org = OrganizationFactory(name="Hooli")
    fund(org, inference=2_000_000, embedding=2_000_000)
    AdminFactory(organization=org, email="boss@hooli.example")
    return org


# --- access ---------------------------------------------------------------------------

SALES_CHANGELISTS = [
    "accounts_enterpriseaccountrequest_changelist",
    "accounts_organization_changelist",
    "accounts_user_changelist",
    "tokens_purchase_changelist",
    "tokens_aimodel_changelist",
    "tokens_allocation_changelist",
    "tokens_usageevent_changelist",
]
SUPERUSER_ONLY_CHANGELISTS = [
    "accounts_servicekey_changelist",
    "accounts_auditevent_changelist",
    "tokens_allocationchange_changelist",
    "tokens_dailyusage_changelist",
    "tokens_orgdailyusage_changelist",
    "tokens_monthlyusage_changelist",
    "tokens_hold_changelist",
    "tokens_usagecounter_changelist",
]


@pytest.mark.parametrize("name", SALES_CHANGELISTS)
def test_sales_staff_open_the_sales_changelists(sales_client, pending, name):
    assert sales_client.get(admin_url(name)).status_code == 200


@pytest.mark.parametrize("name", SUPERUSER_ONLY_CHANGELISTS)
def test_sales_staff_cannot_open_other_changelists(sales_client, name):
    assert sales_client.get(admin_url(name)).status_code == 403


@pytest.mark.parametrize("name", SALES_CHANGELISTS + SUPERUSER_ONLY_CHANGELISTS)
def test_superuser_opens_every_changelist(superuser_client, pending, name):
    assert superuser_client.get(admin_url(name)).status_code == 200


@pytest.mark.parametrize("persona", ["member_client", "admin_client"])
def test_people_who_are_not_staff_are_sent_to_the_staff_sign_in(request, persona):
    client = request.getfixturevalue(persona)
    response = client.get(admin_url("accounts_enterpriseaccountrequest_changelist"))
    assert response.status_code == 302
    assert response.url.startswith(admin_url("login"))


def test_enterprise_request_detail_is_read_only(sales_client, pending):
    response = sales_client.get(
        admin_url("accounts_enterpriseaccountrequest_change", pending.pk)
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "dev@initech.example" in content
    assert 'name="_save"' not in content
    assert (
        sales_client.get(admin_url("accounts_enterpriseaccountrequest_add")).status_code
        == 403
    )


@pytest.mark.parametrize(
    "model",
    [
        "allocation",
        "allocationchange",
        "usageevent",
        "dailyusage",
        "orgdailyusage",
        "monthlyusage",
        "hold",
    ],
)
def test_ledger_models_refuse_add(superuser_client, model):
    assert superuser_client.get(admin_url(f"tokens_{model}_add")).status_code == 403


def test_ledger_rows_cannot_be_changed_or_deleted(superuser_client, funded_org):
    boss = funded_org.members.get()
    change = give(boss, MIN)
    url = admin_url("tokens_allocationchange_change", change.pk)
    response = superuser_client.post(url, {"delta": "999"})
    assert response.status_code == 403
    delete = admin_url("tokens_allocationchange_delete", change.pk)
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    change.refresh_from_db()
    assert change.delta == MIN


# --- enterprise requests: activate and reject -----------------------------------------


def run_action(client, name: str, action: str, pks, **extra):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "index": 0}
    data.update(extra)
    return client.post(admin_url(name), data, follow=True)


def test_the_activate_action_first_shows_what_will_happen(sales_client, pending):
    response = run_action(
        sales_client,
        "accounts_enterpriseaccountrequest_changelist",
        "activate_requests",
        [pending.pk],
    )
    assert response.status_code == 200
    assert "admin/tokens/activate_requests.html" in [t.name for t in response.templates]
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))
    assert "Purchase recorded: 2,000,000 inference and 2,000,000 embedding" in page
    assert "Each user's limits: 1,000,000 inference and 1,000,000 embedding" in page
    assert "2 users: ceo@initech.example (admin), dev@initech.example" in page
    assert 'value="Yes, activate"' in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING
    assert not AuditEvent.objects.filter(action=Action.ORG_ACTIVATED).exists()


def test_the_confirmation_names_why_activation_would_be_refused(sales_client, pending):
    User.objects.filter(email="dev@initech.example").update(
        organization=OrganizationFactory()
    )
    response = run_action(
        sales_client,
        "accounts_enterpriseaccountrequest_changelist",
        "activate_requests",
        [pending.pk],
    )
    page = response.content.decode()
    assert "Activation will be refused, nothing changed:" in page
    assert "These users already belong to an organization: dev@initech.example" in (
        page
    )


def test_sales_activates_a_request_from_the_staff_site(sales_client, pending):
    response = run_action(
        sales_client,
        "accounts_enterpriseaccountrequest_changelist",
        "activate_requests",
        [pending.pk],
        apply="1",
    )

    assert response.status_code == 200
    assert "Activated Initech: organization created with 2 users." in [
        re.sub(r"<[^>]+>", "", m) for m in messages_of(response)
    ]
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.ACTIVATED
    org = pending.organization
    assert org.members.count() == 2
    assert selectors.allocated(org) == {"inference": 2_000_000, "embedding": 2_000_000}
    assert AuditEvent.objects.filter(action=Action.ORG_ACTIVATED).count() == 1


def test_activate_action_refuses_a_request_that_is_not_pending(sales_client, pending):
    run_action(
        sales_client,
        "accounts_enterpriseaccountrequest_changelist",
        "activate_requests",
        [pending.pk],
        apply="1",
    )
    response = run_action(
        sales_client,
        "accounts_enterpriseaccountrequest_changelist",
        "activate_requests",
        [pending.pk],
        apply="1",
    )
    assert (
        "Initech was not activated: This request is already activated."
        in messages_of(response)
    )
    assert AuditEvent.objects.filter(action=Action.ORG_ACTIVATED).count() == 1


def test_reject_asks_for_a_reason_on_a_confirmation_page(sales_client, pending):
    changelist = "accounts_enterpriseaccountrequest_changelist"
    response = run_action(sales_client, changelist, "reject_requests", [pending.pk])

    assert response.status_code == 200
    assert "admin/tokens/reject_requests.html" in [t.name for t in response.templates]
    assert b'name="reason"' in response.content
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING


def test_reject_without_a_reason_shows_the_message_and_changes_nothing(
    sales_client, pending
):
    response = sales_client.post(
        admin_url("accounts_enterpriseaccountrequest_changelist"),
        {
            "action": "reject_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
            "reason": "  ",
        },
    )
    assert response.status_code == 200
    assert b"Give a reason for the rejection." in response.content
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING


def test_reject_with_a_reason_rejects_the_request(sales_client, sales_user, pending):
    response = sales_client.post(
        admin_url("accounts_enterpriseaccountrequest_changelist"),
        {
            "action": "reject_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
            "reason": "Payment not received.",
        },
        follow=True,
    )
    assert "Rejected 1 request." in messages_of(response)
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.REJECTED
    assert pending.rejection_reason == "Payment not received."
    assert pending.reviewed_by == sales_user
    event = AuditEvent.objects.get(action=Action.ORG_REQUEST_REJECTED)
    assert event.actor == sales_user


def test_reject_refuses_a_request_that_is_not_pending(sales_client, pending):
    changelist = "accounts_enterpriseaccountrequest_changelist"
    run_action(sales_client, changelist, "activate_requests", [pending.pk], apply="1")
    response = sales_client.post(
        admin_url(changelist),
        {
            "action": "reject_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
            "reason": "Too late.",
        },
        follow=True,
    )
    assert (
        "Initech was not rejected: This request is already activated."
        in messages_of(response)
    )
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.ACTIVATED


def test_the_request_page_has_activate_and_reject_for_a_pending_request(
    sales_client, pending
):
    page = sales_client.get(
        admin_url("accounts_enterpriseaccountrequest_change", pending.pk)
    ).content.decode()
    activate = admin_url("accounts_enterpriseaccountrequest_activate", pending.pk)
    reject = admin_url("accounts_enterpriseaccountrequest_reject", pending.pk)
    assert f'href="{activate}"' in page
    assert f'href="{reject}"' in page


def test_activating_from_the_request_page_confirms_then_returns_to_it(
    sales_client, pending
):
    activate = admin_url("accounts_enterpriseaccountrequest_activate", pending.pk)
    confirmation = sales_client.get(activate)
    assert "admin/tokens/activate_requests.html" in [
        t.name for t in confirmation.templates
    ]
    assert sales_client.post(activate).status_code == 405
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING
    # The confirmation's form: the list action with apply, back to the page.
    response = sales_client.post(
        admin_url("accounts_enterpriseaccountrequest_changelist"),
        {
            "action": "activate_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
            "_back_to": str(pending.pk),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == admin_url(
        "accounts_enterpriseaccountrequest_change", pending.pk
    )
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.ACTIVATED
    page = sales_client.get(response["Location"]).content.decode()
    assert "Activate…" not in page  # no longer pending


def test_rejecting_from_the_request_page_asks_the_reason(sales_client, pending):
    reject = admin_url("accounts_enterpriseaccountrequest_reject", pending.pk)
    assert b'name="reason"' in sales_client.get(reject).content
    response = sales_client.post(
        admin_url("accounts_enterpriseaccountrequest_changelist"),
        {
            "action": "reject_requests",
            "_selected_action": [pending.pk],
            "apply": "1",
            "reason": "Payment not received.",
            "_back_to": str(pending.pk),
        },
    )
    assert response["Location"] == admin_url(
        "accounts_enterpriseaccountrequest_change", pending.pk
    )
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.REJECTED


def test_staff_without_the_review_permission_get_no_decision_pages(db, pending):
    viewer = UserFactory(
        organization=None, email="viewer@vendor.example", is_staff=True
    )
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_enterpriseaccountrequest")
    )
    client = sign_in(viewer)
    page = client.get(
        admin_url("accounts_enterpriseaccountrequest_change", pending.pk)
    ).content.decode()
    assert "Activate…" not in page
    response = client.get(
        admin_url("accounts_enterpriseaccountrequest_activate", pending.pk)
    )
    assert response.status_code == 403


# --- purchases ------------------------------------------------------------------------


def purchase_form(org, **overrides) -> dict:
    data = {
        "organization": org.pk,
        "payer_email": "billing@hooli.example",
        "inference_tokens": "4000000",
        "embedding_tokens": "2000000",
        "purchased_on": "2026-01-15",
        "starts_on": "2026-01-15",
        "expires_on": "",
        "comment": "Top-up",
    }
    data.update(overrides)
    return data


def test_adding_a_purchase_records_it_through_the_service(
    sales_client, sales_user, org
):
    response = sales_client.post(
        admin_url("tokens_purchase_add"), purchase_form(org), follow=True
    )

    assert response.status_code == 200
    purchase = Purchase.objects.get(organization=org)
    assert purchase.inference_tokens == 4_000_000
    assert purchase.recorded_by == sales_user
    event = AuditEvent.objects.get(action=Action.PURCHASE_RECORDED)
    assert event.actor == sales_user
    assert event.target_id == str(purchase.pk)


def test_purchase_not_in_lots_is_refused_with_the_message(sales_client, org):
    response = sales_client.post(
        admin_url("tokens_purchase_add"),
        purchase_form(org, inference_tokens="1000000"),
    )

    assert response.status_code == 200
    assert (
        "Tokens are sold in lots of 2,000,000: enter 0 or a multiple of 2,000,000."
        in response.content.decode()
    )
    assert not Purchase.objects.exists()
    assert not AuditEvent.objects.filter(action=Action.PURCHASE_RECORDED).exists()


def test_only_the_comment_of_a_purchase_can_change(superuser_client, funded_org):
    purchase = Purchase.objects.get(organization=funded_org)
    url = admin_url("tokens_purchase_change", purchase.pk)
    response = superuser_client.post(
        url,
        purchase_form(funded_org, inference_tokens="8000000", comment="Wire 42"),
    )
    assert response.status_code == 302
    purchase.refresh_from_db()
    assert purchase.comment == "Wire 42"
    assert purchase.inference_tokens == 2_000_000


def test_purchases_cannot_be_deleted(superuser_client, funded_org):
    purchase = Purchase.objects.get(organization=funded_org)
    url = admin_url("tokens_purchase_delete", purchase.pk)
    assert superuser_client.post(url, {"post": "yes"}).status_code == 403
    assert Purchase.objects.filter(pk=purchase.pk).exists()


# --- service keys ---------------------------------------------------------------------


def test_creating_a_service_key_shows_the_secret_once_and_stores_its_digest(
    superuser_client, org
):
    response = superuser_client.post(
        admin_url("accounts_servicekey_add"),
        {"name": "Acme gateway", "organization": org.pk},
        follow=True,
    )

    content = response.content.decode()
    match = re.search(r"\beak_[0-9a-f]{12}_[A-Za-z0-9_-]+", content)
    assert match, "the secret is shown"
    secret = match.group(0)
    key = ServiceKey.objects.get()
    assert key.organization == org
    assert key.digest == service_key_digest(secret)
    assert secret not in str(list(ServiceKey.objects.values()))
    assert AuditEvent.objects.filter(action=Action.SERVICE_KEY_CREATED).count() == 1
    again = superuser_client.get(admin_url("accounts_servicekey_changelist"))
    detail = superuser_client.get(admin_url("accounts_servicekey_change", key.pk))
    for page in (again, detail):
        assert secret not in page.content.decode()
        assert key.digest not in page.content.decode()


def test_revoke_action_revokes_the_key(superuser_client):
    key, _secret = service_key_create(actor=None, name="old gateway")
    response = run_action(
        superuser_client, "accounts_servicekey_changelist", "revoke_keys", [key.pk]
    )
    assert "Revoked 1 key." in messages_of(response)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action=Action.SERVICE_KEY_REVOKED).count() == 1


def test_service_keys_cannot_be_deleted(superuser_client):
    key, _secret = service_key_create(actor=None, name="gateway")
    url = admin_url("accounts_servicekey_delete", key.pk)
    assert superuser_client.post(url, {"post": "yes"}).status_code == 403


# --- members --------------------------------------------------------------------------


def test_organization_page_offers_add_member_to_sales(sales_client, funded_org):
    response = sales_client.get(
        admin_url("accounts_organization_change", funded_org.pk)
    )
    assert response.status_code == 200
    assert admin_url("accounts_organization_add_member", funded_org.pk) in (
        response.content.decode()
    )


def test_add_member_through_the_staff_site(sales_client, sales_user, funded_org):
    newcomer = UserFactory(organization=None, email="new@hooli.example")
    url = admin_url("accounts_organization_add_member", funded_org.pk)
    assert sales_client.get(url).status_code == 200

    response = sales_client.post(
        url, {"email": "NEW@hooli.example", "role": "admin"}, follow=True
    )

    assert "Added new@hooli.example to Hooli as admin." in messages_of(response)
    newcomer.refresh_from_db()
    assert newcomer.organization == funded_org
    assert newcomer.role == User.Role.ADMIN
    event = AuditEvent.objects.get(action=Action.MEMBER_ADDED)
    assert event.actor == sales_user
    changes = AllocationChange.objects.filter(user=newcomer)
    assert {c.audit_event_id for c in changes} == {event.pk}
    assert selectors.allocated(funded_org) == {"inference": MIN, "embedding": MIN}


def test_add_member_shows_the_missing_tokens_when_the_pool_is_short(
    sales_client, funded_org
):
    give(funded_org.members.get(), 2_000_000, "embedding")
    UserFactory(organization=None, email="new@hooli.example")

    response = sales_client.post(
        admin_url("accounts_organization_add_member", funded_org.pk),
        {"email": "new@hooli.example", "role": "user"},
    )

    assert response.status_code == 200
    assert "200,000 embedding tokens are missing" in response.content.decode()
    assert User.objects.get(email="new@hooli.example").organization is None
    assert not AuditEvent.objects.filter(action=Action.MEMBER_ADDED).exists()


def test_add_member_with_an_unknown_email_shows_the_message(sales_client, funded_org):
    response = sales_client.post(
        admin_url("accounts_organization_add_member", funded_org.pk),
        {"email": "ghost@hooli.example", "role": "user"},
    )
    assert response.status_code == 200
    assert (
        "No registered user has the email ghost@hooli.example: they must register "
        "first." in response.content.decode()
    )


def test_remove_member_asks_for_confirmation_then_returns_the_tokens(
    sales_client, sales_user, funded_org
):
    leaver = UserFactory(organization=None, email="leaver@hooli.example")
    organization_add_member(
        actor=sales_user, organization=funded_org, user=leaver, role="user"
    )
    changelist = "accounts_user_changelist"

    confirm = run_action(
        sales_client, changelist, "remove_from_organization", [leaver.pk]
    )
    assert "admin/tokens/remove_members.html" in [t.name for t in confirm.templates]
    # The page shows the plan the removal applies: the limits going back.
    minimum = f"{django_settings.MIN_USER_TOKENS:,}"
    assert (
        f"{minimum} inference tokens back to the pool, {minimum} embedding tokens "
        "back to the pool" in confirm.content.decode()
    )
    leaver.refresh_from_db()
    assert leaver.organization == funded_org

    response = sales_client.post(
        admin_url(changelist),
        {
            "action": "remove_from_organization",
            "_selected_action": [leaver.pk],
            "apply": "1",
        },
        follow=True,
    )

    assert any("Removed 1 user from" in m for m in messages_of(response))
    leaver.refresh_from_db()
    assert leaver.organization is None
    assert selectors.allocated(funded_org) == {"inference": 0, "embedding": 0}
    event = AuditEvent.objects.get(action=Action.MEMBER_REMOVED)
    assert event.actor == sales_user
    assert set(
        AllocationChange.objects.filter(user=leaver, delta__lt=0).values_list(
            "audit_event_id", flat=True
        )
    ) == {event.pk}


def test_remove_action_refuses_the_last_admin(sales_client, funded_org):
    boss = funded_org.members.get()
    response = sales_client.post(
        admin_url("accounts_user_changelist"),
        {
            "action": "remove_from_organization",
            "_selected_action": [boss.pk],
            "apply": "1",
        },
        follow=True,
    )
    assert (
        "boss@hooli.example was not removed: boss@hooli.example is the only admin "
        "of Hooli: make another member an admin first." in messages_of(response)
    )
    boss.refresh_from_db()
    assert boss.organization == funded_org


def test_purchase_pages_open(sales_client, superuser_client, funded_org):
    add = sales_client.get(
        admin_url("tokens_purchase_add") + f"?organization={funded_org.pk}"
    )
    assert add.status_code == 200
    assert b'name="inference_tokens"' in add.content
    purchase = Purchase.objects.get(organization=funded_org)
    change = superuser_client.get(admin_url("tokens_purchase_change", purchase.pk))
    assert change.status_code == 200
    assert b'name="comment"' in change.content
    assert b'name="inference_tokens"' not in change.content
