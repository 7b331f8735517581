"""Alerts under concurrency (docs/forecasts.md, Alerts): many usage batches that
reach the same threshold at once write ONE alert and send ONE e-mail (the unique
key and INSERT … ON CONFLICT DO NOTHING; delivery after commit by the batch whose
insert wrote the row), and two ``send_alerts`` at once never send an alert twice
(FOR NO KEY UPDATE SKIP LOCKED). Real threads on PostgreSQL."""

import threading
from collections import Counter

from django.core import mail
from django.utils import timezone

from accounts.services import service_key_create
from tests.factories import (
    AdminFactory,
    AIModelFactory,
    OrganizationFactory,
    UserFactory,
    fund,
    give,
)
from tests.kit import race
from tests.tokens.test_concurrency import run_threads
from tokens.ledger import check_ledger
from tokens.models import Alert
from tokens.services import metering
from tokens.services.alerts import delivery

THREADS = 16


def _event(event_id: str, email: str, tokens: int) -> dict:
    return {
        "event_id": event_id,
        "user": email,
        "model": "gpt",
        "token_type": "inference",
        "prompt_tokens": tokens,
        "completion_tokens": 0,
        "occurred_at": timezone.now().isoformat(),
    }


@race
def test_16_batches_crossing_the_same_thresholds_at_once_fire_each_alert_once():
    org = OrganizationFactory()
    fund(org, inference=2_000_000, embedding=2_000_000)
    AdminFactory(organization=org, email="boss@acme.example")
    AIModelFactory(key="gpt")
    key, _secret = service_key_create(actor=None, name="gw")
    # The organization at 79.95% of its pool (1,520,000 + 79,000; its 50% alert
    # fires now), so that every batch below sees 80% reached; one shared user at
    # 79% of their limit.
    filler = UserFactory(organization=org, email="filler@acme.example")
    metering.usage_record(key=key, events=[_event("fill", filler.email, 1_520_000)])
    shared = UserFactory(organization=org, email="shared@acme.example")
    give(shared, 100_000)
    metering.usage_record(key=key, events=[_event("warm", shared.email, 79_000)])
    assert list(Alert.objects.values_list("kind", "threshold")) == [("org_usage", 50)]
    mail.outbox.clear()

    def batch(i):
        # Each thread: one batch with the shared user's 1,000 tokens (to 80%+,
        # serialized by their counter) and 1,000 of the filler's.
        return metering.usage_record(
            key=key,
            events=[
                _event(f"s{i}", shared.email, 1_000),
                _event(f"f{i}", filler.email, 1_000),
            ],
        ).as_dict()["recorded"]

    assert run_threads(THREADS, batch) == [2] * THREADS
    rows = Counter(
        Alert.objects.values_list("kind", "threshold", "user__email").order_by()
    )
    assert rows == {
        ("org_usage", 50, None): 1,
        ("org_usage", 80, None): 1,
        ("user_usage", 80, "shared@acme.example"): 1,
    }
    # One e-mail per alert written in the race: the organization's 80% to its
    # admin, the user's 80% to the user.
    assert sorted(tuple(m.to) for m in mail.outbox) == [
        ("boss@acme.example",),
        ("shared@acme.example",),
    ]
    assert not Alert.objects.filter(delivered_at__isnull=True).exists()
    assert check_ledger() == []


@race
def test_two_senders_at_once_deliver_each_undelivered_alert_once():
    org = OrganizationFactory()
    AdminFactory(organization=org, email="boss@acme.example")
    for threshold in range(1, 41):
        Alert.objects.create(
            organization=org,
            token_type="inference",
            month=timezone.now().date().replace(day=1),
            kind=Alert.Kind.ORG_USAGE,
            threshold=threshold,
        )
    mail.outbox.clear()
    finished = threading.Event()
    original = delivery._send_email

    def slow_send(alert):
        # The sender that claimed the first alert holds it (its row locked)
        # until the other sender has finished its whole run.
        if alert.threshold == 1:
            finished.wait(timeout=20)
        original(alert)

    def sender(_i):
        report = delivery.deliver()
        finished.set()
        return report

    delivery._send_email = slow_send
    try:
        reports = run_threads(2, sender)
    finally:
        delivery._send_email = original
    assert sum(r.delivered for r in reports) == 40
    # The other sender skipped the locked alert instead of waiting for it (or
    # sending it too).
    assert sorted(r.delivered for r in reports) == [1, 39]
    assert len(mail.outbox) == 40
    assert Alert.objects.filter(delivered_at__isnull=True).count() == 0
    assert set(Alert.objects.values_list("attempts", flat=True)) == {1}
