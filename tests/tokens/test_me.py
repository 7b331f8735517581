"""/me/: a member's own balance and usage this month."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import EnterpriseAccountRequest
from accounts.services import email_verification_token
from asksage_admin.lib.periods import period_of, previous_period
from tests.conftest import sign_in
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.services import metering

pytestmark = pytest.mark.django_db
URL = reverse("tokens:me")


def text(response) -> str:
    """The page's text with tags removed and whitespace collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return " ".join(body.split())


@pytest.fixture
def record(service_key):
    """Record one usage event through the metering service."""
    key, _secret = service_key
    count = iter(range(1, 1000))

    def send(user, model, prompt, completion=0, token_type="inference", when=None):
        result = metering.usage_record(
            key=key,
            events=[
                {
                    "event_id": f"me-{next(count)}",
                    "user": user.email,
                    "model": model,
                    "token_type": token_type,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "occurred_at": (when or timezone.now()).isoformat(),
                }
            ],
        )
        assert result.as_dict()["recorded"] == 1, result.as_dict()

    return send


@pytest.fixture
def usage(member, org, record, service_key):
    fund(org)
    give(member, 1_234_567, "inference")
    give(member, 250_000, "embedding")
    AIModelFactory(key="gpt-4o", name="GPT-4o", output_rate=3)
    AIModelFactory(key="mini", name="GPT-4o mini")
    AIModelFactory(key="embed-large", name="Embed Large", token_type="embedding")
    record(member, "gpt-4o", 10_000, 500)  # 11,500
    record(member, "gpt-4o", 300, 15)  # 345
    record(member, "mini", 500, 0)  # 500
    record(member, "embed-large", 40_000, token_type="embedding")
    # Last month's usage is not this month's.
    record(
        member,
        "mini",
        99_999,
        when=dt.datetime.combine(
            previous_period(period_of()), dt.time(12), tzinfo=dt.UTC
        ),
    )
    metering.authorize(
        key=service_key[0],
        user_email=member.email,
        model_key="gpt-4o",
        token_type="inference",
        tokens=1_000,
        request_id="r1",
    )
    return member


def test_anonymous_is_sent_to_sign_in(anon_client):
    response = anon_client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_member_sees_this_months_balance(usage, member_client):
    response = member_client.get(URL)
    assert response.status_code == 200
    page = text(response)
    month = period_of().strftime("%B %Y")
    assert f"Inference tokens · {month}" in page
    assert f"Embedding tokens · {month}" in page
    assert "Acme Corp" in page
    # limit 1,234,567 − used 12,345 − held 1,000 = 1,221,222 remaining.
    assert "Limit 1,234,567 Used 12,345 Held 1,000 Remaining 1,221,222" in page, page
    assert "Limit 250,000 Used 40,000 Held 0 Remaining 210,000" in page
    assert "Over the limit" not in page
    html = response.content.decode()
    assert '<progress class="meter" max="1234567" value="13345"' in html
    assert " style=" not in html  # strict CSP: no inline styles


def test_member_sees_usage_by_model_this_month(usage, member_client):
    page = text(member_client.get(URL))
    assert f"Usage in {period_of():%B %Y} by model" in page
    rows = page.split("Events Tokens", 1)[1].strip()
    assert rows.startswith(
        "Embed Large embed-large Embedding 1 40,000 "
        "GPT-4o gpt-4o Inference 2 11,845 "
        "GPT-4o mini mini Inference 1 500"
    ), rows
    assert "99,999" not in page


def test_member_sees_no_one_elses_numbers(usage, org, member_client, record):
    colleague = UserFactory(organization=org, email="colleague@acme.example")
    give(colleague, 7_654_321)
    AIModelFactory(key="secret-model", name="Secret Model")
    record(colleague, "secret-model", 4_321)
    page = text(member_client.get(URL))
    assert "7,654,321" not in page
    assert "Secret Model" not in page
    assert "4,321" not in page


def test_overage_is_shown(member, org, member_client, record):
    fund(org)
    give(member, 1_000)
    AIModelFactory(key="gpt")
    record(member, "gpt", 1_500)
    page = text(member_client.get(URL))
    assert "Limit 1,000 Used 1,500 Held 0 Remaining 0 Over the limit 500" in page
    assert "150% of your limit used or held" in page


def test_member_without_usage_sees_empty_state(member_client):
    page = text(member_client.get(URL))
    assert "Limit 0 Used 0 Held 0 Remaining 0" in page
    assert "No usage this month yet." in page


def test_user_without_organization_sees_a_note_and_no_balance(db):
    loner = UserFactory(organization=None, email="loner@example.com")
    response = sign_in(loner).get(URL)
    page = text(response)
    assert response.status_code == 200
    assert "loner@example.com" in page
    assert "You are not in an Enterprise Account yet, so you have no token" in page
    assert "Remaining" not in page
    assert "by model" not in page


def test_user_without_organization_is_shown_the_way_in(db):
    """The call to action (docs/product.md, Sales flow), and no promise that an
    organization's admin will add them (admins cannot add members)."""
    loner = UserFactory(organization=None, email="loner@example.com")
    client = sign_in(loner)
    html = client.get(URL).content.decode()
    assert f'href="{reverse("tokens:enterprise_request")}"' in html
    page = text(client.get(URL))
    assert "Request an Enterprise Account" in page
    assert "admin adds you" not in page
    assert "ask sales staff to add you" in page
    # Once asked, the page shows the pending request instead of the button.
    EnterpriseAccountRequest.objects.create(
        requested_by=loner,
        organization_name="Loner Inc",
        billing_address="1 Road",
        user_emails=["loner@example.com", "mate@example.com"],
        admin_emails=["loner@example.com"],
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )
    page = text(client.get(URL))
    assert "Your request for Loner Inc is waiting for sales staff" in page
    assert "See your request" in page


def test_verifying_the_email_points_a_newcomer_to_the_way_in(db):
    newcomer = UserFactory(
        organization=None, email="new@example.com", email_verified_at=None
    )
    client = sign_in(newcomer)
    token = email_verification_token(newcomer)
    response = client.get(
        reverse("accounts:verify_email", kwargs={"token": token}), follow=True
    )
    page = text(response)
    assert "your email address is verified" in page
    assert "Next: request an Enterprise Account" in page
    assert "Request an Enterprise Account" in page


def test_email_verification_notice_is_kept(member, member_client):
    type(member).objects.filter(pk=member.pk).update(email_verified_at=None)
    assert "Your email is not verified yet." in text(member_client.get(URL))


def test_query_count_does_not_grow_with_usage(usage, member_client, record):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert member_client.get(URL).status_code == 200
        return len(captured)

    queries()  # the first request of a session also touches the session row
    before = queries()
    for i in range(5):
        AIModelFactory(key=f"extra-{i}")
        record(usage, f"extra-{i}", 10)
    assert queries() == before
    assert before <= 12
