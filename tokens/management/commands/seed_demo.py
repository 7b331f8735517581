"""The demo data set of ``make run`` (docs/operations.md, Commands), built through the
services so it obeys every rule the product does (``check_ledger`` passes after it).

Idempotent: the organization, users and models are found by name, email and key;
a purchase is recorded only when the pool cannot cover the allocations; a limit is
set only for a user who never had one; usage events have deterministic ids and
payloads (one ``random.Random`` per user and month, seeded from 42), so a re-run
sends the same events and the gateway records them as duplicates. The current
month's plan covers the whole month and only the events already in the past are
sent, so a run later in the month adds the days since, nothing else.
"""

import datetime as dt
import math
import random
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization, ServiceKey, User
from accounts.services import service_key_create
from asksage_admin.lib.periods import last_day, period_of, previous_period
from tokens import selectors
from tokens.models import (
    AIModel,
    AllocationChange,
    AutoApprovalRule,
    TokenRequest,
    TokenType,
)
from tokens.services import allocation_set_limit, purchase_record
from tokens.services.distribution import policy_ensure
from tokens.services.metering import MAX_BATCH, usage_record
from tokens.services.requests import (
    auto_approval_rule_update,
    token_request_approve,
    token_request_deny,
    token_request_submit,
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


class Command(BaseCommand):
    help = (
        "Create (or bring up to date) the demo: an active organization with an admin "
        "and members, a catalog of AI models, a purchase, limits for every user and "
        "months of usage recorded through the gateway's service. Idempotent: a "
        "re-run finds everything and records no event twice. Refused outside "
        "DEBUG/DEMO_MODE because it sets a published password."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--users", type=int, default=len(MEMBERS), help="Number of members."
        )
        parser.add_argument(
            "--months",
            type=int,
            default=3,
            help="Months of usage, the current one included (default 3).",
        )
        parser.add_argument(
            "--events-per-user",
            type=int,
            default=60,
            help="Usage events per user and month (default 60).",
        )

    def handle(self, *args, users: int, months: int, events_per_user: int, **options):
        if not (settings.DEBUG or settings.DEMO_MODE):
            raise CommandError(
                "seed_demo sets a published password: run it only with DEMO_MODE=true "
                "or DEBUG=true."
            )
        if users < 1:
            raise CommandError("--users must be at least 1.")
        if months < 1:
            raise CommandError("--months must be at least 1.")
        if events_per_user < 0:
            raise CommandError("--events-per-user must be 0 or more.")
        now = timezone.now()
        periods = [period_of(now)]
        for _i in range(months - 1):
            periods.insert(0, previous_period(periods[0]))
        with transaction.atomic():
            org, admin, members = self._seed_people(users, now)
        models = self._seed_models()
        limits = self._plan_limits(admin, members)
        purchased = self._seed_purchase(org, limits, periods[0])
        allocated = self._seed_allocations(admin, limits)
        usage = self._seed_usage(
            [admin, *members], limits, models, periods, events_per_user, now
        )
        requests = self._seed_workflow(org, admin, members)

        self.stdout.write(self.style.SUCCESS(f"Demo organization: {DEMO_ORG}"))
        self.stdout.write(f"  {len(members)} members, 1 admin.")
        self.stdout.write(
            f"  {len(models)} AI models; {purchased} purchase(s) recorded; "
            f"{allocated} limit(s) set."
        )
        self.stdout.write(
            f"  Usage over {months} month(s): {usage['recorded']:,} events recorded, "
            f"{usage['duplicates']:,} already present, {usage['rejected']:,} rejected."
        )
        self.stdout.write(
            f"  Standard distribution policy; {requests} token request(s) added."
        )
        # SITE_URL, the one base of absolute links (make run sets it from HOST and
        # PORT), so the printed address is the one being served.
        login = settings.SITE_URL + reverse("accounts:login")
        self.stdout.write(f"Sign in at {login} as:")
        self.stdout.write(f"  admin:  {admin.email} / {DEMO_PASSWORD}")
        self.stdout.write(f"  member: {members[0].email} / {DEMO_PASSWORD}")

    # --- policy and token requests -------------------------------------------------

    # (member index, type, amount, reason, decision, approved amount, note)
    REQUESTS = (
        (
            1,
            "inference",
            500_000,
            "Quarterly report drafting with long documents.",
            None,
            None,
            "",
        ),
        (
            2,
            "embedding",
            400_000,
            "Indexing the new policy library for search.",
            None,
            None,
            "",
        ),
        (
            3,
            "inference",
            300_000,
            "Pilot of the contract-review assistant.",
            "approve",
            200_000,
            "Approved 200K for the pilot; ask again if needed.",
        ),
        (
            4,
            "inference",
            2_000_000,
            "Personal experiments.",
            "deny",
            None,
            "Please use the sandbox account for experiments.",
        ),
    )

    def _seed_workflow(self, org, admin, members) -> int:
        """The Standard policy, a few token requests in every state (through the
        services, so they are audited), then an auto-approval rule. Emails that
        these send are kept off the console."""
        policy_ensure(organization=org)
        added = 0
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
        ):
            for (
                index,
                token_type,
                amount,
                reason,
                decision,
                approved,
                note,
            ) in self.REQUESTS:
                if index >= len(members):
                    continue
                user = members[index]
                if TokenRequest.objects.filter(
                    user=user, token_type=token_type
                ).exists():
                    continue
                request = token_request_submit(
                    user=user, token_type=token_type, amount=amount, reason=reason
                )
                added += 1
                if decision == "approve":
                    token_request_approve(
                        actor=admin, request=request, amount=approved, note=note
                    )
                elif decision == "deny":
                    token_request_deny(actor=admin, request=request, note=note)
            if not AutoApprovalRule.objects.filter(organization=org).exists():
                auto_approval_rule_update(
                    actor=admin,
                    organization=org,
                    enabled=True,
                    max_amount=100_000,
                    max_consumption_percent=50,
                )
        return added

    # --- people -------------------------------------------------------------------

    def _seed_people(self, count: int, now) -> tuple[Organization, User, list[User]]:
        org, _created = Organization.objects.get_or_create(
            name=DEMO_ORG,
            defaults={
                "status": Organization.Status.ACTIVE,
                "activated_at": now,
                "domain": DEMO_DOMAIN,
                "billing_address": "1 Federal Plaza, Washington, DC 20001",
                "country": "United States",
                "email": f"billing@{DEMO_DOMAIN}",
            },
        )
        # One hash for the one published password: hashing it per user would be
        # most of the seed's time.
        self.password_hash = make_password(DEMO_PASSWORD)
        admin = self._user(
            f"admin@{DEMO_DOMAIN}", "Grace", "Hopper", org, User.Role.ADMIN, now
        )
        names = [MEMBERS[i % len(MEMBERS)] for i in range(count)]
        members = [
            self._user(
                f"{first.lower()}.{last.lower()}{'' if i < len(MEMBERS) else i}"
                f"@{DEMO_DOMAIN}",
                first,
                last,
                org,
                User.Role.USER,
                now,
            )
            for i, (first, last) in enumerate(names)
        ]
        return org, admin, members

    def _user(self, email, first, last, org, role, now) -> User:
        user = User.objects.select_related("organization").filter(email=email).first()
        if user is None:
            user = User.objects.create(
                email=email,
                password=self.password_hash,
                first_name=first,
                last_name=last,
                organization=org,
                role=role,
                email_verified_at=now,
                terms_accepted_at=now,
            )
        return user

    # --- catalog, pool and limits -------------------------------------------------

    def _seed_models(self) -> dict[str, AIModel]:
        models = {}
        for key, name, provider, tags, token_type, rate_in, rate_out, _w in MODELS:
            models[key], _created = AIModel.objects.get_or_create(
                key=key,
                defaults={
                    "name": name,
                    "provider": provider,
                    "tags": tags,
                    "token_type": token_type,
                    "input_rate": Decimal(rate_in),
                    "output_rate": Decimal(rate_out),
                },
            )
        return models

    def _plan_limits(self, admin: User, members: list[User]) -> dict[User, dict]:
        """Each user's intended monthly limits (the usage plan is sized on them)."""
        plan = {admin: dict(ADMIN_LIMITS)}
        for i, member in enumerate(members):
            plan[member] = {
                INFERENCE: INFERENCE_LIMITS[i % len(INFERENCE_LIMITS)],
                EMBEDDING: EMBEDDING_LIMITS[(i * 5) % len(EMBEDDING_LIMITS)],
            }
        return plan

    def _never_allocated(self, users) -> set[tuple[int, str]]:
        """(user, type) pairs that never had a limit set."""
        done = set(
            AllocationChange.objects.filter(user__in=users)
            .values_list("user_id", "token_type")
            .distinct()
        )
        return {(u.pk, t) for u in users for t in (INFERENCE, EMBEDDING)} - done

    def _seed_purchase(self, org, limits, starts_on: dt.date) -> int:
        """Buy enough for the planned limits: the first purchase covers every user's
        minimum with headroom (1M per user and type, rounded up to lots); later
        runs top up only if more users now need limits than the pool can cover."""
        lot = settings.TOKEN_LOT
        todo = self._never_allocated(list(limits))
        needed = {
            t: sum(limits[u][t] for u in limits if (u.pk, t) in todo)
            for t in (INFERENCE, EMBEDDING)
        }
        if not org.purchases.exists():
            amount = math.ceil(len(limits) * 1_000_000 / lot) * lot
            buy = {t: max(amount, math.ceil(needed[t] / lot) * lot) for t in needed}
            comment = "Demo: annual enterprise subscription."
        else:
            pool, allocated = selectors.pools(org), selectors.allocated(org)
            short = {t: needed[t] - (pool[t] - allocated[t]) for t in needed}
            buy = {t: max(0, math.ceil(short[t] / lot) * lot) for t in needed}
            starts_on = period_of()
            comment = "Demo: top-up for new users."
        if not any(buy.values()):
            return 0
        purchase_record(
            actor=None,
            organization=org,
            payer_email=f"billing@{DEMO_DOMAIN}",
            inference_tokens=buy[INFERENCE],
            embedding_tokens=buy[EMBEDDING],
            starts_on=starts_on,
            purchased_on=starts_on,
            comment=comment,
        )
        return 1

    def _seed_allocations(self, admin: User, limits) -> int:
        todo = self._never_allocated(list(limits))
        count = 0
        for user, per_type in limits.items():
            for token_type, limit in per_type.items():
                if (user.pk, token_type) in todo:
                    allocation_set_limit(
                        actor=admin,
                        user=user,
                        token_type=token_type,
                        limit=limit,
                        note="Demo seed.",
                    )
                    count += 1
        return count

    # --- usage --------------------------------------------------------------------

    def _seed_key(self) -> ServiceKey:
        key = (
            ServiceKey.objects.filter(
                name=SEED_KEY_NAME, organization__isnull=True, revoked_at__isnull=True
            )
            .order_by("id")
            .first()
        )
        if key is None:
            # Only the seed uses this key (in-process); its secret is never needed.
            key, _secret = service_key_create(actor=None, name=SEED_KEY_NAME)
        return key

    def _seed_usage(self, users, limits, models, periods, per_month, now) -> dict:
        events = []
        for position, user in enumerate(users):
            near_limit = (position - 1) in NEAR_LIMIT  # position 0 is the admin
            for period in periods:
                events += _month_plan(
                    user,
                    limits[user],
                    period,
                    per_month,
                    near_limit=near_limit and period == periods[-1],
                )
        events = [e for e in events if e["occurred_at"] <= now]
        totals = {"recorded": 0, "duplicates": 0, "rejected": 0}
        if not events:
            return totals
        key = self._seed_key()
        for e in events:
            e["occurred_at"] = e["occurred_at"].isoformat()
        for start in range(0, len(events), MAX_BATCH):
            result = usage_record(key=key, events=events[start : start + MAX_BATCH])
            for name in totals:
                totals[name] += result.as_dict()[name]
        return totals


def _weighted_models(token_type: str) -> tuple[list[tuple], list[int]]:
    rows = [m for m in MODELS if m[4] == token_type]
    return rows, [m[7] for m in rows]


def _month_plan(user, limits, period, per_month, *, near_limit) -> list[dict]:
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
