"""The LiteLLM callback's bookkeeping (integrations/asksage_budget/failure.py,
docs/integrations.md, When the platform cannot answer), with a stub platform: the
fail-open cap, usage kept while the platform is away and sent once it is back,
a success after a release still reported. No LiteLLM needed."""

import asyncio
import logging

from asksage_budget import failure
from asksage_budget.errors import PlatformUnavailable
from asksage_budget.failure import FAIL_OPEN_MARK, Ledger, Pending
from asksage_budget.models import EventResult, UsageEvent, UsageResult
from asksage_budget.settings import Settings

from tests.kit import run_in_own_loop

DOWN = PlatformUnavailable("down", status=None, code="unreachable")


class Platform:
    """Answers like the API, or raises PlatformUnavailable while ``down``."""

    def __init__(self):
        self.down = False
        self.reports: list[list[str]] = []
        self.released: list[str] = []

    async def usage(self, events):
        if self.down:
            raise DOWN
        ids = [e.event_id for e in events]
        self.reports.append(ids)
        return UsageResult(
            tuple(EventResult(i, "recorded") for i in ids), len(ids), 0, 0
        )

    async def release(self, hold_id):
        if self.down:
            raise DOWN
        self.released.append(hold_id)
        return 1


def ledger(policy="open", cap=250, outbox_limit=10_000):
    settings = Settings(
        url="http://platform",
        key="k",
        failure_policy=policy,
        fail_open_tokens=cap,
        outbox_limit=outbox_limit,
    )
    platform = Platform()
    return Ledger(settings, platform, logging.getLogger("test")), platform


def pending(n, hold_id=None, estimate=100, user="ava@acme.example"):
    return Pending(f"req-{n}", user, "gpt", "inference", estimate, hold_id)


def event(p):
    return UsageEvent(
        event_id=p.request_id, user=p.user, model=p.model, prompt_tokens=1
    )


async def settle(book, p):
    book.deliver(event(p), p)
    await book._sender


def test_fail_open_admits_a_user_up_to_the_cap_and_frees_it_once_reported(caplog):
    async def run():
        book, platform = ledger(cap=250)
        platform.down = True
        first, second, third = pending(1), pending(2), pending(3)
        admitted = [book.admit_unauthorized(p, DOWN) for p in (first, second, third)]
        other_user = book.admit_unauthorized(pending(4, user="ben@acme.example"), DOWN)
        for p in (first, second):
            book.opened(p)
            book.close(p.request_id)
            await settle(book, p)
        kept = len(book.outbox)
        platform.down = False
        book.reachable()
        await book._sender
        return admitted, other_user, kept, platform.reports, dict(book.unreported)

    admitted, other_user, kept, reports, unreported = run_in_own_loop(run())
    assert admitted == [True, True, False]  # 200 of 250, then 300 > 250
    assert other_user  # the cap is per user
    assert kept == 2
    assert reports == [["req-1", "req-2"]]
    assert unreported == {"ben@acme.example": 100}
    assert "FAIL-OPEN: call let through" in caplog.text
    assert "FAIL-OPEN cap reached" in caplog.text


def test_fail_closed_admits_nothing_and_says_so(caplog):
    book, _ = ledger(policy="closed")
    assert not book.admit_unauthorized(pending(1), DOWN)
    assert "FAIL-CLOSED: call refused" in caplog.text
    assert not book.unreported


def test_events_kept_while_down_go_with_the_next_report_in_order():
    async def run():
        book, platform = ledger()
        platform.down = True
        await settle(book, pending(1, "h1"))
        await settle(book, pending(2, "h2"))
        platform.down = False
        await settle(book, pending(3, "h3"))
        return platform.reports, len(book.outbox)

    reports, left = run_in_own_loop(run())
    assert reports == [["req-1", "req-2", "req-3"]]
    assert left == 0


def test_kept_usage_goes_by_itself_when_no_call_comes(monkeypatch):
    """After an outage a quiet gateway still delivers: a failed report is tried
    again after a pause that doubles while the platform stays away, and the pause
    starts over once a report goes through."""
    monkeypatch.setattr(failure, "RETRY_FIRST_SECONDS", 0.01)

    async def run():
        book, platform = ledger()
        platform.down = True
        await settle(book, pending(1, "h1"))
        kept, pause_after_failure = len(book.outbox), book._retry_pause
        reported = asyncio.Event()
        usage = platform.usage

        async def usage_and_tell(events):
            answer = await usage(events)
            reported.set()
            return answer

        platform.usage = usage_and_tell
        platform.down = False  # and no call comes
        await asyncio.wait_for(reported.wait(), timeout=10)
        await book._sender
        return kept, pause_after_failure, platform.reports, book

    kept, pause_after_failure, reports, book = run_in_own_loop(run())
    assert kept == 1
    assert pause_after_failure == 0.02
    assert reports == [["req-1"]]
    assert not book.outbox
    assert book._retry_pause == 0.01


def test_the_outbox_is_bounded():
    async def run():
        book, platform = ledger(outbox_limit=2)
        platform.down = True
        for n in range(4):
            await settle(book, pending(n, f"h{n}"))
        return [e.event_id for e, _ in book.outbox]

    assert run_in_own_loop(run()) == ["req-0", "req-1"]


def test_a_release_that_fails_is_sent_again_when_the_platform_is_back():
    async def run():
        book, platform = ledger()
        book.opened(pending(1, "h1"))
        platform.down = True
        await book.release("req-1")
        platform.down = False
        book.reachable()
        await book._releaser
        return platform.released, list(book.releases)

    assert run_in_own_loop(run()) == (["h1"], [])


def test_a_success_after_a_release_is_still_reported_once():
    async def run():
        book, platform = ledger()
        book.opened(pending(1, "h1"))
        await book.release("req-1")
        again = book.close("req-1") or book.reopen("req-1")
        assert again is not None and book.reopen("req-1") is None
        await settle(book, again)
        return platform.released, platform.reports

    assert run_in_own_loop(run()) == (["h1"], [["req-1"]])


def test_a_fail_open_event_is_marked_for_the_admins():
    book, _ = ledger()
    assert book.application(pending(1)) == "litellm" + FAIL_OPEN_MARK
    assert book.application(pending(2, "h2")) == "litellm"


def test_a_request_no_hook_closes_is_forgotten_after_an_hour():
    book, _ = ledger()
    stale = pending(1)
    stale.opened_at -= 3_601
    book.opened(stale)
    book.unreported[stale.user] = 100  # as admitted fail-open
    book.opened(pending(2, "h2"))
    assert list(book.pending) == ["req-2"]
    assert not book.unreported
