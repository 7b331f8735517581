"""The demo data of ``seed_demo`` (docs/operations.md, Commands): the organization,
its people, the AI models, their limits and usage, and how a month of a user's
usage is planned. Deterministic: one ``random.Random`` per user and month, seeded
from 42.
"""

import datetime as dt
import random

from asksage_admin.lib.periods import last_day
from tokens.models import (
    TokenType,
)

DEMO_ORG = "Northwind Federal Agency"
DEMO_DOMAIN = "northwind.example"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105  (demo only; refused in production)
SEED_KEY_NAME = "seed_demo"
MEMBERS = [
    ("Ava", "Thompson"),
    ("Liam", "Garcia"),
    ("Mia", "Chen"),
    ("Noah", "Patel"),
    ("Emma", "Johnson"),
    ("Lucas", "Nguyen"),
    ("Sofia", "Martinez"),
    ("Ethan", "Kim"),
    ("Isabella", "Brown"),
    ("Mason", "Davis"),
    ("Amara", "Okafor"),
    ("Oliver", "Wilson"),
]
INFERENCE, EMBEDDING = TokenType.INFERENCE.value, TokenType.EMBEDDING.value

# key, name, provider, tags, type, input rate, output rate, weight in the demo's mix.
# Rates are platform tokens per raw token, relative to GPT-4o's input price.
MODELS = [
    ("gpt-4o", "GPT-4o", "OpenAI", "chat,vision", INFERENCE, "1.0", "3.0", 20),
    (
        "gpt-4o-mini",
        "GPT-4o mini",
        "OpenAI",
        "chat,vision",
        INFERENCE,
        "0.15",
        "0.6",
        30,
    ),
    ("o1-mini", "o1-mini", "OpenAI", "chat,reasoning", INFERENCE, "1.2", "4.8", 4),
    (
        "claude-3-5-sonnet",
        "Claude 3.5 Sonnet",
        "Anthropic",
        "chat,vision,code",
        INFERENCE,
        "1.0",
        "5.0",
        18,
    ),
    (
        "claude-3-haiku",
        "Claude 3 Haiku",
        "Anthropic",
        "chat",
        INFERENCE,
        "0.1",
        "0.5",
        8,
    ),
    (
        "gemini-1-5-pro",
        "Gemini 1.5 Pro",
        "Google",
        "chat,vision,long-context",
        INFERENCE,
        "0.5",
        "2.0",
        6,
    ),
    (
        "gemini-1-5-flash",
        "Gemini 1.5 Flash",
        "Google",
        "chat,vision",
        INFERENCE,
        "0.03",
        "0.12",
        5,
    ),
    (
        "llama-3-70b",
        "Llama 3 70B",
        "Meta",
        "chat,open-weights",
        INFERENCE,
        "0.3",
        "0.3",
        5,
    ),
    (
        "mistral-large",
        "Mistral Large",
        "Mistral AI",
        "chat,code",
        INFERENCE,
        "0.8",
        "2.4",
        4,
    ),
    (
        "text-embedding-3-large",
        "text-embedding-3-large",
        "OpenAI",
        "embedding",
        EMBEDDING,
        "0.05",
        "0",
        35,
    ),
    (
        "text-embedding-3-small",
        "text-embedding-3-small",
        "OpenAI",
        "embedding",
        EMBEDDING,
        "0.01",
        "0",
        50,
    ),
    (
        "cohere-embed-v3",
        "Cohere Embed v3",
        "Cohere",
        "embedding,multilingual",
        EMBEDDING,
        "0.04",
        "0",
        15,
    ),
]
# Monthly limits handed out in turn (all ≥ MIN_USER_TOKENS, ~700k on average).
INFERENCE_LIMITS = [1_000_000, 750_000, 500_000, 1_500_000, 400_000, 600_000]
EMBEDDING_LIMITS = [500_000, 300_000, 250_000, 800_000, 200_000, 400_000]
ADMIN_LIMITS = {INFERENCE: 500_000, EMBEDDING: 250_000}
# Members (by position) who ran a large batch job on the 1st: near their limit.
NEAR_LIMIT = {1, 4}
EMBEDDING_SHARE = 0.15
CHAT_APPS = [
    "chat",
    "chat",
    "chat",
    "contract-review",
    "policy-assistant",
    "code-helper",
]
EMBEDDING_APPS = ["knowledge-base", "rag-ingest"]


def _weighted_models(token_type: str) -> tuple[list[tuple], list[int]]:
    rows = [m for m in MODELS if m[4] == token_type]
    return rows, [m[7] for m in rows]


def month_plan(user, limits, period, per_month, *, near_limit) -> list[dict]:
    """The user's usage events of one month: deterministic for (user, month).

    A few events a working day (fewer at weekends), models drawn by weight, prompt
    and completion sizes drawn from long-tailed distributions and then scaled so
    the month's charge is a chosen share of the user's limit (15–65 %), so the
    demo stays mostly under the limits whatever --events-per-user is. A near-limit
    user also ran one large batch job early on the 1st (80 % of the limit).
    """
    rng = random.Random(f"42:{user.email}:{period:%Y-%m}")
    days = [period + dt.timedelta(days=d) for d in range(last_day(period).day)]
    day_weights = [1.0 if d.weekday() < 5 else 0.2 for d in days]
    embedding_count = round(per_month * EMBEDDING_SHARE)
    counts = {INFERENCE: per_month - embedding_count, EMBEDDING: embedding_count}
    shares = {INFERENCE: rng.uniform(0.15, 0.65), EMBEDDING: rng.uniform(0.1, 0.5)}
    if near_limit:
        shares[INFERENCE] = 0.12
    planned = []
    for token_type, count in counts.items():
        rows, weights = _weighted_models(token_type)
        drafts = []
        for _n in range(count):
            model = rng.choices(rows, weights)[0]
            day = rng.choices(days, day_weights)[0]
            moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
                minutes=int(rng.gauss(13.5 * 60, 150)) % (24 * 60),
                seconds=rng.randrange(60),
            )
            if token_type == EMBEDDING:
                prompt, completion = rng.lognormvariate(9.5, 1.0), 0.0
                app = rng.choice(EMBEDDING_APPS)
            else:
                prompt = rng.lognormvariate(7.0, 0.9)
                completion = rng.lognormvariate(6.0, 0.8)
                app = rng.choice(CHAT_APPS)
            drafts.append((moment, model, prompt, completion, app))
        planned += _scaled(drafts, token_type, limits[token_type] * shares[token_type])
    if near_limit and counts[INFERENCE]:
        moment = dt.datetime.combine(period, dt.time(0, 20), tzinfo=dt.UTC)
        model = next(m for m in MODELS if m[0] == "gpt-4o")
        batch = (
            moment,
            model,
            0.8 * limits[INFERENCE] / 2,
            0.8 * limits[INFERENCE] / 6,
        )
        planned += _scaled([(*batch, "batch-summaries")], INFERENCE, None)
    planned.sort(key=lambda e: e[0])
    return [
        {
            "event_id": f"demo-{user.email}-{period:%Y-%m}-{n:04d}",
            "user": user.email,
            "model": model_key,
            "token_type": token_type,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "occurred_at": moment,
            "application": app,
        }
        for n, (moment, model_key, token_type, prompt, completion, app) in enumerate(
            planned, start=1
        )
    ]


def _scaled(drafts, token_type: str, budget: float | None) -> list[tuple]:
    """Whole token counts for the drafts, scaled so their charge ≈ ``budget``."""
    cost = sum(p * float(m[5]) + c * float(m[6]) for _t, m, p, c, _a in drafts)
    factor = budget / cost if budget is not None and cost else 1.0
    return [
        (moment, m[0], token_type, max(1, int(p * factor)), int(c * factor), app)
        for moment, m, p, c, app in drafts
    ]
