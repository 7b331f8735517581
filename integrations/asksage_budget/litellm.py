"""Budget enforcement for the LiteLLM proxy (docs/integrations.md).

``budget_callback`` is a LiteLLM ``CustomLogger``; name it in the proxy's
``config.yaml`` (``litellm_settings: callbacks:
asksage_budget.litellm.budget_callback``) and configure it with
``ASKSAGE_BUDGET_*`` environment variables (``settings.py``).

- Before the model call (``async_pre_call_hook``) it authorizes an estimate —
  ``max_tokens`` (or ``ASKSAGE_BUDGET_DEFAULT_MAX_TOKENS``) plus the prompt's
  tokens as ``litellm.token_counter`` counts them; embeddings: the input's tokens,
  as embedding tokens — with a request id of its own (a fresh UUID: a client can
  set LiteLLM's call id, so it is not used). A refusal reaches the caller as
  LiteLLM's error with the platform's status: 402 (with ``remaining``), 403.
- After a successful call (``async_log_success_event``; once at the end of a
  stream) it reports the usage with ``event_id`` = that request id and the hold,
  so a repeat is a duplicate, never a second charge.
- When the call fails (``async_post_call_failure_hook``, ``async_log_failure_event``)
  the hold is released. Each request is settled or released once (the first
  hook that fires wins).
- When the platform cannot answer, ``ASKSAGE_BUDGET_FAILURE_POLICY`` decides
  (``failure.py``)."""

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import litellm
from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

from asksage_budget.client import AsyncBudgetClient
from asksage_budget.errors import (
    BudgetError,
    Forbidden,
    InsufficientTokens,
    NotFound,
    PlatformUnavailable,
)
from asksage_budget.failure import Ledger, Pending
from asksage_budget.models import UsageEvent
from asksage_budget.settings import Settings

logger = logging.getLogger("asksage_budget")

# Where the request's id travels from the pre-call hook to the logging hooks.
METADATA_KEY = "asksage_budget_request_id"
# The calls that spend tokens of the platform's two types; other routes (images,
# audio, moderation, rerank, files, batches) have no such unit and pass unmetered.
EMBEDDING_CALLS = frozenset({"embedding", "aembedding"})
INFERENCE_CALLS = frozenset(
    {
        "completion",
        "acompletion",
        "text_completion",
        "atext_completion",
        "responses",
        "aresponses",
        "anthropic_messages",
        "aanthropic_messages",
    }
)


def _metadata_of(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request's metadata as the logging hooks see it."""
    params = kwargs.get("litellm_params") or {}
    for source in (
        params.get("metadata"),
        params.get("litellm_metadata"),
        kwargs.get("metadata"),
        kwargs.get("litellm_metadata"),
    ):
        if isinstance(source, Mapping) and METADATA_KEY in source:
            return source
    return {}


def _usage_of(kwargs: Mapping[str, Any], response: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of a finished call, or None if unknown."""
    standard = kwargs.get("standard_logging_object")
    if isinstance(standard, Mapping) and standard.get("total_tokens"):
        return int(standard.get("prompt_tokens") or 0), int(
            standard.get("completion_tokens") or 0
        )
    for candidate in (kwargs.get("complete_streaming_response"), response):
        usage = getattr(candidate, "usage", None)
        if usage is None and isinstance(candidate, Mapping):
            usage = candidate.get("usage")
        if usage is not None:
            get = usage.get if isinstance(usage, Mapping) else usage.__getattribute__
            try:
                return int(get("prompt_tokens") or 0), int(
                    get("completion_tokens") or 0
                )
            except (AttributeError, TypeError, ValueError):
                continue
    return None


def _refusal(status: int, error: BudgetError, **extra: Any) -> HTTPException:
    """LiteLLM turns an HTTPException whose detail has ``error`` into an OpenAI-style
    error with that message, that status and the other fields kept."""
    return HTTPException(
        status_code=status,
        detail={"error": error.detail, "code": error.code, **extra},
    )


class BudgetCallback(CustomLogger):
    """Authorize before, report after, release on failure (the module's docstring)."""

    def __init__(
        self,
        settings: Settings | None = None,
        client: AsyncBudgetClient | None = None,
    ):
        super().__init__()
        self._settings = settings
        self._client = client
        self._ledger: Ledger | None = None

    # --- configuration ------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def client(self) -> AsyncBudgetClient:
        if self._client is None:
            s = self.settings
            self._client = AsyncBudgetClient(
                s.url, s.key, timeout=s.timeout, retries=s.retries
            )
        return self._client

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.settings, self.client, logger)
        return self._ledger

    # --- what a request asks for -------------------------------------------------

    def _user(self, data: Mapping[str, Any], key: Any) -> str:
        """The OpenAI ``user`` field, else the LiteLLM key's ``user_email``, its
        metadata's ``asksage_user`` or ``user_email``, else its ``user_id`` (the
        first of the key's that is an email)."""
        user = data.get("user")
        if isinstance(user, str) and user.strip():
            return user.strip()
        metadata = getattr(key, "metadata", None) or {}
        for candidate in (
            getattr(key, "user_email", None),
            metadata.get("asksage_user"),
            metadata.get("user_email"),
            getattr(key, "user_id", None),
        ):
            # The platform knows users by email: LiteLLM's own ids are not one.
            if isinstance(candidate, str) and "@" in candidate:
                return candidate.strip()
        return ""

    def _estimate(self, data: Mapping[str, Any], embedding: bool) -> int:
        model = str(data.get("model") or "")
        if embedding:
            given = data.get("input")
            texts = [given] if isinstance(given, str) else list(given or [])
            tokens = 0
            for text in texts:
                if isinstance(text, str):
                    tokens += self._count(model, text=text)
                elif isinstance(text, list):  # already tokens
                    tokens += len(text)
            return max(1, tokens)
        completion = (
            data.get("max_tokens")
            or data.get("max_completion_tokens")
            or data.get("max_output_tokens")
        )
        if not isinstance(completion, int) or completion <= 0:
            completion = self.settings.default_max_tokens
        messages = data.get("messages")
        text = data.get("prompt") or data.get("input")
        if isinstance(messages, list) and messages:
            prompt = self._count(model, messages=messages)
        elif isinstance(text, str):
            prompt = self._count(model, text=text)
        elif isinstance(text, list) and text:  # a Responses API input list
            prompt = self._count(model, messages=text)
        else:
            prompt = 0
        return max(1, completion + prompt)

    @staticmethod
    def _count(model: str, **what: Any) -> int:
        try:
            return int(litellm.token_counter(model=model, **what))
        except Exception:  # a tokenizer that fails must not fail the call
            logger.debug("token_counter failed for %s", model, exc_info=True)
            return 0

    # --- the hooks ---------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        try:
            settings = self.settings
        except ValueError as error:
            logger.error("asksage_budget is not configured: %s", error)
            raise HTTPException(
                status_code=503,
                detail={"error": "Token budgets are not configured on this gateway."},
            ) from error
        kind = str(getattr(call_type, "value", call_type))
        if kind not in EMBEDDING_CALLS and kind not in INFERENCE_CALLS:
            return data
        embedding = kind in EMBEDDING_CALLS
        user = self._user(data, user_api_key_dict)
        if not user:
            raise HTTPException(
                status_code=400,
                detail={
                    "error": "Name the user: the OpenAI 'user' field, or a key whose "
                    "user_email (or metadata asksage_user) is the user's email.",
                    "code": "no_user",
                },
            )
        asked = str(data.get("model") or "")
        pending = Pending(
            request_id=f"litellm-{uuid.uuid4()}",
            user=user,
            model=settings.model_map.get(asked, asked),
            token_type="embedding" if embedding else "inference",
            estimate=self._estimate(data, embedding),
        )
        try:
            hold = await self.client.authorize(
                user=pending.user,
                model=pending.model,
                tokens=pending.estimate,
                request_id=pending.request_id,
                token_type=pending.token_type,
            )
        except InsufficientTokens as error:
            raise _refusal(402, error, remaining=error.remaining) from error
        except (Forbidden, NotFound) as error:
            raise _refusal(403, error) from error
        except PlatformUnavailable as error:
            if not self.ledger.admit_unauthorized(pending, error):
                raise HTTPException(
                    status_code=503,
                    detail={
                        "error": "The token budget service cannot be reached; "
                        "nothing was charged. Retry shortly.",
                        "code": "budget_unavailable",
                    },
                ) from error
        except BudgetError as error:  # 400, 401, 409: this gateway's mistake
            logger.error("asksage_budget: authorization failed: %r", error)
            raise HTTPException(
                status_code=503,
                detail={
                    "error": "The token budget check failed on this gateway's "
                    "configuration; nothing was charged.",
                    "code": "budget_misconfigured",
                },
            ) from error
        else:
            pending.hold_id = hold.hold_id
            self.ledger.reachable()
        self.ledger.opened(pending)
        # Where LiteLLM keeps this route's metadata (``litellm_metadata`` on the
        # routes whose own ``metadata`` goes to the provider).
        field = self._select_metadata_field(data) or "metadata"
        metadata = data.get(field)
        if not isinstance(metadata, dict):
            metadata = data[field] = {}
        metadata[METADATA_KEY] = pending.request_id
        return data

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        request_id = _metadata_of(kwargs).get(METADATA_KEY)
        pending = self.ledger.close(request_id) or self.ledger.reopen(request_id)
        if pending is None:
            return
        used = _usage_of(kwargs, response_obj)
        if used is None:
            logger.warning(
                "asksage_budget: no token counts for %s; reporting the estimate",
                request_id,
            )
            used = (pending.estimate, 0)
        prompt, completion = used
        if pending.token_type == "embedding":
            prompt, completion = prompt + completion, 0
        event = UsageEvent(
            event_id=pending.request_id,
            user=pending.user,
            model=pending.model,
            token_type=pending.token_type,
            prompt_tokens=prompt,
            completion_tokens=completion,
            hold_id=pending.hold_id,
            application=self.ledger.application(pending),
        )
        self.ledger.deliver(event, pending)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        await self.ledger.release(_metadata_of(kwargs).get(METADATA_KEY))

    async def async_post_call_failure_hook(
        self, request_data, original_exception, user_api_key_dict, traceback_str=None
    ):
        await self.ledger.release(_metadata_of(request_data).get(METADATA_KEY))


budget_callback = BudgetCallback()
