"""The budget callback in a real LiteLLM proxy (docs/integrations.md): mock models,
the platform served by the live server, the proxy in its own virtualenv."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.models import User
from bench.litellm_proxy import MASTER_KEY
from tests.factories import give
from tests.integrations.conftest import MEMBER
from tests.kit import race
from tokens.models import AIModel, Hold, UsageCounter, UsageEvent

pytestmark = [pytest.mark.litellm, pytest.mark.django_db(transaction=True)]

USAGE = "/api/v1/usage"
RELEASE_SUFFIX = "/release"


def chat(proxy, user=MEMBER, model="mock-chat", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": "Hello there"}]}
    if user:
        body["user"] = user
    body.update(extra)
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=60,
    )


def embed(proxy, user=MEMBER):
    return httpx.post(
        f"{proxy.url}/v1/embeddings",
        json={"model": "mock-embed", "input": "a few words to embed", "user": user},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=60,
    )


def open_holds():
    return Hold.objects.filter(status=Hold.Status.OPEN).count()


def counter(user, token_type="inference"):
    return UsageCounter.objects.get(user=user, token_type=token_type)


def test_a_chat_call_is_authorized_then_reported_once_with_its_hold(
    world, proxies, calls
):
    proxy, _ = proxies()
    response = chat(proxy, max_tokens=100)
    assert response.status_code == 200, response.text
    calls.wait(USAGE, 1)
    hold = Hold.objects.get()
    event = UsageEvent.objects.get()
    # Estimate: max_tokens plus the prompt as LiteLLM's token counter counts it.
    assert 100 < hold.tokens < 130
    assert hold.status == Hold.Status.SETTLED
    assert event.event_id == hold.request_id
    assert event.hold_id == hold.pk
    assert (event.prompt_tokens, event.completion_tokens) == (10, 20)
    assert event.application == "litellm"
    assert counter(world["user"]).used == 30
    assert counter(world["user"]).held == 0


def test_without_max_tokens_the_default_estimate_is_reserved(world, proxies, calls):
    proxy, _ = proxies()
    assert chat(proxy).status_code == 200
    calls.wait(USAGE, 1)
    assert 4_096 < Hold.objects.get().tokens < 4_130


def test_a_stream_is_settled_once_at_its_end(world, proxies, calls):
    proxy, _ = proxies()
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        json={
            "model": "mock-chat",
            "stream": True,
            "messages": [{"role": "user", "content": "Hello there"}],
            "user": MEMBER,
            "max_tokens": 50,
        },
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=60,
    ) as response:
        chunks = [line for line in response.iter_lines() if line.startswith("data:")]
    assert response.status_code == 200
    assert chunks[-1] == "data: [DONE]" and len(chunks) > 2
    calls.wait(USAGE, 1)
    event = UsageEvent.objects.get()
    assert event.completion_tokens > 0 and event.prompt_tokens > 0
    assert Hold.objects.get().status == Hold.Status.SETTLED
    assert calls.done[USAGE] == 1


def test_embeddings_are_reported_as_embedding_tokens(world, proxies, calls):
    proxy, _ = proxies()
    response = embed(proxy)
    assert response.status_code == 200, response.text
    calls.wait(USAGE, 1)
    event = UsageEvent.objects.get()
    assert event.token_type == "embedding"
    assert event.model.key == "text-embedding"  # ASKSAGE_BUDGET_MODEL_MAP
    assert (event.prompt_tokens, event.completion_tokens) == (10, 0)
    assert Hold.objects.get().token_type == "embedding"
    assert counter(world["user"], "embedding").used == 10


def test_a_failing_model_releases_the_hold_and_records_nothing(world, proxies, calls):
    proxy, _ = proxies()
    response = chat(proxy, model="mock-broken", max_tokens=10)
    assert response.status_code == 500
    hold = Hold.objects.get()
    # The release comes from the failure hooks, after the answer: wait for it.
    calls.wait(f"/api/v1/holds/{hold.pk}{RELEASE_SUFFIX}", 1)
    hold.refresh_from_db()
    assert hold.status == Hold.Status.RELEASED
    assert not UsageEvent.objects.exists()
    assert counter(world["user"]).held == 0


def test_the_budget_refuses_at_the_limit_with_402_and_what_remains(
    world, proxies, calls
):
    proxy, _ = proxies()
    user = world["user"]
    assert chat(proxy, max_tokens=100).status_code == 200
    calls.wait(USAGE, 1)
    estimate = Hold.objects.get().tokens
    # Room for one more estimate, not for two (each call charges 30).
    give(user, 30 + estimate + 29)
    assert chat(proxy, max_tokens=100).status_code == 200
    calls.wait(USAGE, 2)
    refused = chat(proxy, max_tokens=100)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert error["provider_specific_fields"]["code"] == "insufficient_tokens"
    assert error["provider_specific_fields"]["remaining"] == estimate - 1
    assert "remain this month" in error["message"]
    assert UsageEvent.objects.count() == 2
    assert open_holds() == 0
    assert counter(user).used == 60 <= 30 + estimate + 29


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"is_banned": True}, "user_banned"),
        ({"is_paid": False}, "user_not_paid"),
    ],
)
def test_a_user_who_may_not_spend_is_refused_with_403(
    world, proxies, calls, change, code
):
    proxy, _ = proxies()
    User.objects.filter(pk=world["user"].pk).update(**change)
    response = chat(proxy)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["provider_specific_fields"]["code"] == code
    assert not Hold.objects.exists()
    assert not UsageEvent.objects.exists()


def test_a_model_the_organization_does_not_allow_is_refused_with_403(world, proxies):
    proxy, _ = proxies()
    org = world["org"]
    org.allowed_models.set([world["models"]["mock-broken"]])
    response = chat(proxy)
    assert response.status_code == 403, response.text
    fields = response.json()["error"]["provider_specific_fields"]
    assert fields["code"] == "model_not_allowed"
    assert not Hold.objects.exists()


def test_a_call_that_names_no_user_is_refused_with_400(world, proxies):
    proxy, _ = proxies()
    response = chat(proxy, user=None)
    assert response.status_code == 400, response.text
    assert "Name the user" in response.json()["error"]["message"]
    assert not Hold.objects.exists()


def test_fail_closed_refuses_while_the_platform_is_unreachable(world, proxies, calls):
    proxy, relay = proxies("closed")
    relay.down()
    response = chat(proxy, max_tokens=10)
    assert response.status_code == 503, response.text
    fields = response.json()["error"]["provider_specific_fields"]
    assert fields["code"] == "budget_unavailable"
    relay.up()
    assert chat(proxy, max_tokens=10).status_code == 200
    calls.wait(USAGE, 1)
    assert UsageEvent.objects.count() == 1
    assert open_holds() == 0


def test_fail_open_lets_calls_through_up_to_the_cap_and_reports_them_later(
    world, proxies, calls
):
    # Cap 250 tokens per user: two calls estimated at ~110 each, not a third.
    proxy, relay = proxies("open", 250)
    relay.down()
    assert chat(proxy, max_tokens=100).status_code == 200
    assert chat(proxy, max_tokens=100).status_code == 200
    third = chat(proxy, max_tokens=100)
    assert third.status_code == 503, third.text
    assert not UsageEvent.objects.exists()
    relay.up()
    # The next call is authorized, and the two kept events are sent (with its
    # own usage, or on their own as soon as the platform answered again).
    assert chat(proxy, max_tokens=100).status_code == 200
    calls.until(lambda: UsageEvent.objects.count() == 3)
    events = list(UsageEvent.objects.order_by("application"))
    assert len(events) == 3
    unchecked = [e for e in events if e.hold_id is None]
    assert len(unchecked) == 2
    assert all("fail-open" in e.application for e in unchecked)
    assert counter(world["user"]).used == 90
    assert open_holds() == 0
    # Delivered, the cap is free again for the next outage (one more authorized
    # call first: the proxy has read the platform's answer to the delivery by the
    # time that call's usage is recorded).
    assert chat(proxy, max_tokens=100).status_code == 200
    calls.until(lambda: UsageEvent.objects.count() == 4)
    relay.down()
    assert chat(proxy, max_tokens=100).status_code == 200
    relay.up()
    assert chat(proxy, max_tokens=100).status_code == 200
    calls.until(lambda: UsageEvent.objects.count() == 6)
    assert UsageEvent.objects.filter(hold_id=None).count() == 3
    assert open_holds() == 0


@race
def test_concurrent_callers_never_overspend(world, proxies, calls):
    """16 calls at once for one user whose limit fits four: each call reserves
    max_tokens + its prompt (1,000 + a few) and is charged 10 + 20 × 49 = 990, so
    after four the fifth never fits, however the calls interleave."""
    proxy, _ = proxies()
    user = world["user"]
    AIModel.objects.filter(key="mock-chat").update(output_rate=49)
    give(user, 5 * 990)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: chat(proxy, max_tokens=1_000), range(16)))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: 4, 402: 12}, statuses
    calls.until(lambda: UsageEvent.objects.count() == 4)
    assert counter(user).used == 4 * 990 <= 5 * 990
    assert counter(user).held == 0
    assert open_holds() == 0
    assert Hold.objects.filter(status=Hold.Status.SETTLED).count() == 4
