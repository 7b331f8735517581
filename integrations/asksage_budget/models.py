"""Typed results of the gateway API and the usage event sent to it."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Authorization:
    """A hold: ``tokens`` reserved for the user until ``expires_at``."""

    hold_id: str
    tokens: int
    remaining: int
    expires_at: str
    status: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Authorization":
        return cls(
            hold_id=str(body["hold_id"]),
            tokens=int(body["tokens"]),
            remaining=int(body["remaining"]),
            expires_at=str(body["expires_at"]),
            status=str(body["status"]),
        )


@dataclass(frozen=True)
class Balance:
    period: str
    limit: int
    used: int
    held: int
    remaining: int
    overage: int
    org_remaining: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Balance":
        return cls(
            period=str(body["period"]),
            **{
                name: int(body[name])
                for name in (
                    "limit",
                    "used",
                    "held",
                    "remaining",
                    "overage",
                    "org_remaining",
                )
            },
        )


def _utc_text(when: dt.datetime | str | None = None) -> str:
    if when is None:
        when = dt.datetime.now(dt.UTC)
    if isinstance(when, str):
        return when
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat()


@dataclass(frozen=True)
class UsageEvent:
    """One model call. ``occurred_at`` is fixed when the event is made (now, if not
    given), so that a retry sends the same payload: the platform records an
    ``event_id`` once and answers ``duplicate`` to the same payload again, but
    ``conflict`` to a different one."""

    event_id: str
    user: str
    model: str
    prompt_tokens: int
    completion_tokens: int = 0
    token_type: str = "inference"
    hold_id: str | None = None
    application: str = ""
    occurred_at: str = field(default_factory=_utc_text)
    prompt_excerpt: str | None = None
    response_excerpt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.occurred_at, str):
            object.__setattr__(self, "occurred_at", _utc_text(self.occurred_at))

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "user": self.user,
            "model": self.model,
            "token_type": self.token_type,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "occurred_at": self.occurred_at,
        }
        if self.hold_id:
            body["hold_id"] = self.hold_id
        if self.application:
            body["application"] = self.application
        if self.prompt_excerpt is not None:
            body["prompt_excerpt"] = self.prompt_excerpt
        if self.response_excerpt is not None:
            body["response_excerpt"] = self.response_excerpt
        return body


@dataclass(frozen=True)
class EventResult:
    """One event's answer: ``recorded``, ``duplicate`` or ``rejected`` (with the
    ``error`` code and ``detail``)."""

    event_id: str
    status: str
    error: str = ""
    detail: str = ""

    @property
    def delivered(self) -> bool:
        """The platform has the event (now or from an earlier delivery)."""
        return self.status in {"recorded", "duplicate"}


@dataclass(frozen=True)
class UsageResult:
    results: tuple[EventResult, ...]
    recorded: int
    duplicates: int
    rejected: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "UsageResult":
        return cls(
            results=tuple(
                EventResult(
                    event_id=str(r.get("event_id", "")),
                    status=str(r.get("status", "")),
                    error=str(r.get("error", "")),
                    detail=str(r.get("detail", "")),
                )
                for r in body.get("results", [])
            ),
            recorded=int(body.get("recorded", 0)),
            duplicates=int(body.get("duplicates", 0)),
            rejected=int(body.get("rejected", 0)),
        )
