"""The bad-input defects of issue 14 (items 7 and 10), each as it was found. The
class-wide test is tests/test_hostile_input.py."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts import audit
from accounts.models import AuditEvent, EnterpriseAccountRequest
from tests.conftest import sign_in
from tests.factories import UserFactory, fund
from tests.kit import member
from tokens.models import DistributionPolicy, TokenRequest, UserOverride
from tokens.services.activation import enterprise_request_submit
from tokens.services.distribution import policy_ensure
from tokens.services.pool import purchase_record

pytestmark = pytest.mark.django_db
Action = AuditEvent.Action


@pytest.fixture
def team(org, admin_user):
    fund(org, inference=4_000_000, embedding=4_000_000)
    ava = member(org, "ava@acme.example", inference=300_000)
    policy_ensure(organization=org)
    return ava


@pytest.fixture
def mfa_admin(admin_user):
    return sign_in(admin_user, mfa=True)


# --- item 7: 500s ---------------------------------------------------------------------


def test_audit_events_never_carry_nul_or_unpaired_surrogates(org):
    """PostgreSQL refuses both in text and jsonb: the recorder replaces them."""
    event = audit.record(
        action=Action.DATA_EXPORTED,
        organization=org,
        after={"filters": {"q\x00": ["a\x00b", "x\ud800y", 5]}},
        message="m\x00",
        actor_email="e\udfff@x",
    )
    event.refresh_from_db()
    assert event.after == {"filters": {"q\ufffd": ["a\ufffdb", "x?y", 5]}}
    assert (event.message, event.actor_email) == ("m\ufffd", "e?@x")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("tokens:user_export", {}),
        ("analytics:activity_export", {"tab": "usage"}),
        ("analytics:activity_export", {"tab": "audit"}),
        ("analytics:statistics_export_monthly", {}),
        ("analytics:statistics_export_users", {}),
        ("analytics:statistics_export_models", {}),
        ("analytics:statistics_export_events", {}),
    ],
)
def test_csv_exports_with_nul_in_the_query_are_audited_not_500(
    team, mfa_admin, name, kwargs
):
    """A NUL (``%00``) in an export's query string was stored into the audit
    event's JSON: a 500 on PostgreSQL."""
    response = mfa_admin.get(reverse(name, kwargs=kwargs or None) + "?q=%00&x%00=1")
    assert response.status_code == 200
    event = AuditEvent.objects.filter(action=Action.DATA_EXPORTED).latest("pk")
    filters = event.after["filters"]
    if not name.startswith("analytics:statistics"):  # those record the period only
        assert (filters["q"], filters["x\ufffd"]) == ("\ufffd", "1")


@pytest.mark.parametrize("field", ["floor", "ceiling"])
@pytest.mark.parametrize("value", [str(2**63), "9,223,372,036,854,775,807", "1e309"])
def test_an_override_beyond_64_bits_is_refused_with_a_message(
    team, mfa_admin, field, value
):
    response = mfa_admin.post(
        reverse("tokens:distribution_override_set"),
        {"email": team.email, field: value},
    )
    assert response.status_code == 400
    assert response.context["override_form"].errors[field]
    assert not UserOverride.objects.exists()
    assert not AuditEvent.objects.filter(action=Action.OVERRIDE_SET).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("limit", str(2**63)), ("limit", str(2**64))],
)
def test_a_limit_beyond_64_bits_is_refused(team, mfa_admin, field, value):
    url = reverse(
        "tokens:user_limit_edit", kwargs={"pk": team.pk, "token_type": "inference"}
    )
    response = mfa_admin.post(url, {field: value})
    assert response.status_code == 400
    assert "more tokens than any pool holds" in response.content.decode()


def test_a_next_that_is_not_a_path_falls_back_instead_of_failing(team, mfa_admin):
    """``next=-1`` was handed to ``redirect``, which took it for a view name: 500."""
    request = TokenRequest.objects.create(
        organization=team.organization,
        user=team,
        token_type="inference",
        amount=1_000,
        reason="r",
        limit_at_request=0,
    )
    response = mfa_admin.post(
        reverse("tokens:request_deny", kwargs={"pk": request.pk}), {"next": "-1"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:request_list")


# --- item 10: rules the forms let through -------------------------------------------


@pytest.mark.parametrize("floor", ["100", "199,999", "0"])
def test_an_override_floor_below_the_platform_minimum_is_refused(
    team, mfa_admin, floor
):
    response = mfa_admin.post(
        reverse("tokens:distribution_override_set"),
        {"email": team.email, "floor": floor},
    )
    assert response.status_code == 400
    (message,) = response.context["override_form"].errors["floor"]
    assert "platform minimum of 200,000" in message
    assert not UserOverride.objects.exists()


def test_unlimited_with_a_typed_ceiling_is_refused_not_silently_dropped(
    team, mfa_admin, org
):
    before = DistributionPolicy.objects.get(organization=org).ceiling
    response = mfa_admin.post(
        reverse("tokens:distribution_limits_update"),
        {
            "floor_inference": "500000",
            "floor_embedding": "500000",
            "ceiling": "3,000,000",
            "ceiling_unlimited": "on",
        },
    )
    assert response.status_code == 400
    (message,) = response.context["floor_form"].errors["ceiling"]
    assert "Either clear the ceiling or untick Unlimited" in message
    assert DistributionPolicy.objects.get(organization=org).ceiling == before
    assert not AuditEvent.objects.filter(action=Action.POLICY_CHANGED).exists()


@pytest.mark.parametrize(
    ("field", "length", "message"),
    [
        ("billing_address", 501, "Keep this to 500 characters or fewer (it has 501)."),
        (
            "other_information",
            2_001,
            "Keep this to 2000 characters or fewer (it has 2001).",
        ),
    ],
)
def test_enterprise_request_text_has_a_maximum(field, length, message):
    requester = UserFactory(organization=None, email="ceo@initech.example")
    UserFactory(organization=None, email="dev@initech.example")
    data = {
        "organization_name": "Initech",
        "billing_address": "1 Initech Way",
        "user_emails": "ceo@initech.example\ndev@initech.example",
        "admin_emails": "ceo@initech.example",
        "inference_tokens": "2000000",
        "embedding_tokens": "2000000",
        "other_information": "",
        field: "x" * length,
    }
    response = sign_in(requester).post(reverse("tokens:enterprise_request"), data)
    assert message in response.content.decode()
    assert not EnterpriseAccountRequest.objects.exists()
    # The service holds the same rule without the form.
    with pytest.raises(ValidationError) as caught:
        enterprise_request_submit(
            requester=requester,
            **{
                k: v
                for k, v in data.items()
                if k not in ("inference_tokens", "embedding_tokens")
            },
            inference_tokens=2_000_000,
            embedding_tokens=2_000_000,
        )
    assert field in caught.value.message_dict
    assert not EnterpriseAccountRequest.objects.exists()


def test_staff_forms_give_text_fields_a_maximum(world_org_admin_free):
    """Siblings on /staff/: the organization's billing address (500) and a
    purchase's comment (2,000), TextFields in the models."""
    client, org, purchase = world_org_admin_free
    response = client.post(
        reverse("admin:accounts_organization_change", args=[org.pk]),
        {"name": org.name, "billing_address": "x" * 501},
    )
    assert response.status_code == 200
    assert "Keep this to 500 characters or fewer (it has 501)." in (
        response.content.decode()
    )
    response = client.post(
        reverse("admin:tokens_purchase_change", args=[purchase.pk]),
        {"comment": "x" * 2_001},
    )
    assert response.status_code == 200
    assert "Keep this to 2000 characters or fewer (it has 2001)." in (
        response.content.decode()
    )
    purchase.refresh_from_db()
    assert purchase.comment != "x" * 2_001
    with pytest.raises(ValidationError) as caught:
        purchase_record(
            actor=None,
            organization=org,
            payer_email="billing@example.com",
            inference_tokens=2_000_000,
            embedding_tokens=0,
            comment="x" * 2_001,
        )
    assert "comment" in caught.value.message_dict


@pytest.fixture
def world_org_admin_free(org, superuser):
    return sign_in(superuser, mfa=True), org, fund(org)
