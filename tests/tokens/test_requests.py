"""Management → Token Requests (docs/product.md, Token Requests): the member's form and
history on /me/, the admin queue, approve / deny, the auto-approval rule, emails and the
sidebar badge."""

import html
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from tests.conftest import sign_in
from tests.factories import (
    AdminFactory,
    AIModelFactory,
    OrganizationFactory,
    UserFactory,
    fund,
    give,
)
from tests.kit import limit, race, run_threads
from tokens.ledger import check_ledger
from tokens.models import (
    AllocationChange,
    AutoApprovalRule,
    TokenRequest,
)
from tokens.services import metering
from tokens.services.requests import (
    auto_approval_rule_update,
    token_request_approve,
    token_request_deny,
    token_request_submit,
)

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
LIST = reverse("tokens:request_list")
SUBMIT = reverse("tokens:request_submit")
RULE = reverse("tokens:request_auto_approval")
ME = reverse("tokens:me")


def approve_url(pk):
    return reverse("tokens:request_approve", kwargs={"pk": pk})


def deny_url(pk):
    return reverse("tokens:request_deny", kwargs={"pk": pk})


def text(response) -> str:
    """The page's text with tags removed and whitespace collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return " ".join(html.unescape(body).split())


def events(action=None):
    rows = AuditEvent.objects.all()
    return rows.filter(action=action) if action else rows


@pytest.fixture
def team(org, admin_user, member):
    """Acme funded with 4,000,000 inference and 2,000,000 embedding tokens; the member
    has 1,000,000 inference, the admin 500,000: 2,500,000 inference unallocated."""
    fund(org, inference=4_000_000, embedding=2_000_000)
    give(member, 1_000_000)
    give(admin_user, 500_000)
    return org


def submit(user, amount=50_000, token_type="inference", reason="Quarter-end reports"):
    return token_request_submit(
        user=user, token_type=token_type, amount=amount, reason=reason
    )


@pytest.fixture
def pending(team, member):
    return submit(member)


def make_request(user, status="pending", amount=10_000, token_type="inference", **kw):
    """A request row written directly (for list tests that need many of them)."""
    return TokenRequest.objects.create(
        organization=user.organization,
        user=user,
        token_type=token_type,
        amount=amount,
        reason=kw.pop("reason", "Needed"),
        limit_at_request=kw.pop("limit_at_request", 0),
        status=status,
        approved_amount=amount if status == "approved" else None,
        decided_at=None if status == "pending" else timezone.now(),
        **kw,
    )


# --- access ---------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(anon_client, pending):
    login = reverse("accounts:login")
    for url in [LIST, approve_url(pending.pk), deny_url(pending.pk)]:
        assert anon_client.get(url)["Location"].startswith(login)
    for url in [approve_url(pending.pk), deny_url(pending.pk), RULE, SUBMIT]:
        assert anon_client.post(url, {"amount": 1})["Location"].startswith(login)
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_member_cannot_see_or_decide_requests(member_client, pending):
    for url in [LIST, approve_url(pending.pk), deny_url(pending.pk)]:
        assert member_client.get(url).status_code == 403
    assert member_client.post(approve_url(pending.pk), {"amount": 5}).status_code == 403
    assert member_client.post(deny_url(pending.pk)).status_code == 403
    assert member_client.post(RULE, {"max_amount": 5}).status_code == 403
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert not events(Action.REQUEST_APPROVED).exists()
    assert not events(Action.REQUEST_DENIED).exists()
    assert not AutoApprovalRule.objects.exists()


def test_admin_of_another_org_gets_404_for_a_request_id(
    other_admin_client, pending, member
):
    for url in [approve_url(pending.pk), deny_url(pending.pk)]:
        assert other_admin_client.get(url).status_code == 404
        assert other_admin_client.post(url, {"amount": 5}).status_code == 404
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert limit(member) == 1_000_000
    response = other_admin_client.get(LIST, {"status": "all"})
    assert response.status_code == 200
    assert list(response.context["table"].page.object_list) == []
    assert "member@acme.example" not in response.content.decode()


def test_service_refuses_an_admin_of_another_org(other_admin_user, pending):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        token_request_approve(actor=other_admin_user, request=pending, amount=5)
    with pytest.raises(PermissionDenied):
        token_request_deny(actor=other_admin_user, request=pending)


def test_get_on_post_only_urls_is_405(admin_client, member_client, team):
    assert admin_client.get(RULE).status_code == 405
    assert member_client.get(SUBMIT).status_code == 405


def test_superuser_opens_an_orgs_queue_with_org_param(superuser_client, pending, org):
    response = superuser_client.get(LIST, {"org": org.pk})
    assert response.status_code == 200
    assert [r.record for r in response.context["table"].page.object_list] == [pending]
    # Links keep the organization.
    assert f"{approve_url(pending.pk)}?org={org.pk}&amp;next=" in (
        response.content.decode()
    )


# --- the member's form on /me/ --------------------------------------------------------


def test_member_submits_a_request(member_client, team, member):
    response = member_client.post(
        SUBMIT,
        {"token_type": "embedding", "amount": "75000", "reason": "  New dataset  "},
    )
    assert response.status_code == 302
    assert response["Location"] == ME + "#requests"
    request = TokenRequest.objects.get()
    assert (request.user, request.organization) == (member, team)
    assert (request.token_type, request.amount, request.reason) == (
        "embedding",
        75_000,
        "New dataset",
    )
    assert request.status == "pending"
    assert request.limit_at_request == 0
    event = events(Action.REQUEST_SUBMITTED).get()
    assert event.actor == member
    assert event.target_id == str(request.pk)
    assert event.after["amount"] == 75_000
    page = text(member_client.get(ME))
    assert "Request sent: 75,000 embedding tokens." in page
    assert "Embedding 75,000 Pending — waiting for an admin" in page


def test_limit_at_request_is_the_users_limit_then(team, member):
    assert submit(member).limit_at_request == 1_000_000


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "lots"}, "amount", "Enter the amount as a whole number of tokens"),
        ({"amount": "1.5"}, "amount", "Enter the amount as a whole number of tokens"),
        ({"amount": "0"}, "amount", "Request at least 1 token."),
        ({"amount": "-5"}, "amount", "Request at least 1 token."),
        ({"amount": ""}, "amount", "Enter how many tokens you need."),
        (
            {"amount": "4000001"},
            "amount",
            "You can request at most 4,000,000 inference tokens: your "
            "organization's pool for this month.",
        ),
        (
            {"token_type": "embedding", "amount": "2000001"},
            "amount",
            "You can request at most 2,000,000 embedding tokens",
        ),
        ({"token_type": "gold"}, "token_type", "Choose inference or embedding tokens."),
        ({"reason": ""}, "reason", "Tell your admin why you need more tokens."),
        ({"reason": "   "}, "reason", "Tell your admin why you need more tokens."),
        (
            {"reason": "x" * 501},
            "reason",
            "Keep the reason to 500 characters or fewer (it has 501).",
        ),
    ],
)
def test_request_form_messages(member_client, team, data, field, message):
    post = {"token_type": "inference", "amount": "50000", "reason": "Reports"}
    response = member_client.post(SUBMIT, {**post, **data})
    assert response.status_code == 400
    errors = response.context["request_form"].errors
    assert any(message in e for e in errors[field]), errors
    assert message in text(response)
    assert not TokenRequest.objects.exists()
    assert not events(Action.REQUEST_SUBMITTED).exists()


def test_a_reason_of_exactly_500_characters_is_accepted(member_client, team):
    response = member_client.post(
        SUBMIT, {"token_type": "inference", "amount": "1", "reason": "y" * 500}
    )
    assert response.status_code == 302
    assert len(TokenRequest.objects.get().reason) == 500


def test_service_validates_like_the_form(team, member):
    with pytest.raises(ValidationError) as caught:
        token_request_submit(user=member, token_type="gold", amount=0, reason="")
    assert caught.value.message_dict == {
        "token_type": ["Choose inference or embedding tokens."],
        "amount": ["Enter a whole number of tokens, 1 or more."],
        "reason": ["Tell your admin why you need more tokens."],
    }
    for amount in ["5", 2.5, True]:
        with pytest.raises(ValidationError, match="whole number"):
            submit(member, amount=amount)


def test_an_org_without_a_pool_cannot_be_asked(member):
    with pytest.raises(ValidationError) as caught:
        submit(member)
    assert caught.value.messages == [
        "Your organization has no inference tokens this month, so none can be "
        "requested."
    ]


def test_unpaid_banned_and_unattached_users_are_refused(team, member):
    type(member).objects.filter(pk=member.pk).update(is_paid=False)
    member.refresh_from_db()
    with pytest.raises(ValidationError, match="Your account is deactivated"):
        submit(member)
    page = text(sign_in(member).get(ME))
    assert "Your account is deactivated." in page
    assert "Send request" not in page
    type(member).objects.filter(pk=member.pk).update(is_paid=True, is_banned=True)
    member.refresh_from_db()
    with pytest.raises(ValidationError, match="banned"):
        submit(member)
    loner = UserFactory(organization=None)
    with pytest.raises(ValidationError, match="Only members of an organization"):
        submit(loner)
    assert not TokenRequest.objects.exists()


def test_suspended_org_cannot_request(team, member):
    type(team).objects.filter(pk=team.pk).update(status="suspended")
    member.refresh_from_db()
    with pytest.raises(ValidationError, match="not active"):
        submit(member)


# --- one pending request per user and type --------------------------------------------


def test_one_pending_request_per_user_and_type(member_client, pending, admin_user):
    response = member_client.post(
        SUBMIT, {"token_type": "inference", "amount": "10", "reason": "More"}
    )
    assert response.status_code == 400
    assert (
        "You already have a pending request for inference tokens. Wait for an admin "
        "to decide it before asking again." in text(response)
    )
    assert TokenRequest.objects.count() == 1
    # Another type is fine.
    response = member_client.post(
        SUBMIT, {"token_type": "embedding", "amount": "10", "reason": "More"}
    )
    assert response.status_code == 302
    # Once decided, the same type may be asked again.
    token_request_deny(actor=admin_user, request=pending)
    response = member_client.post(
        SUBMIT, {"token_type": "inference", "amount": "10", "reason": "Again"}
    )
    assert response.status_code == 302
    assert TokenRequest.objects.filter(status="pending").count() == 2


def test_members_do_not_see_each_others_requests(team, member, pending):
    colleague = UserFactory(organization=team, email="colleague@acme.example")
    submit(colleague, amount=987_654, reason="Secret project")
    page = text(sign_in(member).get(ME))
    assert "50,000" in page
    assert "987,654" not in page
    assert "Secret project" not in page


# --- the queue ------------------------------------------------------------------------


def rows(response):
    return [row.record for row in response.context["table"].page.object_list]


@pytest.fixture
def mixed(team, member, admin_user):
    """Two pending, one approved, one denied."""
    other = UserFactory(organization=team, email="ava@acme.example")
    return {
        "p1": make_request(member, amount=20_000),
        "p2": make_request(other, amount=90_000, token_type="embedding"),
        "a": make_request(member, "approved", amount=30_000, decided_by=admin_user),
        "d": make_request(other, "denied", admin_note="Not now", decided_by=admin_user),
    }


def test_queue_tabs_and_counts(admin_client, mixed):
    response = admin_client.get(LIST)
    assert response.status_code == 200
    assert set(rows(response)) == {mixed["p1"], mixed["p2"]}
    assert response.context["counts"] == {
        "pending": 2,
        "approved": 1,
        "denied": 1,
        "all": 4,
    }
    page = text(response)
    assert "Total requests 4" in page
    assert "Pending 2 Approved 1 Denied 1 All 4" in page
    assert rows(admin_client.get(LIST, {"status": "approved"})) == [mixed["a"]]
    assert rows(admin_client.get(LIST, {"status": "denied"})) == [mixed["d"]]
    assert len(rows(admin_client.get(LIST, {"status": "all"}))) == 4
    # An unknown tab is the default one.
    assert len(rows(admin_client.get(LIST, {"status": "bogus"}))) == 2


def test_queue_columns_and_actions(admin_client, mixed):
    page = text(admin_client.get(LIST))
    for header in [
        "User Email",
        "Type",
        "Requested Amount",
        "Reason",
        "Current Tokens",
        "Status",
        "Date",
        "Actions",
    ]:
        assert header in page
    assert "Approve… Deny…" in page
    assert "Unallocated inference 2,500,000" in page
    assert "Unallocated embedding 2,000,000" in page
    denied = text(admin_client.get(LIST, {"status": "denied"}))
    assert "Denied admin@acme.example" in denied
    assert "“Not now”" in denied
    approved = text(admin_client.get(LIST, {"status": "approved"}))
    assert "Approved 30,000 admin@acme.example" in approved


def test_queue_sorts_on_the_server(admin_client, mixed):
    by_amount = rows(admin_client.get(LIST, {"status": "all", "sort": "amount"}))
    assert [r.amount for r in by_amount] == [10_000, 20_000, 30_000, 90_000]
    by_amount = rows(admin_client.get(LIST, {"status": "all", "sort": "-amount"}))
    assert by_amount[0] == mixed["p2"]
    newest = rows(admin_client.get(LIST, {"status": "all"}))
    assert newest[0] == mixed["d"]
    oldest = rows(admin_client.get(LIST, {"status": "all", "sort": "created_at"}))
    assert oldest[0] == mixed["p1"]
    by_email = rows(admin_client.get(LIST, {"status": "all", "sort": "email"}))
    assert by_email[0].user.email == "ava@acme.example"


def test_queue_paginates_25_with_constant_queries(admin_client, team):
    def make(n):
        for _ in range(n):
            user = UserFactory(organization=team)
            make_request(user, "approved")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LIST, {"status": "all"}).status_code == 200
        return len(captured)

    make(3)
    queries()
    few = queries()
    make(40)
    assert queries() == few
    response = admin_client.get(LIST, {"status": "all"})
    assert len(rows(response)) == 25
    assert "Showing 1–25 of 43" in text(response)
    assert len(rows(admin_client.get(LIST, {"status": "all", "page": 2}))) == 18


def test_sidebar_badge_shows_the_pending_count_on_panel_pages(
    admin_client, mixed, admin_user
):
    badge = '<span class="nav-badge"><span class="visually-hidden">(</span>2'
    assert badge in admin_client.get(reverse("tokens:user_list")).content.decode()
    assert badge in admin_client.get(LIST).content.decode()
    token_request_deny(actor=admin_user, request=mixed["p1"])
    assert (
        '<span class="nav-badge"><span class="visually-hidden">(</span>1'
        in admin_client.get(LIST).content.decode()
    )
    token_request_deny(actor=admin_user, request=mixed["p2"])
    assert "nav-badge" not in admin_client.get(LIST).content.decode()


def test_badge_counts_only_this_org(other_admin_client, mixed):
    assert "nav-badge" not in other_admin_client.get(LIST).content.decode()


def test_context_processor_is_silent_outside_the_panel(member_client, mixed):
    assert "pending_requests_count" not in member_client.get(ME).context


# --- approve --------------------------------------------------------------------------


def test_approve_page_defaults_to_the_requested_amount(admin_client, pending):
    response = admin_client.get(approve_url(pending.pk))
    assert response.status_code == 200
    assert response.context["form"].initial["amount"] == 50_000
    page = text(response)
    assert "Quarter-end reports" in page
    assert "Requested 50,000" in page
    assert "Unallocated inference 2,500,000" in page
    assert " style=" not in response.content.decode()


def test_approve_within_pool(admin_client, pending, member, admin_user):
    response = admin_client.post(
        approve_url(pending.pk), {"amount": "50000", "note": "Enjoy"}
    )
    assert response.status_code == 302
    assert response["Location"] == LIST
    pending.refresh_from_db()
    assert pending.status == "approved"
    assert pending.approved_amount == 50_000
    assert pending.admin_note == "Enjoy"
    assert pending.decided_by == admin_user
    assert pending.decided_at is not None
    assert not pending.auto_approved
    assert limit(member) == 1_050_000
    change = AllocationChange.objects.get(token_request=pending)
    assert (change.delta, change.new_limit, change.source) == (
        50_000,
        1_050_000,
        "request",
    )
    event = events(Action.REQUEST_APPROVED).get()
    assert change.audit_event == event
    assert event.actor == admin_user
    assert event.before == {"status": "pending", "inference_limit": 1_000_000}
    assert event.after == {
        "status": "approved",
        "requested_amount": 50_000,
        "approved_amount": 50_000,
        "inference_limit": 1_050_000,
    }
    assert event.message == "Enjoy"
    assert check_ledger() == []
    page = text(admin_client.get(LIST))
    assert (
        "Approved 50,000 inference tokens for member@acme.example (requested "
        "50,000). Their limit is now 1,050,000." in page
    )


def test_approval_emails_the_user_after_commit(
    admin_user, pending, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        token_request_approve(
            actor=admin_user, request=pending, amount=40_000, note="Half now"
        )
    (email,) = mail.outbox
    assert email.to == ["member@acme.example"]
    assert email.subject == ("Your token request was approved: 40,000 inference tokens")
    assert (
        "admin@acme.example approved 40,000 inference tokens (you asked for "
        "50,000)." in email.body
    )
    assert "Note from your admin: Half now" in email.body
    html = email.alternatives[0][0]
    assert "Half now" in html
    assert "40,000" in html


def test_partial_approval(admin_client, pending, member):
    response = admin_client.post(approve_url(pending.pk), {"amount": "20000"})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert (pending.amount, pending.approved_amount) == (50_000, 20_000)
    assert limit(member) == 1_020_000
    assert check_ledger() == []


def test_approve_more_than_requested(admin_user, pending, member):
    token_request_approve(actor=admin_user, request=pending, amount=120_000)
    pending.refresh_from_db()
    assert pending.approved_amount == 120_000
    assert limit(member) == 1_120_000


def test_approve_over_the_pool_is_refused_and_changes_nothing(
    admin_client, pending, member, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(approve_url(pending.pk), {"amount": "2500001"})
    assert response.status_code == 400
    assert (
        "Not enough unallocated inference tokens: this needs 2,500,001 but only "
        "2,500,000 are unallocated." in text(response)
    )
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert pending.approved_amount is None
    assert limit(member) == 1_000_000
    assert not AllocationChange.objects.filter(token_request=pending).exists()
    assert not events(Action.REQUEST_APPROVED).exists()
    assert mail.outbox == []
    # The whole unallocated pool can be granted.
    assert admin_client.post(approve_url(pending.pk), {"amount": "2500000"})[
        "Location"
    ] == (LIST)
    assert check_ledger() == []


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "many"}, "amount", "Enter the amount as a whole number of tokens"),
        ({"amount": "2.5"}, "amount", "Enter the amount as a whole number of tokens"),
        ({"amount": "0"}, "amount", "Approve at least 1 token, or deny the request."),
        ({"amount": "-3"}, "amount", "Approve at least 1 token, or deny the request."),
        ({"amount": ""}, "amount", "Enter the amount to approve."),
        (
            {"amount": "10", "note": "n" * 501},
            "note",
            "Keep the note to 500 characters or fewer (it has 501).",
        ),
    ],
)
def test_approve_form_messages(admin_client, pending, member, data, field, message):
    response = admin_client.post(approve_url(pending.pk), data)
    assert response.status_code == 400
    assert any(message in e for e in response.context["form"].errors[field])
    assert message in text(response)
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert limit(member) == 1_000_000
    assert not events(Action.REQUEST_APPROVED).exists()


def test_approve_service_validates_amount_and_note(admin_user, pending):
    for amount in [0, -1, "10", 1.5, None]:
        with pytest.raises(ValidationError) as caught:
            token_request_approve(actor=admin_user, request=pending, amount=amount)
        assert caught.value.message_dict == {
            "amount": ["Enter a whole number of tokens, 1 or more."]
        }
    with pytest.raises(ValidationError, match="500 characters or fewer"):
        token_request_approve(
            actor=admin_user, request=pending, amount=1, note="x" * 501
        )


def test_approval_of_a_user_who_left_the_org_is_refused(admin_user, pending, member):
    type(member).objects.filter(pk=member.pk).update(organization=None)
    with pytest.raises(ValidationError, match="no longer in this organization"):
        token_request_approve(actor=admin_user, request=pending, amount=1)
    token_request_deny(actor=admin_user, request=pending, note="Left")


# --- deny -----------------------------------------------------------------------------


def test_deny_with_a_note(
    admin_client, pending, member, admin_user, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            deny_url(pending.pk), {"note": "Budget is frozen until July."}
        )
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == "denied"
    assert pending.admin_note == "Budget is frozen until July."
    assert pending.decided_by == admin_user
    assert pending.approved_amount is None
    assert limit(member) == 1_000_000
    event = events(Action.REQUEST_DENIED).get()
    assert (event.before, event.after) == (
        {"status": "pending"},
        {"status": "denied"},
    )
    assert not AllocationChange.objects.filter(token_request=pending).exists()
    (email,) = mail.outbox
    assert email.to == ["member@acme.example"]
    assert email.subject == "Your token request was denied"
    assert "denied your request for 50,000 inference tokens" in email.body
    assert "Note from your admin: Budget is frozen until July." in email.body
    assert "Denied member@acme.example's request for 50,000 inference tokens." in (
        text(admin_client.get(LIST))
    )
    page = text(sign_in(member).get(ME))
    assert "Denied — admin@acme.example" in page
    assert "Budget is frozen until July." in page


def test_deny_without_a_note(admin_client, pending):
    assert admin_client.get(deny_url(pending.pk)).status_code == 200
    assert admin_client.post(deny_url(pending.pk))["Location"] == LIST
    pending.refresh_from_db()
    assert (pending.status, pending.admin_note) == ("denied", "")


def test_deny_note_too_long(admin_client, pending):
    response = admin_client.post(deny_url(pending.pk), {"note": "n" * 501})
    assert response.status_code == 400
    assert "Keep the note to 500 characters or fewer (it has 501)." in text(response)
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert not events(Action.REQUEST_DENIED).exists()


# --- deciding a decided request -------------------------------------------------------


def test_deciding_a_decided_request_is_refused(admin_client, pending, member):
    admin_client.post(approve_url(pending.pk), {"amount": "1000"})
    pending.refresh_from_db()
    when = f"{pending.decided_at:%Y-%m-%d %H:%M} UTC"
    expected = f"This request was already decided by admin@acme.example on {when}."
    for url, data in [
        (approve_url(pending.pk), {"amount": "5"}),
        (deny_url(pending.pk), {}),
    ]:
        response = admin_client.post(url, data, follow=True)
        assert expected in text(response)
    pending.refresh_from_db()
    assert (pending.status, pending.approved_amount) == ("approved", 1_000)
    assert limit(member) == 1_001_000
    assert events(Action.REQUEST_APPROVED).count() == 1
    assert not events(Action.REQUEST_DENIED).exists()
    # The form page itself sends the admin back with the same news.
    response = admin_client.get(approve_url(pending.pk), follow=True)
    assert expected in text(response)


def test_second_admin_is_told_who_decided(pending, admin_user, team):
    second = AdminFactory(organization=team, email="second@acme.example")
    token_request_deny(actor=admin_user, request=pending)
    with pytest.raises(
        ValidationError, match=r"already decided by admin@acme\.example"
    ):
        token_request_approve(actor=second, request=pending, amount=1)
    with pytest.raises(
        ValidationError, match=r"already decided by admin@acme\.example"
    ):
        token_request_deny(actor=second, request=pending)


def test_auto_approved_request_reports_auto_approval(team, member, admin_user):
    rule_on(team, admin_user)
    request = submit(member)
    with pytest.raises(ValidationError, match="already decided by auto-approval on"):
        token_request_deny(actor=admin_user, request=request)


# --- concurrency (PostgreSQL) ---------------------------------------------------------


def _outcome(call):
    try:
        call()
    except ValidationError as error:
        return error.messages[0]
    return "ok"


@race
@pytest.mark.parametrize("deny_second", [False, True])
def test_two_admins_deciding_at_once_one_wins(deny_second):
    org = OrganizationFactory()
    fund(org)
    user = UserFactory(organization=org, email="asker@acme.example")
    give(user, 300_000)
    admins = [
        AdminFactory(organization=org, email=f"admin{i}@acme.example") for i in (1, 2)
    ]
    token_request = submit(user, amount=70_000)

    def decide(i):
        if i == 1 and deny_second:
            return _outcome(
                lambda: token_request_deny(actor=admins[i], request=token_request)
            )
        return _outcome(
            lambda: token_request_approve(
                actor=admins[i], request=token_request, amount=70_000
            )
        )

    outcomes = run_threads(2, decide)
    assert sorted(o == "ok" for o in outcomes) == [False, True], outcomes
    (refusal,) = [o for o in outcomes if o != "ok"]
    assert refusal.startswith("This request was already decided by admin")
    token_request.refresh_from_db()
    decided = (
        events(Action.REQUEST_APPROVED).count() + events(Action.REQUEST_DENIED).count()
    )
    assert decided == 1
    changes = AllocationChange.objects.filter(token_request=token_request).count()
    if token_request.status == "approved":
        assert changes == 1
        assert limit(user) == 370_000
    else:
        assert changes == 0
        assert limit(user) == 300_000
    assert check_ledger() == []


@race
def test_two_simultaneous_submissions_make_one_pending_request():
    org = OrganizationFactory()
    fund(org)
    user = UserFactory(organization=org)
    outcomes = run_threads(4, lambda i: _outcome(lambda: submit(user, amount=i + 1)))
    assert outcomes.count("ok") == 1, outcomes
    assert all(
        o.startswith("You already have a pending request")
        for o in outcomes
        if o != "ok"
    )
    assert TokenRequest.objects.filter(user=user, status="pending").count() == 1


# --- auto-approval --------------------------------------------------------------------


def rule_on(org, actor, max_amount=100_000, percent=50):
    return auto_approval_rule_update(
        actor=actor,
        organization=org,
        enabled=True,
        max_amount=max_amount,
        max_consumption_percent=percent,
    )


@pytest.fixture
def use(team, member, service_key):
    """Record usage for the member (it counts toward the org's consumption)."""
    AIModelFactory(key="gpt")
    key, _secret = service_key
    count = iter(range(1, 1000))

    def record(tokens, token_type="inference"):
        result = metering.usage_record(
            key=key,
            events=[
                {
                    "event_id": f"use-{next(count)}",
                    "user": member.email,
                    "model": "gpt",
                    "token_type": token_type,
                    "prompt_tokens": tokens,
                    "completion_tokens": 0,
                    "occurred_at": timezone.now().isoformat(),
                }
            ],
        )
        assert result.as_dict()["recorded"] == 1

    return record


def test_auto_approval_fires_when_every_condition_holds(
    team, member, admin_user, django_capture_on_commit_callbacks
):
    rule_on(team, admin_user)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(member, amount=100_000)  # at the maximum
    request.refresh_from_db()
    assert request.status == "approved"
    assert request.auto_approved
    assert request.approved_amount == 100_000
    assert request.admin_note == "auto-approved"
    assert request.decided_by is None
    assert request.decided_at is not None
    assert limit(member) == 1_100_000
    change = AllocationChange.objects.get(token_request=request)
    assert (change.source, change.delta, change.actor) == ("request", 100_000, None)
    assert events(Action.REQUEST_SUBMITTED).count() == 1
    approved = events(Action.REQUEST_APPROVED).get()
    assert change.audit_event == approved
    assert approved.actor is None
    assert approved.message == (
        "Auto-approved by the organization's rule: ≤ 100,000 tokens while "
        "consumption < 50%; per user at most 1,000,000 tokens of a type a month "
        "(UTC) and 3 approvals in 24 hours."
    )
    # No email to the admins; the user hears the decision.
    (email,) = mail.outbox
    assert email.to == ["member@acme.example"]
    assert "approved automatically" in email.body
    assert check_ledger() == []


def test_auto_approval_message_on_me(team, member, admin_user):
    rule_on(team, admin_user)
    client = sign_in(member)
    response = client.post(
        SUBMIT, {"token_type": "inference", "amount": "5000", "reason": "Demo"}
    )
    assert response.status_code == 302
    page = text(client.get(ME))
    assert (
        "Approved automatically: 5,000 inference tokens were added. Your limit is now "
        "1,005,000." in page
    )
    assert "Approved 5,000 auto-approved" in page


def test_no_auto_approval_over_the_maximum_amount(team, member, admin_user):
    rule_on(team, admin_user)
    request = submit(member, amount=100_001)
    assert request.status == "pending"
    assert limit(member) == 1_000_000


def test_no_auto_approval_at_or_over_the_consumption_limit(
    team, member, admin_user, use
):
    rule_on(team, admin_user, percent=10)
    use(399_999)  # 9.99997 % of 4,000,000: under
    assert submit(member, amount=1).status == "approved"
    use(1)  # exactly 10 %: not under
    request = submit(member, amount=1)
    assert request.status == "pending"
    # Consumption is per type: embedding is untouched.
    assert submit(member, amount=1, token_type="embedding").status == "approved"


def test_no_auto_approval_when_the_pool_is_too_small(team, member, admin_user):
    rule_on(team, admin_user)
    give(admin_user, 2_960_000)  # 40,000 unallocated
    request = submit(member, amount=50_000)
    assert request.status == "pending"
    assert not AllocationChange.objects.filter(token_request=request).exists()
    assert limit(member) == 1_000_000
    # Exactly the unallocated amount is still covered.
    colleague = UserFactory(organization=team)
    assert submit(colleague, amount=40_000).status == "approved"


def test_no_auto_approval_when_the_rule_is_off(team, member, admin_user):
    rule_on(team, admin_user)
    auto_approval_rule_update(
        actor=admin_user,
        organization=team,
        enabled=False,
        max_amount=100_000,
        max_consumption_percent=50,
    )
    assert submit(member, amount=10).status == "pending"


def test_no_auto_approval_without_a_rule(team, member):
    assert submit(member, amount=10).status == "pending"


# --- emails ---------------------------------------------------------------------------


def test_new_pending_request_emails_every_admin_after_commit(
    team, member, admin_user, other_admin_user, django_capture_on_commit_callbacks
):
    AdminFactory(organization=team, email="second@acme.example")
    AdminFactory(organization=team, email="banned@acme.example", is_banned=True)
    UserFactory(organization=team, email="colleague@acme.example")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        submit(member, amount=75_000, reason="Board deck")
    assert mail.outbox == []  # nothing before commit
    assert len(callbacks) == 1
    callbacks[0]()
    (email,) = mail.outbox
    assert sorted(email.to) == ["admin@acme.example", "second@acme.example"]
    assert email.subject == (
        "Token request from member@acme.example: 75,000 inference tokens"
    )
    assert "Reason: Board deck" in email.body
    assert "limit when they asked: 1,000,000 tokens" in email.body
    assert "/panel/requests/" in email.body
    assert "Board deck" in email.alternatives[0][0]


def test_an_admins_own_request_goes_to_the_other_admins(
    team, admin_user, django_capture_on_commit_callbacks
):
    AdminFactory(organization=team, email="second@acme.example")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        submit(admin_user)
    (email,) = mail.outbox
    assert email.to == ["second@acme.example"]


def test_refused_submission_sends_nothing(
    team, member, django_capture_on_commit_callbacks
):
    submit(member)
    mail.outbox.clear()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValidationError),
    ):
        submit(member)
    assert mail.outbox == []


# --- the auto-approval card -----------------------------------------------------------


def test_admin_saves_the_rule(admin_client, team, admin_user):
    response = admin_client.post(
        RULE,
        {
            "enabled": "on",
            "max_amount": "250000",
            "max_consumption_percent": "62.5",
            "max_per_user_month": "1000000",
            "max_approvals_per_day": "3",
            "next": LIST + "?status=all",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == LIST + "?status=all"
    rule = AutoApprovalRule.objects.get(organization=team)
    assert (rule.enabled, rule.max_amount, rule.max_consumption_percent) == (
        True,
        250_000,
        Decimal("62.5"),
    )
    event = events(Action.AUTO_APPROVAL_CHANGED).get()
    assert event.actor == admin_user
    assert event.before == {
        "enabled": False,
        "max_amount": 100_000,
        "max_consumption_percent": 50.0,
    }
    assert event.after == {
        "enabled": True,
        "max_amount": 250_000,
        "max_consumption_percent": 62.5,
    }
    page = text(admin_client.get(LIST))
    assert (
        "Auto-approval is on: ≤ 250,000 tokens while consumption < 62.5%; per "
        "user at most 1,000,000 tokens of a type a month (UTC) and 3 approvals in "
        "24 hours." in page
    )
    # Saving the same values records nothing.
    admin_client.post(
        RULE,
        {
            "enabled": "on",
            "max_amount": "250000",
            "max_consumption_percent": "62.5",
            "max_per_user_month": "1000000",
            "max_approvals_per_day": "3",
        },
    )
    assert events(Action.AUTO_APPROVAL_CHANGED).count() == 1
    assert "The auto-approval rule is unchanged." in text(admin_client.get(LIST))
    # Only the changed field is recorded.
    admin_client.post(
        RULE,
        {
            "max_amount": "250000",
            "max_consumption_percent": "62.5",
            "max_per_user_month": "1000000",
            "max_approvals_per_day": "3",
        },
    )
    latest = events(Action.AUTO_APPROVAL_CHANGED).first()
    assert (latest.before, latest.after) == ({"enabled": True}, {"enabled": False})


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"max_amount": "lots"},
            "max_amount",
            "Enter the maximum amount as a whole number of tokens.",
        ),
        (
            {"max_amount": "0"},
            "max_amount",
            "The maximum amount must be at least 1 token.",
        ),
        (
            {"max_amount": ""},
            "max_amount",
            "Enter the maximum amount to approve automatically.",
        ),
        (
            {"max_consumption_percent": "101"},
            "max_consumption_percent",
            "The maximum consumption cannot be above 100%.",
        ),
        (
            {"max_consumption_percent": "-1"},
            "max_consumption_percent",
            "The maximum consumption must be at least 0.1%: at 0% no request "
            "could ever be approved automatically.",
        ),
        (
            {"max_consumption_percent": "12.34"},
            "max_consumption_percent",
            "Use at most one decimal place, such as 62.5.",
        ),
        (
            {"max_consumption_percent": "half"},
            "max_consumption_percent",
            "Enter the maximum consumption as a number from 0.1 to 100.",
        ),
        (
            {"max_consumption_percent": ""},
            "max_consumption_percent",
            "Enter the maximum consumption, from 0.1 to 100%.",
        ),
    ],
)
def test_rule_form_messages(admin_client, team, data, field, message):
    post = {
        "enabled": "on",
        "max_amount": "1000",
        "max_consumption_percent": "50",
        "max_per_user_month": "1000000",
        "max_approvals_per_day": "3",
    }
    response = admin_client.post(RULE, {**post, **data})
    assert response.status_code == 400
    assert any(message in e for e in response.context["rule_form"].errors[field])
    assert message in text(response)
    assert not AutoApprovalRule.objects.exists()
    assert not events(Action.AUTO_APPROVAL_CHANGED).exists()


def test_rule_service_validates(admin_user, team):
    with pytest.raises(ValidationError) as caught:
        auto_approval_rule_update(
            actor=admin_user,
            organization=team,
            enabled=True,
            max_amount=0,
            max_consumption_percent=Decimal("100.5"),
        )
    assert caught.value.message_dict == {
        "max_amount": [
            "Enter the maximum amount as a whole number of tokens, 1 or more."
        ],
        "max_consumption_percent": [
            "Enter a percentage from 0.1 to 100, with at most one decimal place: "
            "at 0% no request could ever be approved automatically."
        ],
    }
    for percent in [Decimal("0.1"), 100, "0.1", Decimal("99.9")]:
        rule_on(team, admin_user, percent=percent)
    assert AutoApprovalRule.objects.get().max_consumption_percent == Decimal("99.9")


def test_rule_card_shows_the_current_rule_and_consumption(
    admin_client, team, admin_user, use
):
    page = text(admin_client.get(LIST))
    assert "Auto-approval Off every request waits for an admin" in page
    rule_on(team, admin_user, max_amount=75_000, percent=40)
    use(1_000_000)
    page = text(admin_client.get(LIST))
    assert "Auto-approval On ≤ 75,000 tokens while consumption < 40%" in page
    assert "Consumption this month: inference 25.0% · embedding 0.0%." in page


# --- the ledger -----------------------------------------------------------------------


def test_ledger_holds_after_a_mix_of_decisions(team, member, admin_user):
    colleague = UserFactory(organization=team)
    give(colleague, 200_000)
    a = submit(member, amount=10_000)
    b = submit(colleague, amount=20_000, token_type="embedding")
    c = submit(colleague, amount=30_000)
    token_request_approve(actor=admin_user, request=a, amount=5_000)
    token_request_approve(actor=admin_user, request=b, amount=25_000)
    token_request_deny(actor=admin_user, request=c)
    rule_on(team, admin_user)
    submit(member, amount=1_000)
    assert limit(member) == 1_006_000
    assert limit(colleague, "embedding") == 25_000
    assert check_ledger() == []
