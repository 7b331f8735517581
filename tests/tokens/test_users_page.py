"""Management → User Management (docs/product.md, User Management), from the outside."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, User
from tests.factories import UserFactory, fund, give
from tests.kit import limit
from tokens.models import AllocationChange

pytestmark = pytest.mark.django_db

LIST = reverse("tokens:user_list")


@pytest.fixture
def team(org, admin_user):
    """A funded org: the admin and three members with limits."""
    fund(org, inference=4_000_000, embedding=2_000_000)
    people = {
        "ava": UserFactory(
            organization=org,
            email="ava@acme.example",
            first_name="Ava",
            last_name="Stone",
        ),
        "bob": UserFactory(
            organization=org,
            email="bob@acme.example",
            first_name="Bob",
            last_name="Marsh",
            is_paid=False,
        ),
        "cy": UserFactory(
            organization=org,
            email="cy@acme.example",
            first_name="Cy",
            last_name="Young",
            is_banned=True,
            email_verified_at=None,
        ),
    }
    give(people["ava"], 1_000_000)
    give(people["ava"], 200_000, "embedding")
    give(people["bob"], 1_000)
    give(people["cy"], 500_000)
    give(admin_user, 300_000)
    User.objects.filter(pk=admin_user.pk).update(first_name="Ada", last_name="Admin")
    return people


def emails(response) -> list[str]:
    return [row.record.email for row in response.context["table"].page.object_list]


# --- access ---------------------------------------------------------------------------


def user_urls(pk):
    return {
        "detail": reverse("tokens:user_detail", kwargs={"pk": pk}),
        "limit": reverse(
            "tokens:user_limit_edit", kwargs={"pk": pk, "token_type": "inference"}
        ),
        "deactivate_confirm": reverse(
            "tokens:user_deactivate_confirm", kwargs={"pk": pk}
        ),
        "ban_confirm": reverse("tokens:user_ban_confirm", kwargs={"pk": pk}),
    }


def action_urls(pk):
    return [
        reverse(f"tokens:user_{name}", kwargs={"pk": pk})
        for name in ("deactivate", "reactivate", "ban", "unban", "verify")
    ]


def test_anonymous_is_sent_to_sign_in_everywhere(anon_client, team):
    pk = team["ava"].pk
    for url in [LIST, reverse("tokens:user_export"), *user_urls(pk).values()]:
        response = anon_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))
    for url in [*action_urls(pk), reverse("tokens:user_bulk")]:
        assert anon_client.post(url)["Location"].startswith(reverse("accounts:login"))


def test_member_is_forbidden_everywhere(member_client, team):
    pk = team["ava"].pk
    for url in [LIST, reverse("tokens:user_export"), *user_urls(pk).values()]:
        assert member_client.get(url).status_code == 403
    for url in [*action_urls(pk), reverse("tokens:user_bulk")]:
        assert member_client.post(url).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.USER_BANNED).exists()


def test_admin_of_another_org_gets_404_for_our_users(other_admin_client, team):
    ava = team["ava"]
    for url in user_urls(ava.pk).values():
        assert other_admin_client.get(url).status_code == 404
    for url in action_urls(ava.pk):
        assert other_admin_client.post(url).status_code == 404
    response = other_admin_client.post(
        reverse(
            "tokens:user_limit_edit", kwargs={"pk": ava.pk, "token_type": "inference"}
        ),
        {"limit": 5},
    )
    assert response.status_code == 404
    assert limit(ava) == 1_000_000
    # Their own list never shows our users, and bulk on our ids changes nothing.
    assert "ava@acme.example" not in emails(other_admin_client.get(LIST))
    other_admin_client.post(
        reverse("tokens:user_bulk"), {"action": "ban", "pk": [ava.pk], "confirmed": "1"}
    )
    ava.refresh_from_db()
    assert not ava.is_banned


def test_get_on_mutations_is_405(admin_client, team):
    for url in [*action_urls(team["ava"].pk), reverse("tokens:user_bulk")]:
        assert admin_client.get(url).status_code == 405


def test_superuser_views_another_org_with_org_param(superuser_client, team, org):
    response = superuser_client.get(LIST, {"org": org.pk})
    assert response.status_code == 200
    assert "ava@acme.example" in emails(response)


# --- the table ---------------------------------------------------------------------


def test_admin_sees_summary_and_rows(admin_client, team):
    response = admin_client.get(LIST)
    assert response.status_code == 200
    assert emails(response) == [
        "admin@acme.example",
        "ava@acme.example",
        "bob@acme.example",
        "cy@acme.example",
    ]
    summary = response.context["summary"]
    assert summary["inference"].pool == 4_000_000
    assert summary["inference"].allocated == 1_801_000
    assert summary["inference"].unallocated == 2_199_000
    body = response.content.decode()
    assert "2,199,000" in body
    assert response.context["user_count"] == 4


def test_usage_columns_come_from_counters(admin_client, team, gateway):
    from tests.factories import AIModelFactory

    AIModelFactory(key="gpt")
    event = {
        "event_id": "e1",
        "user": "ava@acme.example",
        "model": "gpt",
        "token_type": "inference",
        "prompt_tokens": 700,
        "completion_tokens": 300,
        "occurred_at": timezone.now().isoformat(),
    }
    assert gateway.post("/api/v1/usage", {"events": [event]}).json()["recorded"] == 1
    rows = {
        r.record.email: r.record
        for r in admin_client.get(LIST).context["table"].page.object_list
    }
    ava = rows["ava@acme.example"]
    assert (ava.max_inference, ava.monthly_inference, ava.total_usage) == (
        1_000_000,
        1_000,
        1_000,
    )
    assert ava.prev_month_inference == 0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "ava"}, ["ava@acme.example"]),
        ({"q": "marsh"}, ["bob@acme.example"]),
        ({"paid": "no"}, ["bob@acme.example"]),
        (
            {"paid": "yes"},
            ["admin@acme.example", "ava@acme.example", "cy@acme.example"],
        ),
        (
            {"hide_banned": "on"},
            ["admin@acme.example", "ava@acme.example", "bob@acme.example"],
        ),
        ({"role": "admin"}, ["admin@acme.example"]),
        ({"verified": "no"}, ["cy@acme.example"]),
        ({"verified": "yes", "role": "user"}, ["ava@acme.example", "bob@acme.example"]),
    ],
)
def test_filters(admin_client, team, params, expected):
    assert emails(admin_client.get(LIST, params)) == expected


@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("id", "admin@acme.example"),
        ("-id", "cy@acme.example"),
        ("name", "admin@acme.example"),
        ("-name", "cy@acme.example"),
        ("-email", "cy@acme.example"),
        ("has_mfa", "ava@acme.example"),
        ("-has_mfa", "admin@acme.example"),
        ("role", "admin@acme.example"),
        ("-role", "cy@acme.example"),
        ("is_paid", "bob@acme.example"),
        ("-is_banned", "cy@acme.example"),
        ("email_verified_at", "cy@acme.example"),
        ("-max_inference", "ava@acme.example"),
        ("max_inference", "bob@acme.example"),
        ("-max_embedding", "ava@acme.example"),
        ("-monthly_inference", None),
        ("prev_month_inference", None),
        ("-total_usage", None),
        ("last_active_at", None),
    ],
)
def test_every_column_sorts_on_the_server(admin_client, team, sort, first):
    response = admin_client.get(LIST, {"sort": sort})
    assert response.status_code == 200
    rows = emails(response)
    assert len(rows) == 4
    if first:
        assert rows[0] == first


def test_pagination_sizes(admin_client, org, team):
    for i in range(60):
        UserFactory(organization=org, email=f"z{i:03}@acme.example")
    assert len(emails(admin_client.get(LIST))) == 25
    assert len(emails(admin_client.get(LIST, {"per_page": 50}))) == 50
    assert len(emails(admin_client.get(LIST, {"per_page": 100}))) == 64
    assert len(emails(admin_client.get(LIST, {"per_page": 500}))) == 64
    assert len(emails(admin_client.get(LIST, {"per_page": 7}))) == 25  # not offered
    page3 = admin_client.get(LIST, {"page": 3})
    assert len(emails(page3)) == 14


def test_query_count_is_constant_in_rows(admin_client, org, team):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(LIST, {"per_page": 100}).status_code == 200
        return len(ctx.captured_queries)

    admin_client.get(LIST)  # session and last-active writes happen once
    few = count()
    for i in range(40):
        user = UserFactory(organization=org, email=f"n{i}@acme.example")
        give(user, 1_000)
    assert count() == few


# --- limits ---------------------------------------------------------------------------


def edit(client, user, value, token_type="inference", **extra):
    return client.post(
        reverse(
            "tokens:user_limit_edit", kwargs={"pk": user.pk, "token_type": token_type}
        ),
        {"limit": value, **extra},
    )


def test_limit_edit_form_shows_current_and_headroom(admin_client, team):
    response = admin_client.get(
        reverse(
            "tokens:user_limit_edit",
            kwargs={"pk": team["ava"].pk, "token_type": "inference"},
        )
    )
    assert response.status_code == 200
    assert response.context["maximum"] == 1_000_000 + 2_199_000


def test_valid_limit_edit_saves_and_shows_new_unallocated(admin_client, team):
    response = edit(admin_client, team["ava"], 1_500_000)
    assert response.status_code == 302
    assert limit(team["ava"]) == 1_500_000
    page = admin_client.get(response["Location"])
    text = page.content.decode()
    assert "set to 1,500,000" in text
    assert "Unallocated inference tokens now: 1,699,000" in text
    change = AllocationChange.objects.filter(user=team["ava"]).first()
    assert change.delta == 500_000
    assert change.audit_event.actor.email == "admin@acme.example"


def test_embedding_limit_edits_only_embedding(admin_client, team):
    edit(admin_client, team["ava"], 250_000, token_type="embedding")
    assert limit(team["ava"], "embedding") == 250_000
    assert limit(team["ava"]) == 1_000_000


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Enter a whole number of tokens"),
        ("-5", "cannot be negative"),
        ("", "Enter the new limit"),
        ("1.5", "Enter a whole number of tokens"),
        ("199999", "at least 200,000"),
        ("4000000", "only 2,199,000 are unallocated"),
    ],
)
def test_refused_limit_edits_change_nothing(admin_client, team, value, message):
    before = AllocationChange.objects.count()
    response = edit(admin_client, team["ava"], value)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert limit(team["ava"]) == 1_000_000
    assert AllocationChange.objects.count() == before


def test_below_minimum_saved_when_admin_confirms(admin_client, team):
    response = edit(admin_client, team["ava"], 150_000, confirm_below_minimum="on")
    assert response.status_code == 302
    assert limit(team["ava"]) == 150_000


def test_unknown_token_type_in_url_is_404(admin_client, team):
    response = edit(admin_client, team["ava"], 300_000, token_type="training")
    assert response.status_code == 404
    assert limit(team["ava"]) == 1_000_000


# --- row actions ---------------------------------------------------------------------


def test_confirmation_pages_before_destructive_actions(admin_client, team):
    pk = team["ava"].pk
    page = admin_client.get(
        reverse("tokens:user_deactivate_confirm", kwargs={"pk": pk})
    )
    assert "drop to 1,000 tokens" in page.content.decode()
    page = admin_client.get(reverse("tokens:user_ban_confirm", kwargs={"pk": pk}))
    assert "cannot sign in" in page.content.decode()
    team["ava"].refresh_from_db()
    assert team["ava"].is_paid and not team["ava"].is_banned


def post_action(client, name, user):
    return client.post(
        reverse(f"tokens:user_{name}", kwargs={"pk": user.pk}), follow=True
    )


def test_deactivate_and_reactivate(admin_client, team):
    ava = team["ava"]
    response = post_action(admin_client, "deactivate", ava)
    assert "deactivated" in response.content.decode()
    ava.refresh_from_db()
    assert not ava.is_paid
    assert limit(ava) == 1_000
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.USER_PAID_CHANGED, target_id=str(ava.pk)
        ).count()
        == 1
    )
    response = post_action(admin_client, "reactivate", ava)
    ava.refresh_from_db()
    assert ava.is_paid
    # The policy's floor (Standard: 500,000), not the platform minimum, and the
    # message says what was granted.
    assert limit(ava) == 500_000
    assert (
        f"{ava.email} reactivated: inference limit 500,000, embedding limit 500,000"
        in response.content.decode()
    )


def test_ban_unban_and_refusals(admin_client, admin_user, team):
    ava = team["ava"]
    post_action(admin_client, "ban", ava)
    ava.refresh_from_db()
    assert ava.is_banned
    again = post_action(admin_client, "ban", ava)
    assert "already banned" in again.content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_BANNED).count() == 1
    post_action(admin_client, "unban", ava)
    ava.refresh_from_db()
    assert not ava.is_banned
    self_ban = post_action(admin_client, "ban", admin_user)
    assert "yourself" in self_ban.content.decode()


def test_mark_verified(admin_client, team):
    cy = team["cy"]
    post_action(admin_client, "verify", cy)
    cy.refresh_from_db()
    assert cy.email_verified_at is not None
    event = AuditEvent.objects.get(
        action=AuditEvent.Action.USER_EMAIL_VERIFIED, target_id=str(cy.pk)
    )
    assert event.actor.email == "admin@acme.example"


def test_detail_page_shows_profile_balances_and_history(admin_client, team):
    response = admin_client.get(
        reverse("tokens:user_detail", kwargs={"pk": team["ava"].pk})
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "ava@acme.example" in body
    assert "1,000,000" in body
    assert "Allocation history" in body
    assert len(response.context["changes"]) == 2


# --- bulk ------------------------------------------------------------------------


def bulk(client, **data):
    return client.post(reverse("tokens:user_bulk"), data)


def test_bulk_shows_confirmation_then_bans_with_one_event_each(admin_client, team):
    pks = [team["ava"].pk, team["bob"].pk]
    page = bulk(admin_client, action="ban", pk=pks)
    assert page.status_code == 200
    assert {u.email for u in page.context["users"]} == {
        "ava@acme.example",
        "bob@acme.example",
    }
    assert not User.objects.filter(pk__in=pks, is_banned=True).exists()
    done = bulk(admin_client, action="ban", pk=pks, confirmed="1")
    assert done.status_code == 302
    assert User.objects.filter(pk__in=pks, is_banned=True).count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_BANNED).count() == 2
    assert "Banned 2 users." in admin_client.get(done["Location"]).content.decode()


def test_bulk_all_matching_the_filter(admin_client, team):
    bulk(
        admin_client,
        action="paid_off",
        select_all="1",
        query="role=user&paid=yes",
        confirmed="1",
    )
    assert set(User.objects.filter(is_paid=False).values_list("email", flat=True)) == {
        "ava@acme.example",
        "bob@acme.example",
        "cy@acme.example",
    }
    assert limit(team["ava"]) == 1_000
    # one audit event per changed user (bob was already unpaid)
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.USER_PAID_CHANGED).count()
        == 2
    )


def test_bulk_set_limit_refused_whole_with_shortfall(admin_client, team):
    pks = [team["ava"].pk, team["bob"].pk, team["cy"].pk]
    confirm = bulk(
        admin_client,
        action="set_limit",
        token_type="inference",
        limit=2_000_000,
        pk=pks,
    )
    assert "short" in confirm.context["effect"].refusal
    response = bulk(
        admin_client,
        action="set_limit",
        token_type="inference",
        limit=2_000_000,
        pk=pks,
        confirmed="1",
    )
    message = admin_client.get(response["Location"]).content.decode()
    assert "short" in message
    assert [limit(team[k]) for k in ("ava", "bob", "cy")] == [1_000_000, 1_000, 500_000]
    assert not AllocationChange.objects.filter(source="bulk").exists()


def test_bulk_set_limit_within_pool(admin_client, team):
    pks = [team["ava"].pk, team["cy"].pk]
    response = bulk(
        admin_client,
        action="set_limit",
        token_type="embedding",
        limit=300_000,
        pk=pks,
        confirmed="1",
    )
    assert (
        "Changed the limit of 2 users."
        in admin_client.get(response["Location"]).content.decode()
    )
    assert AllocationChange.objects.filter(source="bulk").count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "", "pk": ["1"]}, "Choose a bulk action"),
        ({"action": "set_limit", "pk": ["1"]}, "Choose the token type"),
        (
            {
                "action": "set_limit",
                "token_type": "inference",
                "limit": "x",
                "pk": ["1"],
            },
            "whole number",
        ),
        ({"action": "ban"}, "Select at least one user"),
    ],
)
def test_bulk_bad_input_shows_message(admin_client, team, data, message):
    response = admin_client.post(reverse("tokens:user_bulk"), data, follow=True)
    assert message in response.content.decode()
    assert (
        not User.objects.filter(is_banned=True)
        .exclude(email="cy@acme.example")
        .exists()
    )


# --- export ----------------------------------------------------------------------


def test_export_streams_filtered_csv_and_is_audited(admin_client, team, other_org):
    UserFactory(organization=other_org, email="=cmd@globex.example")
    UserFactory(
        organization=team["ava"].organization,
        email="evil@acme.example",
        first_name="=HYPERLINK(1)",
    )
    response = admin_client.get(reverse("tokens:user_export"), {"role": "user"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="users-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["ID", "Name", "Email"]
    assert len(rows[0]) == 14
    exported = [r[2] for r in rows[1:]]
    assert exported == [
        "ava@acme.example",
        "bob@acme.example",
        "cy@acme.example",
        "evil@acme.example",
    ]
    assert rows[4][1].startswith("'=HYPERLINK")
    assert "=cmd@globex.example" not in exported
    event = AuditEvent.objects.get(action=AuditEvent.Action.DATA_EXPORTED)
    assert event.after == {"export": "users", "filters": {"role": "user"}}
