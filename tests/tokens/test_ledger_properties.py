"""The ledger invariants (docs/architecture.md, Invariants and check_ledger) after every
step of a random mix of every ledger action."""

import contextlib

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from accounts.services import service_key_create
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory
from tokens.ledger import check_ledger
from tokens.models import Hold, UsageCounter
from tokens.services import (
    allocation_set_limit,
    metering,
    purchase_record,
    user_deactivate,
    user_reactivate,
)

TYPES = st.sampled_from(["inference", "embedding"])


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self):
        super().__init__()
        # Each run happens inside one transaction that is rolled back at teardown.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.events = 0
        self.requests = 0

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize()
    def setup(self):
        self.org = OrganizationFactory()
        self.users = [UserFactory(organization=self.org) for _ in range(3)]
        AIModelFactory(key="m-in", input_rate="0.5", output_rate="2")
        AIModelFactory(key="m-emb", token_type="embedding")
        self.key, _secret = service_key_create(actor=None, name="gw")

    @rule(lots=st.integers(1, 3), token_type=TYPES)
    def purchase(self, lots, token_type):
        purchase_record(
            actor=None,
            organization=self.org,
            payer_email="p@x.com",
            inference_tokens=2_000_000 * lots if token_type == "inference" else 0,
            embedding_tokens=2_000_000 * lots if token_type == "embedding" else 0,
            starts_on=timezone.now().date().replace(day=1),
        )

    @rule(who=st.integers(0, 2), token_type=TYPES, limit=st.integers(0, 3_000_000))
    def set_limit(self, who, token_type, limit):
        with contextlib.suppress(ValidationError):
            allocation_set_limit(
                actor=None,
                user=self.users[who],
                token_type=token_type,
                limit=limit,
                allow_below_minimum=True,
            )

    @rule(who=st.integers(0, 2))
    def toggle_paid(self, who):
        user = self.users[who]
        user.refresh_from_db()
        (user_deactivate if user.is_paid else user_reactivate)(actor=None, user=user)

    @rule(target=holds, who=st.integers(0, 2), tokens=st.integers(1, 2_000_000))
    def authorize(self, who, tokens):
        self.requests += 1
        try:
            result = metering.authorize(
                key=self.key,
                user_email=self.users[who].email,
                model_key="m-in",
                token_type="inference",
                tokens=tokens,
                request_id=f"r{self.requests}",
            )
        except metering.MeteringError:
            return None
        return str(result.hold.pk)

    @rule(
        hold=consumes(holds),
        prompt=st.integers(0, 50_000),
        completion=st.integers(0, 50_000),
    )
    def settle(self, hold, prompt, completion):
        if hold is None:
            return
        row = Hold.objects.select_related("user").get(pk=hold)
        self._usage(row.user.email, prompt, completion, hold_id=hold)

    @rule(who=st.integers(0, 2), prompt=st.integers(0, 500_000), embed=st.booleans())
    def usage_without_hold(self, who, prompt, embed):
        self._usage(
            self.users[who].email,
            prompt,
            0 if embed else prompt // 3,
            token_type="embedding" if embed else "inference",
        )

    @rule(hold=consumes(holds))
    def release(self, hold):
        if hold is not None:
            metering.hold_release(key=self.key, hold_id=hold)

    @rule(hold=consumes(holds))
    def expire(self, hold):
        if hold is not None:
            Hold.objects.filter(pk=hold).update(expires_at=timezone.now())
            metering.holds_expire()

    def _usage(self, email, prompt, completion, token_type="inference", hold_id=None):
        self.events += 1
        event = {
            "event_id": f"e{self.events}",
            "user": email,
            "model": "m-emb" if token_type == "embedding" else "m-in",
            "token_type": token_type,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "occurred_at": timezone.now().isoformat(),
        }
        if hold_id:
            event["hold_id"] = hold_id
        result = metering.usage_record(key=self.key, events=[event, dict(event)])
        assert [r["status"] for r in result.results] == ["recorded", "duplicate"]

    @invariant()
    def ledger_holds(self):
        if not hasattr(self, "org"):
            return
        assert check_ledger() == []
        for counter in UsageCounter.objects.all():
            assert counter.used >= 0
            assert counter.held >= 0


@pytest.mark.django_db
def test_ledger_invariants_hold_after_every_step():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
