"""The enterprise account flow (docs/product.md, Sales flow): the public intake at
/enterprise/request/, its activation or rejection by staff, and members added or removed
afterwards."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Sum
from django.urls import reverse

from accounts.models import AuditEvent, EnterpriseAccountRequest, Organization, User
from tests.conftest import sign_in
from tests.factories import AdminFactory, OrganizationFactory, UserFactory, fund, give
from tests.kit import race, run_threads
from tokens import selectors
from tokens.models import Allocation, AllocationChange, Purchase
from tokens.services import (
    enterprise_request_activate,
    enterprise_request_reject,
    enterprise_request_submit,
    organization_add_member,
    organization_remove_member,
)

Action = AuditEvent.Action
URL = reverse("tokens:enterprise_request")
MIN = 200_000


def registered(email: str, **kwargs) -> User:
    """A registered user (terms accepted) in no organization."""
    return UserFactory(organization=None, email=email, **kwargs)


@pytest.fixture
def requester(db):
    return registered("ceo@initech.example")


@pytest.fixture
def colleague(db):
    return registered("dev@initech.example")


@pytest.fixture
def requester_client(requester):
    return sign_in(requester)


def form_data(**overrides) -> dict:
    data = {
        "organization_name": "Initech",
        "billing_address": "1 Initech Way\nAustin TX",
        "user_emails": "ceo@initech.example\ndev@initech.example",
        "admin_emails": "ceo@initech.example",
        "inference_tokens": "2000000",
        "embedding_tokens": "2000000",
        "other_information": "",
    }
    data.update(overrides)
    return data


def requests_audited() -> int:
    return AuditEvent.objects.filter(action=Action.ORG_REQUESTED).count()


# --- the intake page ------------------------------------------------------------------


def test_anonymous_is_redirected_to_sign_in(anon_client):
    response = anon_client.get(URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))
    assert "next=/enterprise/request/" in response.url


def test_form_renders_for_a_registered_user(requester_client):
    response = requester_client.get(URL)
    assert response.status_code == 200
    assert b"Request an Enterprise Account" in response.content
    assert b'name="user_emails"' in response.content


def test_member_of_an_organization_sees_a_message_instead_of_the_form(member_client):
    response = member_client.get(URL)
    assert response.status_code == 200
    assert b"You are already in an organization" in response.content
    assert b"Acme Corp" in response.content
    assert b'name="user_emails"' not in response.content


def test_member_of_an_organization_cannot_post_a_request(member_client, colleague):
    data = form_data(user_emails="member@acme.example, dev@initech.example")
    response = member_client.post(URL, data)
    assert response.status_code == 200
    assert b"You are already in an organization" in response.content
    assert not EnterpriseAccountRequest.objects.exists()


def test_valid_request_is_saved_pending_with_one_audit_event(
    requester_client, requester, colleague
):
    before = AuditEvent.objects.count()

    response = requester_client.post(URL, form_data())

    assert response.status_code == 302
    assert response.url == URL
    request = EnterpriseAccountRequest.objects.get()
    assert request.status == EnterpriseAccountRequest.Status.PENDING
    assert request.requested_by == requester
    assert request.user_emails == ["ceo@initech.example", "dev@initech.example"]
    assert request.admin_emails == ["ceo@initech.example"]
    assert request.inference_tokens == 2_000_000
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert event.action == Action.ORG_REQUESTED
    assert event.actor == requester
    assert event.target_id == str(request.pk)


def test_after_sending_the_user_sees_the_done_page(
    requester_client, requester, colleague
):
    response = requester_client.post(URL, form_data(), follow=True)
    content = response.content.decode()
    assert "Enterprise Account requested" in content
    assert "Request sent" in content
    assert "dev@initech.example" in content
    assert 'name="user_emails"' not in content


def test_emails_are_collapsed_without_regard_to_case(
    requester_client, requester, colleague
):
    data = form_data(
        user_emails="CEO@Initech.example, ceo@initech.example;\n Dev@INITECH.example",
        admin_emails="Ceo@initech.example\nceo@initech.example",
    )
    response = requester_client.post(URL, data)
    assert response.status_code == 302
    request = EnterpriseAccountRequest.objects.get()
    assert request.user_emails == ["ceo@initech.example", "dev@initech.example"]
    assert request.admin_emails == ["ceo@initech.example"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"user_emails": "ceo@initech.example"},
            "An Enterprise Account needs at least 2 users; you listed 1.",
        ),
        (
            {"user_emails": "ceo@initech.example, ghost@nowhere.example"},
            "These emails do not belong to a registered user: ghost@nowhere.example.",
        ),
        (
            {"user_emails": "ceo@initech.example, late@initech.example"},
            "These users have not accepted the terms of service yet: "
            "late@initech.example.",
        ),
        (
            {"user_emails": "ceo@initech.example, member@acme.example"},
            "These users already belong to an organization: member@acme.example.",
        ),
        ({"admin_emails": ""}, "Name at least one admin."),
        (
            {"admin_emails": "ceo@initech.example, outsider@initech.example"},
            "Every admin must also be listed among the users; these are not: "
            "outsider@initech.example.",
        ),
        (
            {"inference_tokens": "3000000"},
            "Tokens are sold in lots of 2,000,000: enter a multiple of 2,000,000.",
        ),
        (
            {"embedding_tokens": "0"},
            "2 users need at least 400,000 embedding tokens (200,000 each): enter "
            "2,000,000 or more.",
        ),
        (
            {"user_emails": "dev@initech.example, outsider@initech.example"},
            "Include your own email (ceo@initech.example) among the users.",
        ),
        (
            {"user_emails": "ceo@initech.example, not-an-email"},
            "These are not valid email addresses: not-an-email.",
        ),
    ],
    ids=[
        "fewer-than-2-users",
        "unknown-email",
        "terms-not-accepted",
        "already-in-an-organization",
        "no-admin",
        "admin-not-among-users",
        "not-a-multiple-of-the-lot",
        "below-the-minimum",
        "requester-not-among-users",
        "invalid-email",
    ],
)
def test_invalid_request_shows_the_message_and_saves_nothing(
    requester_client, colleague, member, overrides, message
):
    registered("late@initech.example", terms_accepted_at=None)
    registered("outsider@initech.example")

    response = requester_client.post(URL, form_data(**overrides))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not EnterpriseAccountRequest.objects.exists()
    assert requests_audited() == 0


def test_amount_below_the_minimum_for_many_users_is_refused(requester_client):
    emails = ["ceo@initech.example"] + [f"u{i}@initech.example" for i in range(10)]
    for email in emails[1:]:
        registered(email)
    registered("ceo2@initech.example")

    response = requester_client.post(
        URL,
        form_data(user_emails="\n".join(emails), inference_tokens="2000000"),
    )

    assert response.status_code == 200
    assert (
        "11 users need at least 2,200,000 inference tokens (200,000 each): enter "
        "4,000,000 or more." in response.content.decode()
    )
    assert not EnterpriseAccountRequest.objects.exists()


def test_second_pending_request_is_refused(requester_client, requester, colleague):
    assert requester_client.post(URL, form_data()).status_code == 302

    response = requester_client.post(URL, form_data(organization_name="Initech 2"))

    assert response.status_code == 200
    assert "You already have a pending request (Initech, sent on" in (
        response.content.decode()
    )
    assert EnterpriseAccountRequest.objects.count() == 1
    assert requests_audited() == 1


def test_pending_request_is_shown_instead_of_the_form(
    requester_client, requester, colleague
):
    requester_client.post(URL, form_data())
    response = requester_client.get(URL)
    assert b"Enterprise Account requested" in response.content
    assert b'name="user_emails"' not in response.content


def test_after_a_rejection_the_user_sees_the_reason_and_may_ask_again(
    requester_client, requester, colleague, superuser
):
    requester_client.post(URL, form_data())
    enterprise_request_reject(
        actor=superuser,
        request=EnterpriseAccountRequest.objects.get(),
        reason="Payment not received.",
    )
    response = requester_client.get(URL)
    assert b"Payment not received." in response.content
    assert requester_client.post(URL, form_data()).status_code == 302
    assert EnterpriseAccountRequest.objects.count() == 2


def test_service_refuses_the_same_rules_without_the_form(requester, colleague):
    with pytest.raises(ValidationError) as caught:
        enterprise_request_submit(
            requester=requester,
            organization_name="  ",
            billing_address="",
            user_emails=["ceo@initech.example"],
            admin_emails=[],
            inference_tokens=1_000_000,
            embedding_tokens=2_000_000,
        )
    errors = caught.value.message_dict
    assert errors["organization_name"] == ["Enter the organization's name."]
    assert errors["billing_address"] == ["Enter the billing address."]
    assert errors["admin_emails"] == ["Name at least one admin."]
    assert "lots of 2,000,000" in errors["inference_tokens"][0]
    assert not EnterpriseAccountRequest.objects.exists()


# --- activation and rejection ---------------------------------------------------------


@pytest.fixture
def team(requester, colleague):
    return [requester, colleague, registered("ops@initech.example")]


@pytest.fixture
def pending(team):
    """A pending request: 3 users, the requester and ops as admins, 4M + 2M."""
    return enterprise_request_submit(
        requester=team[0],
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=[u.email for u in team],
        admin_emails=["ceo@initech.example", "ops@initech.example"],
        inference_tokens=4_000_000,
        embedding_tokens=2_000_000,
    )


def snapshot() -> dict:
    return {
        "orgs": Organization.objects.count(),
        "purchases": Purchase.objects.count(),
        "changes": AllocationChange.objects.count(),
        "events": AuditEvent.objects.count(),
        "allocations": list(Allocation.objects.values_list("user_id", "limit")),
        "members": list(User.objects.values_list("pk", "organization_id", "role")),
    }


def test_activation_creates_the_organization_with_its_purchase_and_members(
    pending, team, sales_user
):
    org = enterprise_request_activate(actor=sales_user, request=pending)

    org.refresh_from_db()
    assert org.name == "Initech"
    assert org.status == Organization.Status.ACTIVE
    assert org.activated_at is not None
    assert org.email == "ceo@initech.example"
    assert org.billing_address == "1 Initech Way"
    purchase = Purchase.objects.get(organization=org)
    assert (purchase.inference_tokens, purchase.embedding_tokens) == (
        4_000_000,
        2_000_000,
    )
    assert purchase.payer_email == "ceo@initech.example"
    assert purchase.recorded_by == sales_user
    roles = dict(org.members.values_list("email", "role"))
    assert roles == {
        "ceo@initech.example": User.Role.ADMIN,
        "dev@initech.example": User.Role.USER,
        "ops@initech.example": User.Role.ADMIN,
    }
    assert all(org.members.values_list("is_paid", flat=True))
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.ACTIVATED
    assert pending.reviewed_by == sales_user
    assert pending.reviewed_at is not None
    assert pending.organization == org


def test_activation_gives_every_user_an_equal_share_within_the_pool(
    pending, team, sales_user
):
    org = enterprise_request_activate(actor=sales_user, request=pending)

    limits = {
        (a.user_id, a.token_type): a.limit
        for a in Allocation.objects.filter(organization=org)
    }
    for user in team:
        assert limits[(user.pk, "inference")] == 4_000_000 // 3 == 1_333_333
        assert limits[(user.pk, "embedding")] == 2_000_000 // 3 == 666_666
        assert min(limits[(user.pk, t)] for t in ("inference", "embedding")) >= MIN
    pools, allocated = selectors.pools(org), selectors.allocated(org)
    assert allocated["inference"] == 3_999_999 <= pools["inference"]
    assert allocated["embedding"] == 1_999_998 <= pools["embedding"]


def test_activation_writes_one_audit_event_per_user_and_links_every_change(
    pending, team, sales_user
):
    before = AuditEvent.objects.count()
    org = enterprise_request_activate(actor=sales_user, request=pending)

    events = AuditEvent.objects.order_by("id")[before:]
    actions = [e.action for e in events]
    assert actions.count(Action.PURCHASE_RECORDED) == 1
    assert actions.count(Action.ORG_ACTIVATED) == 1
    assert actions.count(Action.LIMIT_CHANGED) == len(team)
    assert len(actions) == len(team) + 2
    activated = AuditEvent.objects.get(action=Action.ORG_ACTIVATED)
    assert activated.target_id == str(org.pk)
    assert activated.after["name"] == "Initech"
    assert activated.after["users"] == 3
    assert activated.after["admins"] == ["ceo@initech.example", "ops@initech.example"]
    for user in team:
        event = AuditEvent.objects.get(
            action=Action.LIMIT_CHANGED, target_id=str(user.pk)
        )
        assert event.organization == org
        assert event.before == {"inference_limit": 0, "embedding_limit": 0}
        assert event.after == {"inference_limit": 1_333_333, "embedding_limit": 666_666}
        changes = AllocationChange.objects.filter(user=user)
        assert changes.count() == 2
        assert {c.audit_event_id for c in changes} == {event.pk}
        assert {c.source for c in changes} == {AllocationChange.Source.ACTIVATION}
    # Ledger invariant: each limit is the sum of its changes.
    for allocation in Allocation.objects.filter(organization=org):
        total = AllocationChange.objects.filter(
            user=allocation.user, token_type=allocation.token_type
        ).aggregate(total=Sum("delta"))["total"]
        assert total == allocation.limit


def test_activating_twice_is_refused_and_changes_nothing(pending, sales_user):
    enterprise_request_activate(actor=sales_user, request=pending)
    before = snapshot()

    with pytest.raises(ValidationError) as caught:
        enterprise_request_activate(actor=sales_user, request=pending)

    assert caught.value.messages == ["This request is already activated."]
    assert snapshot() == before


def test_activation_is_refused_when_a_user_joined_another_org_meanwhile(
    pending, colleague, other_org, sales_user
):
    colleague.organization = other_org
    colleague.save()
    before = snapshot()

    with pytest.raises(ValidationError) as caught:
        enterprise_request_activate(actor=sales_user, request=pending)

    assert (
        "These users already belong to an organization: dev@initech.example."
        in caught.value.messages
    )
    assert snapshot() == before
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING


def test_reject_records_the_reason_with_one_audit_event(pending, sales_user):
    before = AuditEvent.objects.count()

    enterprise_request_reject(
        actor=sales_user, request=pending, reason="  Payment not received.  "
    )

    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.REJECTED
    assert pending.rejection_reason == "Payment not received."
    assert pending.reviewed_by == sales_user
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.get(action=Action.ORG_REQUEST_REJECTED)
    assert event.message == "Payment not received."
    assert event.after["reason"] == "Payment not received."


def test_reject_without_a_reason_is_refused(pending, sales_user):
    with pytest.raises(ValidationError) as caught:
        enterprise_request_reject(actor=sales_user, request=pending, reason="   ")
    assert caught.value.messages == ["Give a reason for the rejection."]
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING
    assert not AuditEvent.objects.filter(action=Action.ORG_REQUEST_REJECTED).exists()


def test_activating_a_rejected_request_is_refused(pending, sales_user):
    enterprise_request_reject(actor=sales_user, request=pending, reason="No payment.")
    before = snapshot()

    with pytest.raises(ValidationError) as caught:
        enterprise_request_activate(actor=sales_user, request=pending)

    assert caught.value.messages == ["This request is already rejected."]
    assert snapshot() == before


def test_rejecting_an_activated_request_is_refused(pending, sales_user):
    enterprise_request_activate(actor=sales_user, request=pending)
    with pytest.raises(ValidationError) as caught:
        enterprise_request_reject(actor=sales_user, request=pending, reason="Oops.")
    assert caught.value.messages == ["This request is already activated."]


def test_only_sales_staff_and_superusers_decide_requests(pending, admin_user):
    with pytest.raises(PermissionDenied):
        enterprise_request_activate(actor=admin_user, request=pending)
    with pytest.raises(PermissionDenied):
        enterprise_request_reject(actor=admin_user, request=pending, reason="No.")
    pending.refresh_from_db()
    assert pending.status == EnterpriseAccountRequest.Status.PENDING


# --- members after activation ---------------------------------------------------------


@pytest.fixture
def funded_org(db):
    org = OrganizationFactory(name="Hooli")
    fund(org, inference=2_000_000, embedding=2_000_000)
    AdminFactory(organization=org, email="boss@hooli.example")
    return org


def test_add_member_gives_the_minimum_from_the_pool_with_one_audit_event(
    funded_org, sales_user
):
    newcomer = registered("new@hooli.example")

    changes = organization_add_member(
        actor=sales_user, organization=funded_org, user=newcomer, role="user"
    )

    newcomer.refresh_from_db()
    assert newcomer.organization == funded_org
    assert newcomer.role == User.Role.USER
    assert {(c.token_type, c.new_limit) for c in changes} == {
        ("inference", MIN),
        ("embedding", MIN),
    }
    event = AuditEvent.objects.get(action=Action.MEMBER_ADDED)
    assert event.target_id == str(newcomer.pk)
    assert {c.audit_event_id for c in changes} == {event.pk}
    assert selectors.allocated(funded_org) == {"inference": MIN, "embedding": MIN}


def test_add_member_refused_when_the_pool_cannot_cover_the_minimum(
    funded_org, sales_user
):
    boss = funded_org.members.get()
    give(boss, 1_900_000, "inference")
    newcomer = registered("new@hooli.example")
    before = snapshot()

    with pytest.raises(ValidationError) as caught:
        organization_add_member(
            actor=sales_user, organization=funded_org, user=newcomer, role="user"
        )

    message = caught.value.messages[0]
    assert "100,000 inference tokens are missing" in message
    assert "(200,000 needed, 100,000 unallocated)" in message
    assert snapshot() == before


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("terms", "new@hooli.example has not accepted the terms of service yet."),
        ("other_org", "new@hooli.example already belongs to another organization."),
        ("same_org", "new@hooli.example is already a member of Hooli."),
    ],
)
def test_add_member_refuses_users_who_cannot_join(
    funded_org, other_org, sales_user, setup, message
):
    newcomer = registered("new@hooli.example")
    if setup == "terms":
        newcomer.terms_accepted_at = None
    newcomer.organization = {"other_org": other_org, "same_org": funded_org}.get(setup)
    newcomer.save()

    with pytest.raises(ValidationError) as caught:
        organization_add_member(
            actor=sales_user, organization=funded_org, user=newcomer, role="user"
        )
    assert caught.value.messages == [message]


def test_remove_member_returns_the_tokens_to_the_pool(funded_org, sales_user):
    leaver = registered("leaver@hooli.example")
    organization_add_member(
        actor=sales_user, organization=funded_org, user=leaver, role="admin"
    )

    changes = organization_remove_member(actor=sales_user, user=leaver)

    leaver.refresh_from_db()
    assert leaver.organization is None
    assert leaver.role == User.Role.USER
    assert selectors.allocated(funded_org) == {"inference": 0, "embedding": 0}
    event = AuditEvent.objects.get(action=Action.MEMBER_REMOVED)
    assert event.organization == funded_org
    assert event.before["inference_limit"] == MIN
    assert event.after == {
        "organization": None,
        "role": "user",
        "inference_limit": 0,
        "embedding_limit": 0,
    }
    assert {(c.delta, c.audit_event_id) for c in changes} == {(-MIN, event.pk)}
    assert {c.organization_id for c in changes} == {funded_org.pk}


def test_removed_user_can_join_another_organization(funded_org, sales_user):
    mover = registered("mover@hooli.example")
    organization_add_member(
        actor=sales_user, organization=funded_org, user=mover, role="user"
    )
    organization_remove_member(actor=sales_user, user=mover)
    target = OrganizationFactory(name="Pied Piper")
    fund(target, inference=2_000_000, embedding=2_000_000)

    organization_add_member(
        actor=sales_user, organization=target, user=mover, role="user"
    )

    assert selectors.allocated(target) == {"inference": MIN, "embedding": MIN}
    assert selectors.allocated(funded_org) == {"inference": 0, "embedding": 0}


def test_the_last_admin_cannot_be_removed(funded_org, sales_user):
    boss = funded_org.members.get()
    with pytest.raises(ValidationError) as caught:
        organization_remove_member(actor=sales_user, user=boss)
    assert caught.value.messages == [
        "boss@hooli.example is the only admin of Hooli: make another member an "
        "admin first."
    ]
    boss.refresh_from_db()
    assert boss.organization == funded_org


# --- concurrency (PostgreSQL) ---------------------------------------------------------


@race
def test_concurrent_activations_of_one_request_create_one_organization(
    pending, superuser
):
    results = run_threads(
        4,
        lambda i: enterprise_request_activate(actor=superuser, request=pending),
        refusals=True,
    )

    created = [r for r in results if isinstance(r, Organization)]
    assert len(created) == 1
    assert (
        sorted(r for r in results if isinstance(r, str))
        == ["This request is already activated."] * 3
    )
    assert Organization.objects.count() == 1
    assert Purchase.objects.count() == 1
    assert AuditEvent.objects.filter(action=Action.ORG_ACTIVATED).count() == 1


@race
def test_concurrent_activations_sharing_a_user_let_only_one_win(superuser):
    shared = registered("shared@initech.example")
    requests = []
    for name in ("Initech", "Globodyne"):
        owner = registered(f"owner@{name.lower()}.example")
        requests.append(
            enterprise_request_submit(
                requester=owner,
                organization_name=name,
                billing_address="Somewhere",
                user_emails=[owner.email, shared.email],
                admin_emails=[owner.email],
                inference_tokens=2_000_000,
                embedding_tokens=2_000_000,
            )
        )

    results = run_threads(
        2,
        lambda i: enterprise_request_activate(actor=superuser, request=requests[i]),
        refusals=True,
    )

    assert sum(isinstance(r, Organization) for r in results) == 1
    refusal = next(r for r in results if isinstance(r, str))
    assert "already belong to an organization: shared@initech.example" in refusal
    assert Organization.objects.count() == 1
    shared.refresh_from_db()
    assert shared.organization == next(
        r for r in results if isinstance(r, Organization)
    )


@race
def test_concurrent_submissions_leave_one_pending_request(requester, colleague):
    results = run_threads(
        3,
        lambda i: enterprise_request_submit(
            requester=requester,
            organization_name=f"Initech {i}",
            billing_address="1 Initech Way",
            user_emails=[requester.email, colleague.email],
            admin_emails=[requester.email],
            inference_tokens=2_000_000,
            embedding_tokens=2_000_000,
        ),
        refusals=True,
    )

    assert sum(isinstance(r, EnterpriseAccountRequest) for r in results) == 1
    assert EnterpriseAccountRequest.objects.count() == 1
