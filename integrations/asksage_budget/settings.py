"""The callback's configuration, read from the environment (docs/integrations.md,
Configuration)."""

import json
import os
from dataclasses import dataclass, field

POLICIES = ("closed", "open")


@dataclass(frozen=True)
class Settings:
    url: str
    key: str
    # "closed": refuse calls while the platform cannot answer; "open": let them
    # through up to ``fail_open_tokens`` per user in this process.
    failure_policy: str = "closed"
    fail_open_tokens: int = 20_000
    # The completion estimate when a request sets no max_tokens.
    default_max_tokens: int = 4_096
    timeout: float = 5.0
    retries: int = 2
    # LiteLLM model name -> the platform's model key (default: the same name).
    model_map: dict[str, str] = field(default_factory=dict)
    # The usage events' ``application`` (shown on Activity Logs).
    application: str = "litellm"
    # Undelivered usage events kept for the next successful call.
    outbox_limit: int = 10_000

    def __post_init__(self) -> None:
        if not self.url or not self.key:
            raise ValueError(
                "Set ASKSAGE_BUDGET_URL (the platform's address) and "
                "ASKSAGE_BUDGET_KEY (a service key) for the budget callback."
            )
        if self.failure_policy not in POLICIES:
            raise ValueError(
                f"ASKSAGE_BUDGET_FAILURE_POLICY must be one of {', '.join(POLICIES)}, "
                f"not {self.failure_policy!r}."
            )

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Settings":
        env = os.environ if environ is None else environ

        def number(name: str, default: float, kind=int):
            raw = env.get(name, "")
            try:
                return kind(raw) if raw.strip() else default
            except ValueError as error:
                raise ValueError(f"{name} must be a number, not {raw!r}.") from error

        raw_map = env.get("ASKSAGE_BUDGET_MODEL_MAP", "").strip()
        try:
            model_map = json.loads(raw_map) if raw_map else {}
        except ValueError as error:
            raise ValueError(
                'ASKSAGE_BUDGET_MODEL_MAP must be a JSON object {"litellm name": '
                '"platform model key"}.'
            ) from error
        if not isinstance(model_map, dict):
            raise ValueError("ASKSAGE_BUDGET_MODEL_MAP must be a JSON object.")
        return cls(
            url=env.get("ASKSAGE_BUDGET_URL", "").strip(),
            key=env.get("ASKSAGE_BUDGET_KEY", "").strip(),
            failure_policy=env.get("ASKSAGE_BUDGET_FAILURE_POLICY", "closed")
            .strip()
            .lower(),
            fail_open_tokens=number("ASKSAGE_BUDGET_FAIL_OPEN_TOKENS", 20_000),
            default_max_tokens=number("ASKSAGE_BUDGET_DEFAULT_MAX_TOKENS", 4_096),
            timeout=number("ASKSAGE_BUDGET_TIMEOUT", 5.0, float),
            retries=number("ASKSAGE_BUDGET_RETRIES", 2),
            model_map={str(k): str(v) for k, v in model_map.items()},
            application=env.get("ASKSAGE_BUDGET_APPLICATION", "litellm")[:60],
        )
