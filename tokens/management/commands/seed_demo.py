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
from asksage_admin.lib.periods import period_of, previous_period
from tokens import selectors
from tokens.management.demo import (
    ADMIN_LIMITS,
    DEMO_DOMAIN,
    DEMO_ORG,
    DEMO_PASSWORD,
    EMBEDDING,
    EMBEDDING_LIMITS,
    INFERENCE,
    INFERENCE_LIMITS,
    MEMBERS,
    MODELS,
    NEAR_LIMIT,
    SEED_KEY_NAME,
    month_plan,
)
from tokens.models import (
    AIModel,
    AllocationChange,
    AutoApprovalRule,
    TokenRequest,
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
                events += month_plan(
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
