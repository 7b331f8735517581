"""What the LiteLLM callback keeps between its hooks, and its failure policy
(docs/integrations.md, When the platform cannot answer).

- ``Pending``: one request between its authorization and its settlement; each is
  closed once (settled or released), by the first hook that fires.
- The outbox: usage waiting for the platform. One report is in flight at a time
  and the events that finish meanwhile go in the next one (a batch of up to
  1,000). What the platform could not take (it did not answer) stays, up to
  ``outbox_limit`` events, and goes with the next report — the next call's
  usage, as soon as an authorization succeeds again, or by itself after a pause
  (``RETRY_FIRST_SECONDS``, doubling up to ``RETRY_MAX_SECONDS``), so a gateway
  that goes idle after an outage still delivers. Each event keeps its payload,
  so a resend is at worst a ``duplicate``.
- Fail closed (the default): while the platform cannot answer, calls are refused
  (503, ``budget_unavailable``), logged as a WARNING.
- Fail open: a call is let through without a hold as long as its user's
  unreported tokens in this process (estimates of calls let through whose usage
  the platform has not yet recorded) stay within ``fail_open_tokens``; past that,
  refused as when closed. Each is logged as a WARNING when it happens, and its
  usage reaches the platform as an ordinary event without a hold (recorded
  whatever the balance; it may show as overage) whose ``application`` says
  "fail-open", so the organization's admins see it on Activity Logs with the
  event. The gateway API has no call to record "let through unchecked" at the
  moment it happens — it could not, the platform being unreachable then."""

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field

from asksage_budget.client import MAX_EVENTS, AsyncBudgetClient
from asksage_budget.errors import BudgetError, PlatformUnavailable
from asksage_budget.models import UsageEvent
from asksage_budget.settings import Settings

FAIL_OPEN_MARK = " (fail-open: platform unreachable)"
# A request no hook closed by then is forgotten (a client that left a stream
# before its first chunk fires none); the platform expired its hold long before
# (HOLD_TTL_SECONDS, 10 minutes by default).
STALE_SECONDS = 3600
# Kept usage is sent again by itself after these pauses (doubling) while no call
# comes to carry it.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


@dataclass
class Pending:
    request_id: str
    user: str
    model: str
    token_type: str
    estimate: int
    hold_id: str | None = None
    opened_at: float = field(default_factory=time.monotonic)

    @property
    def fail_open(self) -> bool:
        return self.hold_id is None


class Ledger:
    def __init__(
        self, settings: Settings, client: AsyncBudgetClient, log: logging.Logger
    ):
        self.settings, self.client, self.log = settings, client, log
        self.pending: dict[str, Pending] = {}
        self.outbox: deque[tuple[UsageEvent, Pending]] = deque()
        self.unreported: dict[str, int] = defaultdict(int)
        self.releases: deque[str] = deque()  # holds whose release did not go through
        # Requests released lately: a success after a failure hook (a retry that
        # worked) is still reported, so no call goes unbilled.
        self.released: OrderedDict[str, Pending] = OrderedDict()
        self._sender: asyncio.Task | None = None
        # Set when usage or a successful authorization arrives while a report is in
        # flight: if that report then fails (begun while the platform was down),
        # the sender tries again at once instead of waiting for the next call.
        self._again = False
        self._releaser: asyncio.Task | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_pause = RETRY_FIRST_SECONDS

    # --- requests ------------------------------------------------------------------

    def opened(self, pending: Pending) -> None:
        self.pending[pending.request_id] = pending
        # Oldest first (insertion order): forget what no hook will ever close.
        while self.pending:
            oldest = next(iter(self.pending.values()))
            if pending.opened_at - oldest.opened_at < STALE_SECONDS:
                break
            del self.pending[oldest.request_id]
            self._uncount(oldest)

    def _uncount(self, pending: Pending) -> None:
        if pending.fail_open:
            self.unreported[pending.user] -= pending.estimate
            if self.unreported[pending.user] <= 0:
                del self.unreported[pending.user]

    def close(self, request_id: str | None) -> Pending | None:
        """The request, removed: the caller settles or releases it (once)."""
        return self.pending.pop(request_id, None) if request_id else None

    def application(self, pending: Pending) -> str:
        return self.settings.application + (FAIL_OPEN_MARK if pending.fail_open else "")

    def admit_unauthorized(self, pending: Pending, error: PlatformUnavailable) -> bool:
        """The failure policy, for a call the platform could not authorize."""
        what = (
            f"user={pending.user} model={pending.model} type={pending.token_type} "
            f"tokens={pending.estimate} request_id={pending.request_id} "
            f"error={error.code}: {error.detail}"
        )
        if self.settings.failure_policy == "open":
            after = self.unreported[pending.user] + pending.estimate
            if after <= self.settings.fail_open_tokens:
                self.unreported[pending.user] = after
                self.log.warning(
                    "asksage_budget: FAIL-OPEN: call let through without a hold "
                    "(%s of %s unreported tokens for this user): %s",
                    after,
                    self.settings.fail_open_tokens,
                    what,
                )
                return True
            self.log.warning(
                "asksage_budget: FAIL-OPEN cap reached, call refused: %s", what
            )
            return False
        self.log.warning("asksage_budget: FAIL-CLOSED: call refused: %s", what)
        return False

    # --- settling --------------------------------------------------------------

    def deliver(self, event: UsageEvent, pending: Pending) -> None:
        """Queue this event for the platform. One report is in flight at a time:
        events that finish meanwhile go together in the next (a batch), so the
        platform takes one request per batch rather than per call, and an idle
        gateway still reports each event at once."""
        self.outbox.append((event, pending))
        self._trim()
        self._drain()

    def _drain(self) -> None:
        if not self.outbox:
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())
        else:
            self._again = True

    async def _send_all(self) -> None:
        while self.outbox:
            self._again = False
            size = min(MAX_EVENTS, len(self.outbox))
            batch = [self.outbox.popleft() for _ in range(size)]
            if not await self._send(batch) and not self._again:
                # Kept: tried again with the next event or authorization, or by
                # itself after a pause.
                self._retry_later()
                return
        self._retry_pause = RETRY_FIRST_SECONDS

    def _retry_later(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(
            self._retry_pause, self._drain
        )
        self._retry_pause = min(self._retry_pause * 2, RETRY_MAX_SECONDS)

    async def _send(self, batch: list[tuple[UsageEvent, Pending]]) -> bool:
        """Report a batch; False when the platform did not answer (kept)."""
        try:
            answer = await self.client.usage([event for event, _ in batch])
        except PlatformUnavailable as error:
            self._keep(batch, error)
            return False
        except BudgetError as error:  # 400/401: not something a resend fixes
            self.log.error(
                "asksage_budget: usage refused, %s events dropped: %r",
                len(batch),
                error,
            )
            return True
        by_id = {event.event_id: pending for event, pending in batch}
        for result in answer.results:
            pending = by_id.get(result.event_id)
            if pending is None:
                continue
            self._uncount(pending)
            if not result.delivered:
                self.log.error(
                    "asksage_budget: usage event %s rejected: %s %s",
                    result.event_id,
                    result.error,
                    result.detail,
                )
        return True

    def _keep(self, batch, error: PlatformUnavailable) -> None:
        for item in reversed(batch):
            self.outbox.appendleft(item)
        self._trim()
        self.log.warning(
            "asksage_budget: usage not delivered (%s: %s); %s events kept for the "
            "next report",
            error.code,
            error.detail,
            len(self.outbox),
        )

    def _trim(self) -> None:
        while len(self.outbox) > self.settings.outbox_limit:
            event, _ = self.outbox.pop()
            self.log.error(
                "asksage_budget: outbox full, usage event %s dropped", event.event_id
            )

    def reopen(self, request_id: str | None) -> Pending | None:
        """A released request that succeeded after all: its usage is reported
        (on the released hold: charged, nothing more given back)."""
        pending = self.released.pop(request_id, None) if request_id else None
        if pending is not None:
            self.log.warning(
                "asksage_budget: %s succeeded after its hold was released; "
                "reporting its usage",
                request_id,
            )
            if pending.fail_open:
                self.unreported[pending.user] += pending.estimate
        return pending

    async def release(self, request_id: str | None) -> None:
        pending = self.close(request_id)
        if pending is None:
            return
        self.released[pending.request_id] = pending
        while len(self.released) > self.settings.outbox_limit:
            self.released.popitem(last=False)
        if pending.fail_open:
            self._uncount(pending)
            return
        await self._release(pending.hold_id)

    async def _release(self, hold_id: str) -> None:
        try:
            await self.client.release(hold_id)
        except PlatformUnavailable as error:
            self.releases.append(hold_id)
            self.log.warning(
                "asksage_budget: hold %s not released (%s); retried later, else it "
                "expires on the platform",
                hold_id,
                error.code,
            )
        except BudgetError as error:
            self.log.error("asksage_budget: release of %s failed: %r", hold_id, error)

    # --- after an outage ------------------------------------------------------

    def reachable(self) -> None:
        """The platform answered: send what it missed, in the background."""
        self._drain()
        if self.releases and (self._releaser is None or self._releaser.done()):
            self._releaser = asyncio.get_running_loop().create_task(self._releases())

    async def _releases(self) -> None:
        for _ in range(len(self.releases)):  # one try each: a failure re-queues
            await self._release(self.releases.popleft())
