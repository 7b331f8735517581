"""Analytics → Activity Logs (docs/product.md, Activity Logs), from the outside."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent
from analytics import keyset
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.models import UsageEvent
from tokens.services import metering

pytestmark = pytest.mark.django_db

PAGE = reverse("analytics:activity")
START = timezone.now().replace(microsecond=0) - dt.timedelta(days=2)


@pytest.fixture
def usage(org, other_org, service_key):
    """60 usage events for two users of our org, 5 for another org."""
    fund(org)
    fund(other_org)
    ava = UserFactory(organization=org, email="ava@acme.example")
    bob = UserFactory(organization=org, email="bob@acme.example")
    eve = UserFactory(organization=other_org, email="eve@globex.example")
    for user in (ava, bob, eve):
        give(user, 5_000_000)
    AIModelFactory(key="gpt")
    AIModelFactory(key="embed", name="Text Embedder", token_type="embedding")
    events = [
        {
            "event_id": f"ev-{i:03}",
            "user": (ava if i % 2 else bob).email,
            "model": "embed" if i % 5 == 0 else "gpt",
            "token_type": "embedding" if i % 5 == 0 else "inference",
            "prompt_tokens": 10 + i,
            "completion_tokens": 0 if i % 5 == 0 else i,
            "occurred_at": (START + dt.timedelta(minutes=i)).isoformat(),
            "application": "=SUM(A1)" if i == 7 else "chat",
        }
        for i in range(60)
    ] + [
        {
            "event_id": f"other-{i}",
            "user": eve.email,
            "model": "gpt",
            "token_type": "inference",
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "occurred_at": START.isoformat(),
        }
        for i in range(5)
    ]
    assert (
        metering.usage_record(key=service_key[0], events=events).as_dict()["recorded"]
        == 65
    )
    return {"ava": ava, "bob": bob, "eve": eve}


def rows(response):
    return list(response.context["table"].data)


# --- access -----------------------------------------------------------------------


def test_access(anon_client, member_client, admin_client, usage):
    assert anon_client.get(PAGE)["Location"].startswith(reverse("accounts:login"))
    assert member_client.get(PAGE).status_code == 403
    assert admin_client.get(PAGE).status_code == 200
    export = reverse("analytics:activity_export", kwargs={"tab": "audit"})
    assert member_client.get(export).status_code == 403
    excerpts = reverse("analytics:activity_excerpts")
    assert member_client.post(excerpts).status_code == 403
    assert admin_client.get(excerpts).status_code == 405


def test_another_orgs_events_never_appear(other_admin_client, usage):
    response = other_admin_client.get(PAGE)
    assert {e.event_id for e in rows(response)} == {f"other-{i}" for i in range(5)}
    audit_rows = rows(other_admin_client.get(PAGE, {"tab": "audit"}))
    assert all(e.organization.name == "Globex" for e in audit_rows)


# --- user activity ----------------------------------------------------------------


def test_usage_tab_newest_first_with_keyset_pages(admin_client, usage):
    first = admin_client.get(PAGE)
    ids = [e.event_id for e in rows(first)]
    assert ids[:3] == ["ev-059", "ev-058", "ev-057"]
    assert len(ids) == 50
    older = first.context["page"].older
    second = admin_client.get(PAGE, {"after": older})
    ids2 = [e.event_id for e in rows(second)]
    assert ids2 == [f"ev-{i:03}" for i in range(9, -1, -1)]
    assert second.context["page"].older is None
    back = admin_client.get(PAGE, {"before": second.context["page"].newer})
    assert [e.event_id for e in rows(back)] == ids


def test_keyset_page_two_has_no_gaps_or_repeats_while_events_arrive(
    admin_client, usage, service_key
):
    first = admin_client.get(PAGE)
    seen = [e.event_id for e in rows(first)]
    # New events arrive between the two page loads.
    metering.usage_record(
        key=service_key[0],
        events=[
            {
                "event_id": f"late-{i}",
                "user": "ava@acme.example",
                "model": "gpt",
                "token_type": "inference",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "occurred_at": timezone.now().isoformat(),
            }
            for i in range(5)
        ],
    )
    second = admin_client.get(PAGE, {"after": first.context["page"].older})
    seen += [e.event_id for e in rows(second)]
    assert sorted(seen) == sorted(f"ev-{i:03}" for i in range(60))


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"user": "ava@acme.example"}, 30),
        ({"model": "embed"}, 12),
        # Key or display name, in any case (docs/product.md, Activity Logs).
        ({"model": "EMBED"}, 12),
        ({"model": " Gpt "}, 48),
        ({"model": "text embedder"}, 12),
        ({"model": "embedder"}, 0),
        ({"token_type": "embedding"}, 12),
        ({"date_from": START.date().isoformat()}, 50),
        ({"date_to": (START.date() - dt.timedelta(days=1)).isoformat()}, 0),
        ({"user": "eve@globex.example"}, 0),
    ],
)
def test_usage_filters(admin_client, usage, params, count):
    response = admin_client.get(PAGE, {"tab": "usage", **params})
    assert len(rows(response)) == min(count, 50)


def test_bad_filter_shows_message_not_500(admin_client, usage):
    response = admin_client.get(PAGE, {"date_from": "yesterday"})
    assert response.status_code == 200
    assert "Enter a date as YYYY-MM-DD, such as 2026-12-31." in (
        response.content.decode()
    )
    assert rows(response) == []


def test_bad_cursor_is_ignored(admin_client, usage):
    response = admin_client.get(PAGE, {"after": "garbage"})
    assert len(rows(response)) == 50


def test_rows_link_to_user_detail(admin_client, usage):
    body = admin_client.get(PAGE).content.decode()
    assert reverse("tokens:user_detail", kwargs={"pk": usage["ava"].pk}) in body


# --- excerpts ---------------------------------------------------------------------


def send(service_key, event_id, prompt):
    return metering.usage_record(
        key=service_key[0],
        events=[
            {
                "event_id": event_id,
                "user": "ava@acme.example",
                "model": "gpt",
                "token_type": "inference",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "occurred_at": timezone.now().isoformat(),
                "prompt_excerpt": prompt,
                "response_excerpt": "the answer",
            }
        ],
    )


def test_excerpts_absent_when_off_stored_and_shown_when_on(
    admin_client, usage, service_key, org
):
    send(service_key, "x-off", "secret prompt")
    assert UsageEvent.objects.get(event_id="x-off").prompt_excerpt == ""
    response = admin_client.post(
        reverse("analytics:activity_excerpts"), {"store_prompt_excerpts": "on"}
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.store_prompt_excerpts
    event = AuditEvent.objects.get(action=AuditEvent.Action.ORG_SETTINGS_CHANGED)
    assert event.after == {"store_prompt_excerpts": True}
    send(service_key, "x-on", "p" * 2500)
    stored = UsageEvent.objects.get(event_id="x-on")
    assert len(stored.prompt_excerpt) == 2000
    body = admin_client.get(PAGE).content.decode()
    assert "p" * 2000 in body
    assert "the answer" in body
    assert "secret prompt" not in body
    admin_client.post(reverse("analytics:activity_excerpts"), {})
    org.refresh_from_db()
    assert not org.store_prompt_excerpts


# --- audit trail ------------------------------------------------------------------


def test_audit_tab_filters_and_diff(admin_client, admin_user, usage, org):
    give(usage["ava"], 4_000_000, actor=admin_user)
    audit.record(
        action=AuditEvent.Action.SIGN_IN, actor=usage["bob"], target=usage["bob"]
    )
    response = admin_client.get(
        PAGE, {"tab": "audit", "action": "allocation.limit_changed"}
    )
    events = rows(response)
    assert events and all(e.action == "allocation.limit_changed" for e in events)
    body = response.content.decode()
    assert "inference limit" in body
    assert "5,000,000" in body and "4,000,000" in body
    by_actor = rows(
        admin_client.get(PAGE, {"tab": "audit", "actor": "admin@acme.example"})
    )
    assert by_actor and all(e.actor_email == "admin@acme.example" for e in by_actor)
    target = rows(
        admin_client.get(PAGE, {"tab": "audit", "target": "bob@acme.example"})
    )
    assert {e.action for e in target} >= {"auth.sign_in"}
    assert all(e.target_id == str(usage["bob"].pk) for e in target)


def test_export_each_tab_streams_filtered_escaped_and_audited(admin_client, usage):
    response = admin_client.get(
        reverse("analytics:activity_export", kwargs={"tab": "usage"}),
        {"user": "ava@acme.example"},
    )
    assert response.streaming
    data = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert data[0][:3] == ["time", "event_id", "user"]
    assert len(data) == 31
    assert {row[2] for row in data[1:]} == {"ava@acme.example"}
    assert any(row[8] == "'=SUM(A1)" for row in data[1:])
    audit_export = admin_client.get(
        reverse("analytics:activity_export", kwargs={"tab": "audit"})
    )
    audit_rows = list(
        csv.reader(io.StringIO(b"".join(audit_export.streaming_content).decode()))
    )
    assert audit_rows[0][0] == "time"
    assert not any("globex" in ",".join(r) for r in audit_rows)
    exports = AuditEvent.objects.filter(action=AuditEvent.Action.DATA_EXPORTED)
    assert {e.after["export"] for e in exports} == {"activity-usage", "activity-audit"}


def test_page_query_count_does_not_grow_with_rows(
    admin_client, usage, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    admin_client.get(PAGE)
    with CaptureQueriesContext(connection) as small:
        admin_client.get(PAGE, {"tab": "audit"})
    with CaptureQueriesContext(connection) as big:
        admin_client.get(PAGE, {"tab": "usage"})
    assert len(big.captured_queries) <= len(small.captured_queries) + 2


def test_keyset_cursor_roundtrip():
    moment = timezone.now()
    assert keyset.decode(keyset.encode(moment, 42)) == (moment, 42)
    assert keyset.decode("") is None
    with pytest.raises(keyset.InvalidCursor):
        keyset.decode("nonsense")


@pytest.mark.parametrize(
    "cursor",
    [
        "2026-13-01T00:00:00_5",  # month 13 (was a 500: ValueError)
        "2026-02-30T00:00:00_5",  # no such day
        "2026-01-01T00:00:00+99:00_5",  # offset out of range
        "0001-01-01T00:00:00+05:00_5",  # before year 1 in UTC
        "9999-12-31T23:59:59-05:00_5",  # after year 9999 in UTC
        "2026-01-01T00:00:00_9223372036854775808",  # id beyond 64 bits
        "2026-01-01T00:00:00_٥",  # a digit of another script
        "2026-01-01T00:00:00_",
        "nonsense",
        "\x00_1",
    ],
)
@pytest.mark.parametrize("direction", ["after", "before"])
@pytest.mark.parametrize("tab", ["usage", "audit"])
def test_a_damaged_cursor_shows_the_first_page_with_a_message(
    admin_client, usage, cursor, direction, tab
):
    response = admin_client.get(PAGE, {"tab": tab, direction: cursor})
    assert response.status_code == 200
    assert "That page does not exist" in response.content.decode()
    first = admin_client.get(PAGE, {"tab": tab})
    assert [r.pk for r in response.context["page"].rows] == [
        r.pk for r in first.context["page"].rows
    ]
