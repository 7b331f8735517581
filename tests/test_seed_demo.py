"""seed_demo: an idempotent demo built through the services; the ledger holds."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Organization, User
from asksage_admin.lib.periods import period_of
from tokens.ledger import check_ledger
from tokens.models import AIModel, Allocation, Purchase, UsageCounter, UsageEvent

pytestmark = pytest.mark.django_db
SMALL = ["--users", "3", "--months", "2", "--events-per-user", "10"]


@pytest.fixture(autouse=True)
def demo_mode(settings):
    settings.DEMO_MODE = True


def seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


# Mid-month: the two seeds must see the same days (across an edge the second
# one records the new month's first day).
@pytest.mark.time_machine(dt.datetime(2026, 3, 16, 15, 0, tzinfo=dt.UTC))
def test_seed_twice_records_the_same_events_and_the_ledger_holds():
    first = seed(*SMALL)
    events = UsageEvent.objects.count()
    assert events > 0
    assert f"Usage over 2 month(s): {events:,} events recorded, 0 already" in first
    second = seed(*SMALL)
    assert UsageEvent.objects.count() == events
    assert (
        f"Usage over 2 month(s): 0 events recorded, {events:,} already present, "
        "0 rejected." in second
    )
    assert "0 purchase(s) recorded; 0 limit(s) set." in second
    assert Organization.objects.count() == 1
    assert User.objects.filter(role="user").count() == 3
    assert Purchase.objects.count() == 1
    assert check_ledger() == []
    assert "admin:  admin@northwind.example / demo-password-2026" in second
    assert "member: ava.thompson@northwind.example / demo-password-2026" in second


def test_seed_builds_a_model_catalog_with_decimal_rates():
    seed("--users", "1", "--months", "1", "--events-per-user", "0")
    assert AIModel.objects.count() == 12
    gpt = AIModel.objects.get(key="gpt-4o")
    assert (gpt.input_rate, gpt.output_rate) == (Decimal("1.0"), Decimal("3.0"))
    assert "vision" in gpt.tags.split(",")
    assert set(
        AIModel.objects.filter(token_type="embedding").values_list("key", flat=True)
    ) == {"text-embedding-3-large", "text-embedding-3-small", "cohere-embed-v3"}
    # An admin's later change to a rate is kept by a re-run.
    AIModel.objects.filter(key="gpt-4o").update(input_rate=Decimal("2"))
    seed("--users", "1", "--months", "1", "--events-per-user", "0")
    assert AIModel.objects.get(key="gpt-4o").input_rate == Decimal("2")


def test_every_user_gets_limits_at_or_above_the_minimum_and_more_users_top_up():
    seed("--users", "2", "--events-per-user", "0")
    seed("--users", "20", "--events-per-user", "0")
    limits = Allocation.objects.values_list("limit", flat=True)
    assert len(limits) == 21 * 2
    assert min(limits) >= django_settings.MIN_USER_TOKENS
    assert Purchase.objects.count() == 2  # the first purchase, then a top-up
    assert check_ledger() == []


def test_demo_usage_stays_under_the_limits_with_one_or_two_near(monkeypatch):
    frozen = dt.datetime(2026, 3, 16, 15, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    seed("--users", "6", "--months", "2", "--events-per-user", "40")
    assert not UsageEvent.objects.filter(occurred_at__gt=frozen).exists()
    shares = {}
    for counter in UsageCounter.objects.filter(period=period_of(frozen)):
        limit = Allocation.objects.get(
            user_id=counter.user_id, token_type=counter.token_type
        ).limit
        shares[(counter.user_id, counter.token_type)] = counter.used / limit
    assert len(shares) == 7 * 2
    assert max(shares.values()) < 1
    assert 1 <= sum(share >= 0.8 for share in shares.values()) <= 2
    assert check_ledger() == []


# Mid-month: with one month of history seeded on the 1st at 00:00 no day of it
# has passed yet, so there would be no events to inspect.
@pytest.mark.time_machine(dt.datetime(2026, 3, 16, 15, 0, tzinfo=dt.UTC))
def test_events_are_realistic():
    seed("--users", "2", "--months", "1", "--events-per-user", "20")
    embedding = UsageEvent.objects.filter(token_type="embedding")
    assert embedding.exists()
    assert not embedding.exclude(completion_tokens=0).exists()
    assert set(embedding.values_list("model__token_type", flat=True)) == {"embedding"}
    inference = UsageEvent.objects.filter(token_type="inference")
    assert len(set(inference.values_list("model__key", flat=True))) >= 3
    assert not UsageEvent.objects.filter(occurred_at__gt=timezone.now()).exists()


@pytest.mark.time_machine(dt.datetime(2026, 3, 16, 15, 0, tzinfo=dt.UTC))
def test_the_printed_sign_in_address_follows_site_url(settings):
    """make run sets SITE_URL from HOST and PORT: the address printed is the one
    served (it used to say port 8000 whatever PORT was)."""
    settings.SITE_URL = "http://127.0.0.1:8123"
    out = seed(*SMALL)
    assert "Sign in at http://127.0.0.1:8123/accounts/login/ as:" in out
    assert ":8000" not in out


def test_make_run_passes_host_and_port_as_site_url():
    import pathlib

    makefile = (pathlib.Path(__file__).resolve().parent.parent / "Makefile").read_text()
    assert "SITE_URL=http://$(HOST):$(PORT)" in makefile
