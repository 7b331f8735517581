"""The client library (integrations/asksage_budget, docs/integrations.md) against
the platform served by the live server: typed results, the API's refusals as
exceptions, idempotent retries; sync and async."""

import uuid

import httpx
import pytest
from asksage_budget import (
    AsyncBudgetClient,
    BudgetClient,
    Conflict,
    Forbidden,
    InsufficientTokens,
    InvalidRequest,
    ModelNotAllowed,
    PlatformUnavailable,
    Unauthorized,
    UnknownHold,
    UnknownUser,
    UsageEvent,
    UserBanned,
)

from accounts.models import User
from bench.litellm_proxy import free_port
from tests.factories import give
from tests.integrations.conftest import MEMBER, SECRET
from tests.kit import run_in_own_loop
from tokens.models import Hold
from tokens.models import UsageEvent as Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budget(world, live_server):
    with BudgetClient(live_server.url, SECRET) as client:
        yield client


def ask(budget, tokens=100, request_id=None, **over):
    return budget.authorize(
        user=over.pop("user", MEMBER),
        model=over.pop("model", "mock-chat"),
        tokens=tokens,
        request_id=request_id or f"req-{uuid.uuid4()}",
        **over,
    )


def test_authorize_returns_a_typed_hold_and_the_same_one_for_its_request_id(budget):
    first = ask(budget, 500, "req-1")
    again = ask(budget, 500, "req-1")
    assert first.hold_id == again.hold_id
    assert (first.tokens, first.status) == (500, "open")
    assert first.remaining == 1_000_000 - 500
    assert Hold.objects.count() == 1


def test_refusals_are_typed_exceptions_with_the_apis_codes(budget, world):
    give(world["user"], 300)
    with pytest.raises(InsufficientTokens) as refused:
        ask(budget, 301)
    assert (refused.value.status, refused.value.remaining) == (402, 300)
    assert "300 inference tokens remain" in refused.value.detail
    with pytest.raises(Conflict):
        ask(budget, 10, "req-x") and ask(budget, 11, "req-x")
    with pytest.raises(UnknownUser):
        ask(budget, user="nobody@acme.example")
    with pytest.raises(InvalidRequest) as invalid:
        ask(budget, 0)
    assert "tokens" in invalid.value.fields
    world["org"].allowed_models.set([world["models"]["mock-broken"]])
    with pytest.raises(ModelNotAllowed) as not_allowed:
        ask(budget)
    assert isinstance(not_allowed.value, Forbidden)
    User.objects.filter(pk=world["user"].pk).update(is_banned=True)
    with pytest.raises(UserBanned) as banned:
        ask(budget, model="mock-broken")
    assert (banned.value.status, banned.value.code) == (403, "user_banned")


def test_an_unknown_key_is_unauthorized(world, live_server):
    client = BudgetClient(live_server.url, "eak_000000000000_wrong")
    with client, pytest.raises(Unauthorized):
        client.balance(user=MEMBER)


def test_usage_settles_once_and_a_resend_is_a_duplicate(budget, world):
    hold = ask(budget, 100)
    event = UsageEvent(
        event_id="ev-1",
        user=MEMBER,
        model="mock-chat",
        prompt_tokens=10,
        completion_tokens=20,
        hold_id=hold.hold_id,
    )
    first = budget.usage([event])
    again = budget.usage([event])  # what a retry after a lost answer sends
    assert (first.recorded, again.duplicates) == (1, 1)
    assert again.results[0].delivered
    changed = UsageEvent(
        event_id="ev-1", user=MEMBER, model="mock-chat", prompt_tokens=11
    )
    clash = budget.usage([changed]).results[0]
    assert (clash.status, clash.error) == ("rejected", "conflict")
    assert Event.objects.count() == 1
    balance = budget.balance(user=MEMBER)
    assert (balance.used, balance.held) == (30, 0)


def test_release_gives_tokens_back_once(budget):
    hold = ask(budget, 700)
    assert budget.release(hold.hold_id) == 700
    assert budget.release(hold.hold_id) == 0
    with pytest.raises(UnknownHold):
        budget.release(str(uuid.uuid4()))
    assert budget.balance(user=MEMBER).held == 0


def test_the_async_client_makes_the_same_calls(world, live_server):
    async def run():
        async with AsyncBudgetClient(live_server.url, SECRET) as client:
            hold = await client.authorize(
                user=MEMBER, model="mock-chat", tokens=50, request_id="a-1"
            )
            again = await client.authorize(
                user=MEMBER, model="mock-chat", tokens=50, request_id="a-1"
            )
            spent = await client.usage(
                [
                    UsageEvent(
                        event_id="a-1",
                        user=MEMBER,
                        model="text-embedding",
                        token_type="embedding",
                        prompt_tokens=5,
                    ),
                    UsageEvent(
                        event_id="a-2",
                        user=MEMBER,
                        model="mock-chat",
                        prompt_tokens=5,
                        hold_id=hold.hold_id,
                    ),
                ]
            )
            released = await client.release(hold.hold_id)
            with pytest.raises(InsufficientTokens):
                await client.authorize(
                    user=MEMBER, model="mock-chat", tokens=10**9, request_id="a-2"
                )
            return hold, again, spent, released, await client.balance(user=MEMBER)

    hold, again, spent, released, balance = run_in_own_loop(run())
    assert hold.hold_id == again.hold_id
    assert spent.recorded == 2
    assert released == 0  # the usage settled it
    assert (balance.used, balance.held) == (5, 0)


# --- retries (no platform: httpx's mock transport counts the attempts) -------------


def counting(answers):
    seen = []

    def handler(request):
        seen.append(request)
        status, body = answers[min(len(seen), len(answers)) - 1]
        return httpx.Response(status, json=body)

    return seen, handler


BALANCE = {
    "period": "2026-12",
    "limit": 10,
    "used": 1,
    "held": 0,
    "remaining": 9,
    "overage": 0,
    "org_remaining": 100,
}
UNAVAILABLE = {"error": "service_unavailable", "detail": "Retry."}


def test_a_503_is_retried_and_the_same_body_sent_again():
    seen, handler = counting([(503, UNAVAILABLE), (503, UNAVAILABLE), (200, BALANCE)])
    client = BudgetClient(
        "http://platform", "k", transport=httpx.MockTransport(handler)
    )
    assert client.balance(user=MEMBER).remaining == 9
    assert len(seen) == 3


def test_a_refusal_is_never_retried():
    refusal = {"error": "insufficient_tokens", "detail": "No.", "remaining": 3}
    seen, handler = counting([(402, refusal)])
    client = BudgetClient(
        "http://platform", "k", transport=httpx.MockTransport(handler)
    )
    with pytest.raises(InsufficientTokens):
        client.authorize(user=MEMBER, model="m", tokens=5, request_id="r")
    assert len(seen) == 1


def test_still_unavailable_after_the_retries_is_platform_unavailable():
    seen, handler = counting([(503, UNAVAILABLE)])
    client = BudgetClient(
        "http://platform", "k", retries=1, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(PlatformUnavailable) as failed:
        client.release("0b7c8c1e-0000-4000-8000-000000000000")
    assert (failed.value.status, len(seen)) == (503, 2)


def test_no_connection_is_platform_unavailable_sync_and_async():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(PlatformUnavailable) as failed:
        BudgetClient(url, "k", retries=1).balance(user=MEMBER)
    assert (failed.value.status, failed.value.code) == (None, "unreachable")

    async def run():
        async with AsyncBudgetClient(url, "k", retries=0) as client:
            await client.balance(user=MEMBER)

    with pytest.raises(PlatformUnavailable):
        run_in_own_loop(run())
