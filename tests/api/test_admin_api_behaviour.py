"""What the admin API does (docs/admin-api.md): the same services as the panel,
each mutation audited once with the token as the means, the bulk dry run equal to
the panel's confirmation, cursor pages, errors as {error, detail}."""

import pytest
from django.core.cache import cache

from accounts.models import AuditEvent
from tokens import selectors
from tokens.models import Allocation, TokenRequest
from tokens.views.bulk_review import bulk_preview

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()


def new_events(before: int):
    return list(AuditEvent.objects.filter(pk__gt=before).order_by("pk"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        (
            "put",
            "/users/{t}/limits/inference",
            {"limit": 400_000},
            "allocation.limit_changed",
        ),
        ("put", "/users/{t}/paid", {"paid": False}, "user.paid_changed"),
        ("post", "/users/{t}/ban", {}, "user.banned"),
        ("post", "/users/{b}/unban", {}, "user.unbanned"),
        (
            "post",
            "/token-requests/{r}/approve",
            {"amount": 10_000},
            "token_request.approved",
        ),
        (
            "post",
            "/token-requests/{r}/deny",
            {"note": "Not now."},
            "token_request.denied",
        ),
        (
            "patch",
            "/distribution/policy",
            {"cooldown_minutes": 30},
            "distribution.policy_changed",
        ),
        (
            "post",
            "/distribution/preset",
            {"preset": "conservative"},
            "distribution.policy_changed",
        ),
    ],
)
def test_each_mutation_writes_one_audit_event_naming_the_token(
    api_world, method, path, body, action
):
    path = (
        path.replace("{t}", str(api_world.target.pk))
        .replace("{b}", str(api_world.banned.pk))
        .replace("{r}", str(api_world.token_request.pk))
    )
    before = last_id()
    response = api_world.write.call(method, path, body)
    assert response.status_code == 200, response.content
    (event,) = [e for e in new_events(before) if e.action != "data.exported"]
    assert event.action == action
    assert event.actor_id == api_world.admin.pk
    assert event.via.startswith("api-token ") and "(automation)" in event.via
    assert event.request_id == response["X-Request-ID"]


def test_panel_actions_name_no_token(api_world, admin_client):
    before = last_id()
    admin_client.post(f"/panel/users/{api_world.target.pk}/ban/")
    (event,) = new_events(before)
    assert (event.action, event.via) == ("user.banned", "")


def test_set_limit_answers_the_new_balance(api_world):
    response = api_world.write.call(
        "put", f"/users/{api_world.target.pk}/limits/inference", {"limit": 400_000}
    )
    inference = next(
        b for b in response.json()["balances"] if b["token_type"] == "inference"
    )
    assert inference["limit"] == 400_000
    assert (
        Allocation.objects.get(user=api_world.target, token_type="inference").limit
        == 400_000
    )


def test_a_refusal_of_the_service_is_a_400_and_saves_nothing(api_world):
    before = last_id()
    response = api_world.write.call(
        "put",
        f"/users/{api_world.target.pk}/limits/inference",
        {"limit": 10**12},
    )
    assert response.status_code == 400
    body = response.json()
    assert (
        body["error"] == "over_allocation" and "unallocated" in body["detail"].lower()
    )
    assert new_events(before) == []


def test_bad_input_names_the_fields(api_world):
    response = api_world.write.call(
        "put", f"/users/{api_world.target.pk}/limits/inference", {"limit": -1}
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"limit"}
    assert (
        api_world.write.call(
            "put", f"/users/{api_world.target.pk}/limits/gold", {"limit": 1}
        ).status_code
        == 400
    )


def test_bulk_dry_run_is_the_panels_confirmation_and_changes_nothing(api_world, org):
    users = [api_world.target, api_world.banned]
    body = {
        "user_ids": [u.pk for u in users],
        "token_type": "inference",
        "limit": 350_000,
        "dry_run": True,
    }
    before = last_id()
    response = api_world.write.call("post", "/users/bulk/limit", body)
    assert response.status_code == 200
    expected = bulk_preview(
        org,
        api_world.admin,
        sorted(users, key=lambda u: u.email),
        {
            "action": "set_limit",
            "token_type": "inference",
            "limit": 350_000,
            "confirm_below_minimum": False,
        },
    )
    effect = response.json()["effect"]
    assert effect["summary"] == expected.summary
    assert effect["pool_lines"] == list(expected.pool_lines)
    assert new_events(before) == []
    assert selectors.user_limits(org, api_world.target)["inference"] == 300_000
    del body["dry_run"]
    done = api_world.write.call("post", "/users/bulk/limit", body)
    assert done.json() == {"dry_run": False, "effect": None, "changed": 2}
    assert selectors.user_limits(org, api_world.banned)["inference"] == 350_000


def test_bulk_with_an_id_of_another_organization_is_404_whole(api_world, org):
    body = {
        "user_ids": [api_world.target.pk, api_world.other_target.pk],
        "token_type": "inference",
        "limit": 350_000,
    }
    assert api_world.write.call("post", "/users/bulk/limit", body).status_code == 404
    assert selectors.user_limits(org, api_world.target)["inference"] == 300_000


def test_users_pages_follow_the_cursor_without_repeats(api_world):
    seen, cursor = [], None
    while True:
        params = {"limit": 1, "sort": "-email"}
        if cursor:
            params["cursor"] = cursor
        page = api_world.read.call("get", "/users", params=params).json()
        seen += [u["email"] for u in page["results"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seen == sorted(
        ["admin@acme.example", "target@acme.example", "zed@acme.example"], reverse=True
    )


def test_users_filters_are_the_panels(api_world):
    found = api_world.read.call(
        "get", "/users", params={"hide_banned": "true", "q": "acme"}
    )
    emails = {u["email"] for u in found.json()["results"]}
    assert emails == {"admin@acme.example", "target@acme.example"}


def test_a_forged_cursor_is_a_400(api_world):
    response = api_world.read.call("get", "/users", params={"cursor": "abc"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_cursor")
    response = api_world.read.call("get", "/audit-events", params={"cursor": "x_1"})
    assert response.json()["error"] == "invalid_cursor"


def test_token_requests_by_status_and_approval(api_world):
    pending = api_world.read.call("get", "/token-requests").json()["results"]
    assert [r["id"] for r in pending] == [api_world.token_request.pk]
    api_world.write.call(
        "post",
        f"/token-requests/{api_world.token_request.pk}/approve",
        {"amount": 20_000, "note": "ok"},
    )
    assert api_world.read.call("get", "/token-requests").json()["results"] == []
    (approved,) = api_world.read.call(
        "get", "/token-requests", params={"status": "approved"}
    ).json()["results"]
    assert (approved["approved_amount"], approved["decided_by"]) == (
        20_000,
        "admin@acme.example",
    )
    assert TokenRequest.objects.get().status == "approved"


def test_audit_trail_is_filtered_and_shows_the_means(api_world):
    api_world.write.call("post", f"/users/{api_world.target.pk}/ban", {})
    events = api_world.read.call(
        "get", "/audit-events", params={"action": "user.banned"}
    ).json()["results"]
    assert [e["action"] for e in events] == ["user.banned"]
    assert events[0]["via"].startswith("api-token ")


def test_usage_export_is_csv_and_audited(api_world):
    before = last_id()
    response = api_world.read.call("get", "/usage/events.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert b"".join(response.streaming_content).startswith(b"event_id")
    (event,) = new_events(before)
    assert event.action == "data.exported" and event.via.startswith("api-token ")


def test_usage_summary_refuses_a_bad_period(api_world):
    response = api_world.read.call(
        "get",
        "/usage/summary",
        params={"period": "range", "start": "2026-02-01", "end": "2026-01-01"},
    )
    assert response.status_code == 400
    assert "before it starts" in response.json()["detail"]


def test_unknown_paths_and_methods_answer_json(api_world):
    assert api_world.read.call("get", "/nothing").json()["error"] == "not_found"
    response = api_world.read.call("delete", "/users")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_distribution_preview_is_the_pages_plan_and_the_run_is_audited(api_world, org):
    from tokens.services.distribution import distribution_plan, policy_ensure

    policy_ensure(organization=org)
    preview = api_world.read.call("get", "/distribution/preview").json()
    plan = distribution_plan(organization=org)
    assert [(c["user_id"], c["new_limit"]) for c in preview["changes"]] == [
        (c.user_id, c.new_limit) for c in plan.changes
    ]
    assert preview["changes"], "the world has users under the floor"
    before = last_id()
    run = api_world.write.call("post", "/distribution/run", {})
    assert run.status_code == 200
    events = new_events(before)
    assert [e.action for e in events].count("distribution.run") == 1
    assert all(e.via.startswith("api-token ") for e in events)
    assert api_world.read.call("get", "/distribution/preview").json()["changes"] == []


def test_a_bad_policy_change_names_the_field_and_saves_nothing(api_world, org):
    from tokens.services.distribution import policy_ensure

    policy = policy_ensure(organization=org)
    before = last_id()
    response = api_world.write.call(
        "patch", "/distribution/policy", {"triggers": [120]}
    )
    assert response.status_code == 400
    assert "triggers" in response.json()["fields"]
    assert new_events(before) == []
    assert api_world.read.call("get", "/distribution/policy").json()["triggers"] == [
        float(t) for t in policy.triggers
    ]
