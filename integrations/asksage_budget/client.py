"""``BudgetClient`` (sync) and ``AsyncBudgetClient``: the four calls of the gateway
API (docs/gateway-api.md) over httpx, with pooled keep-alive connections,
timeouts, typed results and exceptions (``asksage_budget.errors``).

Retries: every call of this API is safe to send again, so each is retried (a few
times, with a short backoff) when the platform did not answer — no connection, a
timeout, 502/503/504 — and never after any other answer:

- ``authorize`` is idempotent per ``request_id`` (per key): a repeat returns the
  same hold, so a retry after a lost answer does not reserve twice;
- ``usage`` is idempotent per ``event_id``: a repeat of the same payload is a
  ``duplicate`` (the event's ``occurred_at`` is fixed when it is made);
- releasing a hold twice gives its tokens back once (the second answers 0);
- ``balance`` only reads.

httpx was chosen over hand-written HTTP for its connection pool (sync and async
with one API), its timeouts and its transports (tests mount one)."""

import asyncio
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx

from asksage_budget.errors import PlatformUnavailable, error_for
from asksage_budget.models import Authorization, Balance, UsageEvent, UsageResult

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
RETRY_STATUSES = frozenset({502, 503, 504})
# What a request may raise when the platform did not answer: httpx's transport
# errors, and the transport's own slips on a connection the peer has just closed
# (httpcore's anyio backend has raised AttributeError on reading the peer's
# address of a socket already gone, and an OSError can escape in the same way).
UNANSWERED = (httpx.TransportError, AttributeError, OSError)
MAX_EVENTS = 1000  # per usage call (docs/gateway-api.md, Calls)


def _backoff(attempt: int) -> float:
    return min(0.05 * 2**attempt, 0.5)


class _Calls:
    """What both clients share: the requests and the reading of the answers."""

    def __init__(self, base_url: str, key: str, retries: int):
        if not base_url:
            raise ValueError("base_url is required (e.g. https://admin.example.com)")
        if not key:
            raise ValueError("key is required (a service key, eak_…)")
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        self.retries = max(0, retries)

    @staticmethod
    def authorize_body(
        user: str, model: str, tokens: int, request_id: str, token_type: str
    ) -> dict[str, Any]:
        return {
            "user": user,
            "model": model,
            "token_type": token_type,
            "tokens": tokens,
            "request_id": request_id,
        }

    @staticmethod
    def usage_body(events: Iterable[UsageEvent | dict]) -> dict[str, Any]:
        payload = [e.as_json() if isinstance(e, UsageEvent) else e for e in events]
        if not 1 <= len(payload) <= MAX_EVENTS:
            raise ValueError(f"send 1 to {MAX_EVENTS} events per call")
        return {"events": payload}

    @staticmethod
    def release_path(hold_id: str) -> str:
        return f"/api/v1/holds/{quote(str(hold_id), safe='')}/release"

    def retry_after(self, attempt: int, response: httpx.Response | None) -> bool:
        """Whether to send again (the call did not reach an answer)."""
        if attempt >= self.retries:
            return False
        return response is None or response.status_code in RETRY_STATUSES

    @staticmethod
    def unreachable(error: Exception) -> PlatformUnavailable:
        return PlatformUnavailable(
            f"The platform did not answer ({type(error).__name__}: {error}).",
            status=None,
            code="unreachable",
        )

    @staticmethod
    def read(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            raise error_for(response.status_code, body)
        return body


class BudgetClient:
    """The gateway API from synchronous code (thread-safe: one pool).

    >>> with BudgetClient("https://admin.example.com", key) as budget:
    ...     hold = budget.authorize(user="ava@x.example", model="gpt-4o",
    ...                             tokens=4000, request_id="req-42")
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = 2,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
    ):
        self._calls = _Calls(base_url, key, retries)
        self._http = httpx.Client(
            base_url=self._calls.base_url,
            headers=self._calls.headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
            ),
            transport=transport,
        )

    def __enter__(self) -> "BudgetClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except UNANSWERED as error:
                if not self._calls.retry_after(attempt, None):
                    raise self._calls.unreachable(error) from error
            else:
                if not self._calls.retry_after(attempt, response):
                    return self._calls.read(response)
            time.sleep(_backoff(attempt))
            attempt += 1

    def authorize(
        self,
        *,
        user: str,
        model: str,
        tokens: int,
        request_id: str,
        token_type: str = "inference",
    ) -> Authorization:
        """Reserve ``tokens`` for ``user`` (a hold), or raise the refusal."""
        body = _Calls.authorize_body(user, model, tokens, request_id, token_type)
        return Authorization.from_json(
            self._send("POST", "/api/v1/authorize", json=body)
        )

    def usage(self, events: Iterable[UsageEvent | dict]) -> UsageResult:
        """Report up to 1,000 events; each answered recorded/duplicate/rejected."""
        body = _Calls.usage_body(events)
        return UsageResult.from_json(self._send("POST", "/api/v1/usage", json=body))

    def release(self, hold_id: str) -> int:
        """Give a hold's tokens back; how many (0 if no longer open)."""
        return int(self._send("POST", _Calls.release_path(hold_id))["released"])

    def balance(self, *, user: str, token_type: str = "inference") -> Balance:
        params = {"user": user, "token_type": token_type}
        return Balance.from_json(self._send("GET", "/api/v1/balance", params=params))


class AsyncBudgetClient:
    """The same calls from asyncio code (an ASGI gateway such as LiteLLM's proxy).
    Make it inside the event loop that uses it; ``await client.aclose()`` at the
    end."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = 2,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._calls = _Calls(base_url, key, retries)
        self._http = httpx.AsyncClient(
            base_url=self._calls.base_url,
            headers=self._calls.headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
            ),
            transport=transport,
        )

    async def __aenter__(self) -> "AsyncBudgetClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except UNANSWERED as error:
                if not self._calls.retry_after(attempt, None):
                    raise self._calls.unreachable(error) from error
            else:
                if not self._calls.retry_after(attempt, response):
                    return self._calls.read(response)
            await asyncio.sleep(_backoff(attempt))
            attempt += 1

    async def authorize(
        self,
        *,
        user: str,
        model: str,
        tokens: int,
        request_id: str,
        token_type: str = "inference",
    ) -> Authorization:
        body = _Calls.authorize_body(user, model, tokens, request_id, token_type)
        answer = await self._send("POST", "/api/v1/authorize", json=body)
        return Authorization.from_json(answer)

    async def usage(self, events: Iterable[UsageEvent | dict]) -> UsageResult:
        body = _Calls.usage_body(events)
        return UsageResult.from_json(
            await self._send("POST", "/api/v1/usage", json=body)
        )

    async def release(self, hold_id: str) -> int:
        return int((await self._send("POST", _Calls.release_path(hold_id)))["released"])

    async def balance(self, *, user: str, token_type: str = "inference") -> Balance:
        params = {"user": user, "token_type": token_type}
        answer = await self._send("GET", "/api/v1/balance", params=params)
        return Balance.from_json(answer)
