"""The distribution policy engine (docs/product.md, Token Distribution): presets,
validation, overrides, auto-increase inside usage recording, reclamation, runs, the
schedule and the run_distribution command. Every test names the rule it proves."""

import datetime as dt
import io
import itertools
from decimal import Decimal
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from accounts.models import AuditEvent, Organization
from asksage_admin.lib.periods import period_of, previous_period
from tests.factories import (
    AdminFactory,
    AIModelFactory,
    OrganizationFactory,
    UserFactory,
    fund,
    give,
)
from tests.kit import limit
from tokens.ledger import check_ledger
from tokens.models import (
    Allocation,
    AllocationChange,
    DistributionPolicy,
    DistributionRun,
    UserOverride,
)
from tokens.services import distribution as engine
from tokens.services import (
    enterprise_request_activate,
    enterprise_request_submit,
    metering,
    user_ban,
    user_deactivate,
)
from tokens.services.distribution import auto_increase
from tokens.services.pool import kernel as pool_kernel

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
Source = AllocationChange.Source
Preset = DistributionPolicy.Preset
INF, EMB = "inference", "embedding"
_ids = itertools.count()


# --- helpers --------------------------------------------------------------------------


@pytest.fixture
def acme(db):
    """An active organization with 10M tokens of each type."""
    org = OrganizationFactory(
        name="Acme", activated_at=timezone.now() - dt.timedelta(days=400)
    )
    fund(org)
    return org


@pytest.fixture
def boss(acme):
    """Acme's admin. Unpaid (uses no tokens), so runs leave them out of the sums."""
    return AdminFactory(organization=acme, email="boss@acme.example", is_paid=False)


@pytest.fixture
def gpt(db):
    return AIModelFactory(key="gpt")


@pytest.fixture
def key(service_key, gpt):
    return service_key[0]


def person(org, email: str, inference: int = 0, embedding: int = 0, **kwargs):
    user = UserFactory(organization=org, email=email, **kwargs)
    if inference:
        give(user, inference, INF)
    if embedding:
        give(user, embedding, EMB)
    return user


def use(key, user, tokens: int, token_type: str = INF, when=None) -> None:
    """Report ``tokens`` of usage through the gateway's usage service."""
    result = metering.usage_record(
        key=key,
        events=[
            {
                "event_id": f"ev-{next(_ids)}",
                "user": user.email,
                "model": "gpt",
                "token_type": token_type,
                "prompt_tokens": tokens,
                "completion_tokens": 0,
                "occurred_at": (when or timezone.now()).isoformat(),
            }
        ],
    )
    assert result.count("recorded") == 1, result.results


def set_policy(org, **changes) -> DistributionPolicy:
    engine.policy_ensure(organization=org)
    return engine.policy_update(actor=None, organization=org, changes=changes)


def events(action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def auto_changes(user=None):
    changes = AllocationChange.objects.filter(source=Source.AUTO_INCREASE)
    return list(changes.filter(user=user) if user else changes)


def policy_state(org) -> dict:
    return DistributionPolicy.objects.filter(organization=org).values().get()


# --- presets --------------------------------------------------------------------------

# The presets' values as docs/product.md states them (Token Distribution, presets).
DOCUMENTED_PRESETS = {
    "conservative": {
        "floor_inference": 200_000,
        "floor_embedding": 200_000,
        "ceiling": 1_000_000,
        "triggers": [90],
        "cooldown_minutes": 240,
        "bump_mode": "percent_current",
        "bump_value": Decimal(25),
        "tier_bumps": [],
        "bump_cap_at_current": False,
        "reclamation_enabled": False,
        "auto_increase_enabled": True,
    },
    "standard": {
        "floor_inference": 500_000,
        "floor_embedding": 500_000,
        "ceiling": 5_000_000,
        "triggers": [80, 95],
        "cooldown_minutes": 60,
        "bump_mode": "tiers",
        "bump_value": Decimal(25),
        "tier_bumps": [25, 50],
        "bump_cap_at_current": False,
        "reclamation_enabled": False,
        "auto_increase_enabled": True,
    },
    "aggressive": {
        "floor_inference": 1_000_000,
        "floor_embedding": 1_000_000,
        "ceiling": None,
        "triggers": [75],
        "cooldown_minutes": 30,
        "bump_mode": "flat",
        "bump_value": Decimal(500_000),
        "tier_bumps": [],
        "bump_cap_at_current": False,
        "reclamation_enabled": False,
        "auto_increase_enabled": True,
    },
    "dynamic": {
        "floor_inference": 500_000,
        "floor_embedding": 500_000,
        "ceiling": None,
        "triggers": [75, 90, 99.9],
        "cooldown_minutes": 60,
        "bump_mode": "percent_pool",
        "bump_value": Decimal(25),
        "tier_bumps": [],
        "bump_cap_at_current": True,
        "reclamation_enabled": True,
        "auto_increase_enabled": True,
    },
}


def test_policy_ensure_creates_the_standard_preset_once(acme):
    policy = engine.policy_ensure(organization=acme)
    assert policy.preset == Preset.STANDARD
    for field, value in DOCUMENTED_PRESETS["standard"].items():
        assert getattr(policy, field) == value, field
    assert engine.policy_ensure(organization=acme).pk == policy.pk
    assert DistributionPolicy.objects.filter(organization=acme).count() == 1


def test_activation_creates_the_standard_policy(sales_user):
    team = [
        UserFactory(organization=None, email=f"p{i}@initech.example") for i in range(2)
    ]
    request = enterprise_request_submit(
        requester=team[0],
        organization_name="Initech",
        billing_address="1 Initech Way",
        user_emails=[u.email for u in team],
        admin_emails=[team[0].email],
        inference_tokens=2_000_000,
        embedding_tokens=2_000_000,
    )
    org = enterprise_request_activate(actor=sales_user, request=request)
    policy = DistributionPolicy.objects.get(organization=org)
    assert policy.preset == Preset.STANDARD
    assert policy.triggers == [80, 95]


@pytest.mark.parametrize("preset", list(DOCUMENTED_PRESETS))
def test_each_preset_fills_the_numbers_of_the_spec(acme, boss, preset):
    engine.policy_ensure(organization=acme)
    if preset == "standard":
        engine.policy_apply_preset(actor=boss, organization=acme, preset="aggressive")
    policy = engine.policy_apply_preset(actor=boss, organization=acme, preset=preset)
    policy.refresh_from_db()
    assert policy.preset == preset
    for field, value in DOCUMENTED_PRESETS[preset].items():
        assert getattr(policy, field) == value, field
    assert set(engine.PRESET_FIELDS) == set(DOCUMENTED_PRESETS[preset])
    assert engine.PRESETS["custom"] == {}


def test_applying_a_preset_is_audited_with_the_changed_fields(acme, boss):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="conservative")
    (event,) = events(Action.POLICY_CHANGED)
    assert event.actor == boss
    assert event.before["preset"] == "standard"
    assert event.after["preset"] == "conservative"
    assert event.before["ceiling"] == 5_000_000
    assert event.after["ceiling"] == 1_000_000
    assert "lookback_days" not in event.after
    # The same preset again changes nothing and records nothing.
    engine.policy_apply_preset(actor=boss, organization=acme, preset="conservative")
    assert len(events(Action.POLICY_CHANGED)) == 1


def test_unknown_preset_is_refused(acme, boss):
    with pytest.raises(ValidationError) as error:
        engine.policy_apply_preset(actor=boss, organization=acme, preset="turbo")
    assert "Choose one of the presets" in error.value.message_dict["preset"][0]


def test_custom_preset_keeps_the_current_values(acme, boss):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="dynamic")
    policy = engine.policy_apply_preset(actor=boss, organization=acme, preset="custom")
    assert policy.preset == Preset.CUSTOM
    for field, value in DOCUMENTED_PRESETS["dynamic"].items():
        assert getattr(policy, field) == value, field
    assert events(Action.POLICY_CHANGED)[-1].after == {"preset": "custom"}


def test_editing_a_preset_field_switches_the_badge_to_custom(acme, boss):
    engine.policy_ensure(organization=acme)
    policy = engine.policy_update(
        actor=boss, organization=acme, changes={"cooldown_minutes": 90}
    )
    assert (policy.preset, policy.cooldown_minutes) == (Preset.CUSTOM, 90)
    event = events(Action.POLICY_CHANGED)[-1]
    assert event.before == {"cooldown_minutes": 60, "preset": "standard"}
    assert event.after == {"cooldown_minutes": 90, "preset": "custom"}


def test_editing_a_setting_outside_the_presets_keeps_the_preset(acme, boss):
    engine.policy_ensure(organization=acme)
    policy = engine.policy_update(
        actor=boss,
        organization=acme,
        changes={"lookback_days": 45, "schedule": "daily", "schedule_hour": 5},
    )
    assert policy.preset == Preset.STANDARD
    event = events(Action.POLICY_CHANGED)[-1]
    assert event.before == {"lookback_days": 30, "schedule": "off", "schedule_hour": 2}
    assert event.after == {"lookback_days": 45, "schedule": "daily", "schedule_hour": 5}


def test_saving_the_same_values_changes_nothing_and_records_nothing(acme, boss):
    engine.policy_ensure(organization=acme)
    policy = engine.policy_update(
        actor=boss,
        organization=acme,
        changes={
            "triggers": [80.0, Decimal("95")],
            "tier_bumps": [25, 50],
            "bump_value": Decimal("25.0"),
            "ceiling": 5_000_000,
        },
    )
    assert policy.preset == Preset.STANDARD
    assert events(Action.POLICY_CHANGED) == []


def test_decimal_triggers_are_kept(acme, boss):
    engine.policy_ensure(organization=acme)
    policy = engine.policy_update(
        actor=boss,
        organization=acme,
        changes={"triggers": [Decimal("77.5"), 99.9], "tier_bumps": [10, 20.5]},
    )
    policy.refresh_from_db()
    assert policy.triggers == [77.5, 99.9]
    assert policy.tier_bumps == [10, 20.5]


CUSTOM_ERRORS = [
    ({"floor_inference": 100_000}, "floor_inference", "at least the platform minimum"),
    ({"floor_embedding": "500000"}, "floor_embedding", "whole number of tokens"),
    ({"floor_inference": 500_000.0}, "floor_inference", "whole number of tokens"),
    ({"ceiling": 400_000}, "ceiling", "must be at least the floors"),
    ({"ceiling": -1}, "ceiling", "whole number of tokens, or empty for unlimited"),
    ({"ceiling": "lots"}, "ceiling", "whole number of tokens, or empty for unlimited"),
    (
        {"floor_inference": 6_000_000},
        "floor_inference",
        "The ceiling (5,000,000) must be at least the floors",
    ),
    ({"triggers": []}, "triggers", "Enter at least one trigger."),
    ({"triggers": [49.9]}, "triggers", "from 50 to 99.9"),
    ({"triggers": [100]}, "triggers", "from 50 to 99.9"),
    ({"triggers": [80.25]}, "triggers", "at most one decimal"),
    ({"triggers": [95, 80]}, "triggers", "ascending order, without repeats"),
    ({"triggers": [80, 80]}, "triggers", "ascending order, without repeats"),
    ({"triggers": "80"}, "triggers", "Enter a list of percentages."),
    ({"triggers": [True]}, "triggers", "Enter a list of percentages."),
    ({"tier_bumps": [25]}, "tier_bumps", "one bump per trigger"),
    ({"tier_bumps": [0, 50]}, "tier_bumps", "more than 0"),
    ({"bump_value": 0}, "bump_value", "greater than 0"),
    ({"bump_value": -5}, "bump_value", "greater than 0"),
    ({"bump_value": "abc"}, "bump_value", "Enter a number greater than 0."),
    (
        {"bump_mode": "flat", "bump_value": Decimal("1000.5")},
        "bump_value",
        "A flat bump is a whole number of tokens.",
    ),
    (
        {"bump_mode": "percent_pool", "bump_value": 150},
        "bump_value",
        "at most 100",
    ),
    (
        {"bump_mode": "percent_current", "bump_value": Decimal("12.25")},
        "bump_value",
        "at most one decimal",
    ),
    ({"bump_mode": "double"}, "bump_mode", "Choose a bump mode"),
    ({"cooldown_minutes": 0}, "cooldown_minutes", "at least 1"),
    ({"cooldown_minutes": 1.5}, "cooldown_minutes", "whole number of minutes"),
    ({"lookback_days": 0}, "lookback_days", "from 1 to 365"),
    ({"lookback_days": 366}, "lookback_days", "from 1 to 365"),
    ({"headroom_percent": -1}, "headroom_percent", "from 0 to 500"),
    ({"headroom_percent": 501}, "headroom_percent", "from 0 to 500"),
    ({"schedule": "hourly"}, "schedule", "Choose off, daily, weekly or monthly."),
    ({"schedule_hour": 24}, "schedule_hour", "from 0 to 23"),
    ({"schedule_weekday": 7}, "schedule_weekday", "0 (Monday) to 6 (Sunday)"),
    ({"schedule_day": 29}, "schedule_day", "from 1 to 28"),
    ({"schedule_day": 0}, "schedule_day", "from 1 to 28"),
    ({"auto_increase_enabled": "yes"}, "auto_increase_enabled", "Choose yes or no."),
    ({"reclamation_enabled": 1}, "reclamation_enabled", "Choose yes or no."),
    ({"colour": "blue"}, "colour", "not a setting of the distribution policy"),
]


@pytest.mark.parametrize(("changes", "field", "message"), CUSTOM_ERRORS)
def test_policy_update_refuses_bad_input_with_a_message_and_changes_nothing(
    acme, boss, changes, field, message
):
    engine.policy_ensure(organization=acme)
    before = policy_state(acme)
    with pytest.raises(ValidationError) as error:
        engine.policy_update(actor=boss, organization=acme, changes=changes)
    assert message in error.value.message_dict[field][0]
    assert policy_state(acme) == before
    assert events(Action.POLICY_CHANGED) == []


def test_switching_to_tiers_needs_one_bump_per_trigger(acme, boss):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="dynamic")
    with pytest.raises(ValidationError) as error:
        engine.policy_update(
            actor=boss, organization=acme, changes={"bump_mode": "tiers"}
        )
    assert error.value.message_dict["tier_bumps"] == [
        "Tiers need one bump per trigger: 3 triggers, 0 bumps."
    ]


def test_policy_update_reports_every_error_at_once(acme, boss):
    engine.policy_ensure(organization=acme)
    with pytest.raises(ValidationError) as error:
        engine.policy_update(
            actor=boss,
            organization=acme,
            changes={"cooldown_minutes": 0, "lookback_days": 0, "triggers": [10]},
        )
    assert set(error.value.message_dict) == {
        "cooldown_minutes",
        "lookback_days",
        "triggers",
    }


def test_policy_is_changed_only_by_its_organization(acme, other_admin_user):
    engine.policy_ensure(organization=acme)
    plain = person(acme, "plain@acme.example")
    for actor in (other_admin_user, plain):
        with pytest.raises(PermissionDenied):
            engine.policy_update(
                actor=actor, organization=acme, changes={"cooldown_minutes": 5}
            )
        with pytest.raises(PermissionDenied):
            engine.policy_apply_preset(actor=actor, organization=acme, preset="dynamic")
        with pytest.raises(PermissionDenied):
            engine.distribution_run(actor=actor, organization=acme)
    assert policy_state(acme)["cooldown_minutes"] == 60


# --- overrides ------------------------------------------------------------------------


def override(acme, boss, user, **kwargs):
    values = {
        "floor": None,
        "ceiling": None,
        "exempt_auto_increase": False,
        "exempt_reclamation": False,
        "note": "",
    } | kwargs
    return engine.override_set(actor=boss, organization=acme, user=user, **values)


def test_override_is_created_updated_and_audited(acme, boss):
    ann = person(acme, "ann@acme.example")
    created = override(acme, boss, ann, floor=300_000, note="Research lead")
    assert (created.floor, created.ceiling, created.note) == (
        300_000,
        None,
        "Research lead",
    )
    event = events(Action.OVERRIDE_SET)[-1]
    assert event.before is None
    assert event.after["floor"] == 300_000
    assert event.target_id == str(ann.pk)

    updated = override(
        acme, boss, ann, floor=300_000, ceiling=900_000, note="Research lead"
    )
    assert updated.pk == created.pk and updated.ceiling == 900_000
    event = events(Action.OVERRIDE_SET)[-1]
    assert (event.before, event.after) == ({"ceiling": None}, {"ceiling": 900_000})

    override(acme, boss, ann, floor=300_000, ceiling=900_000, note="Research lead")
    assert len(events(Action.OVERRIDE_SET)) == 2, "no change, no event"


def test_override_remove_is_audited_and_refused_when_there_is_none(acme, boss):
    ann = person(acme, "ann@acme.example")
    override(acme, boss, ann, exempt_reclamation=True)
    engine.override_remove(actor=boss, organization=acme, user=ann)
    assert not UserOverride.objects.filter(user=ann).exists()
    (event,) = events(Action.OVERRIDE_REMOVED)
    assert event.before["exempt_reclamation"] is True
    with pytest.raises(ValidationError) as error:
        engine.override_remove(actor=boss, organization=acme, user=ann)
    assert error.value.messages == ["This user has no override."]


OVERRIDE_ERRORS = [
    ({"floor": -1}, "floor", "from the platform minimum of 200,000"),
    ({"floor": 100}, "floor", "from the platform minimum of 200,000"),
    ({"floor": 199_999}, "floor", "from the platform minimum of 200,000"),
    ({"floor": 2**63}, "floor", "to 99,999,999,999,999"),
    ({"floor": "x"}, "floor", "whole number of tokens"),
    ({"ceiling": -5}, "ceiling", "from 0 to 99,999,999,999,999"),
    ({"ceiling": 2**63}, "ceiling", "from 0 to 99,999,999,999,999"),
    ({"floor": 500_000, "ceiling": 400_000}, "ceiling", "at least the floor"),
    ({"exempt_auto_increase": "yes"}, "exempt_auto_increase", "Choose yes or no."),
    ({"floor": 200_000, "note": "x" * 501}, "note", "at most 500 characters"),
    ({}, "__all__", "An override needs a floor, a ceiling or an exemption"),
]


@pytest.mark.parametrize(("values", "field", "message"), OVERRIDE_ERRORS)
def test_override_set_refuses_bad_input_with_a_message(
    acme, boss, values, field, message
):
    ann = person(acme, "ann@acme.example")
    with pytest.raises(ValidationError) as error:
        override(acme, boss, ann, **values)
    assert message in error.value.message_dict[field][0]
    assert not UserOverride.objects.exists()
    assert events(Action.OVERRIDE_SET) == []


def test_override_for_a_user_of_another_organization_is_refused(acme, boss):
    stranger = UserFactory(organization=OrganizationFactory(), email="x@globex.example")
    with pytest.raises(ValidationError) as error:
        override(acme, boss, stranger, floor=300_000)
    assert error.value.message_dict["__all__"] == [
        "This user is not in this organization."
    ]
    assert not UserOverride.objects.exists()


# --- auto-increase --------------------------------------------------------------------


@pytest.fixture
def simple(acme):
    """Trigger 90%, +25% of the current limit, no ceiling."""
    return set_policy(
        acme,
        triggers=[90],
        bump_mode="percent_current",
        bump_value=25,
        ceiling=None,
        cooldown_minutes=60,
    )


def test_auto_increase_fires_at_the_trigger_and_not_below(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 899_999)
    assert limit(ann) == 1_000_000 and auto_changes() == []
    use(key, ann, 1)  # exactly 90%
    assert limit(ann) == 1_250_000
    (change,) = auto_changes(ann)
    assert (change.delta, change.new_limit, change.actor) == (250_000, 1_250_000, None)
    (event,) = events(Action.AUTO_INCREASE)
    assert change.audit_event == event
    assert event.before == {"inference_limit": 1_000_000}
    assert event.after == {"inference_limit": 1_250_000}
    assert "90% trigger" in event.message
    assert "25% of the current limit" in event.message
    allocation = Allocation.objects.get(user=ann, token_type=INF)
    assert allocation.last_auto_increase_tier == Decimal("90.0")
    assert allocation.last_auto_increase_at is not None
    assert check_ledger() == []


def test_auto_increase_waits_for_the_cooldown(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 900_000)
    assert limit(ann) == 1_250_000
    use(key, ann, 300_000)  # 1.2M of 1.25M = 96%: same tier, within the cooldown
    assert limit(ann) == 1_250_000
    Allocation.objects.filter(user=ann, token_type=INF).update(
        last_auto_increase_at=F("last_auto_increase_at") - dt.timedelta(minutes=61)
    )
    use(key, ann, 1)
    assert limit(ann) == 1_562_500
    assert len(auto_changes(ann)) == 2
    assert check_ledger() == []


def test_auto_increase_only_counts_this_months_usage(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    last_month = timezone.now().replace(day=1) - dt.timedelta(days=3)
    use(key, ann, 950_000, when=last_month)
    assert limit(ann) == 1_000_000


def test_auto_increase_never_passes_the_policy_ceiling(acme, key, simple):
    set_policy(acme, ceiling=1_100_000)
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 900_000)
    assert limit(ann) == 1_100_000
    assert (
        "limited by the ceiling of 1,100,000" in events(Action.AUTO_INCREASE)[0].message
    )
    Allocation.objects.filter(user=ann).update(last_auto_increase_at=None)
    use(key, ann, 200_000)  # at the ceiling: nothing more
    assert limit(ann) == 1_100_000 and len(auto_changes()) == 1


def test_the_override_ceiling_comes_before_the_policy_ceiling(acme, boss, key, simple):
    set_policy(acme, ceiling=5_000_000)
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    override(acme, boss, ann, ceiling=1_050_000)
    use(key, ann, 900_000)
    assert limit(ann) == 1_050_000


def test_a_user_exempt_from_auto_increase_is_not_raised(acme, boss, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    override(acme, boss, ann, exempt_auto_increase=True)
    use(key, ann, 999_000)
    assert limit(ann) == 1_000_000 and auto_changes() == []


def test_unpaid_and_banned_users_are_not_raised(acme, boss, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    bob = person(acme, "bob@acme.example", inference=1_000_000)
    user_deactivate(actor=boss, user=ann)  # limit → 1,000
    user_ban(actor=boss, user=bob)
    use(key, ann, 990)
    use(key, bob, 990_000)
    assert (limit(ann), limit(bob)) == (1_000, 1_000_000)
    assert auto_changes() == []


def test_no_auto_increase_when_it_is_switched_off(acme, key, simple):
    set_policy(acme, auto_increase_enabled=False)
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 990_000)
    assert limit(ann) == 1_000_000


def test_no_auto_increase_without_a_policy(acme, key):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 990_000)
    assert limit(ann) == 1_000_000


def test_a_short_pool_gives_a_partial_bump(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    person(acme, "big@acme.example", inference=8_900_000)  # 100,000 unallocated
    use(key, ann, 900_000)
    assert limit(ann) == 1_100_000
    (event,) = events(Action.AUTO_INCREASE)
    assert "limited by the unallocated pool" in event.message
    assert check_ledger() == []


def test_an_empty_pool_gives_no_bump_and_takes_no_lock(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    person(acme, "big@acme.example", inference=9_000_000)  # nothing unallocated
    with mock.patch.object(
        auto_increase, "lock_organizations", wraps=auto_increase.lock_organizations
    ) as lock:
        use(key, ann, 950_000)
    assert limit(ann) == 1_000_000 and auto_changes() == []
    lock.assert_not_called()
    assert (
        Allocation.objects.get(user=ann, token_type=INF).last_auto_increase_at is None
    )


def test_usage_below_the_trigger_costs_one_query(
    acme, key, simple, django_assert_num_queries
):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 500_000)
    with django_assert_num_queries(1):
        assert (
            engine.auto_increase_for_batch(
                [(ann.pk, INF, period_of(timezone.now()))],
                organizations={ann.organization_id},
            )
            == 0
        )
    with django_assert_num_queries(0):
        last = previous_period(period_of(timezone.now()))
        assert (
            engine.auto_increase_for_batch(
                [(ann.pk, INF, last)], organizations={ann.organization_id}
            )
            == 0
        )


def test_flat_bump_adds_whole_tokens(acme, boss, key):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="aggressive")
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 749_999)
    assert limit(ann) == 1_000_000
    use(key, ann, 1)
    assert limit(ann) == 1_500_000
    assert "a flat 500,000 tokens" in events(Action.AUTO_INCREASE)[0].message


def test_percent_of_pool_bump_is_capped_at_the_current_limit(acme, boss, key):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="dynamic")
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 750_000)  # 25% of the 9,000,000 unallocated = 2,250,000 > limit
    assert limit(ann) == 2_000_000
    assert "remaining unallocated pool" in events(Action.AUTO_INCREASE)[0].message


def test_percent_of_pool_bump_without_the_cap(acme, boss, key):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="dynamic")
    set_policy(acme, bump_cap_at_current=False)
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 750_000)
    assert limit(ann) == 3_250_000  # + ceil(9,000,000 × 25%)


def test_dynamic_tiers_fire_again_within_the_cooldown_only_at_a_higher_tier(
    acme, boss, key
):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="dynamic")
    person(acme, "big@acme.example", inference=7_000_000)  # 2,000,000 unallocated
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 750_000)  # 75%: + 25% of 2,000,000 = 500,000
    assert limit(ann) == 1_500_000
    use(key, ann, 400_000)  # 1,150,000 of 1.5M = 76.7%: tier 75 again, cooling
    assert limit(ann) == 1_500_000
    use(key, ann, 200_000)  # 1,350,000 = 90%: a higher tier fires
    assert limit(ann) == 1_875_000  # + 25% of 1,500,000
    use(key, ann, 520_000)  # 1,870,000 of 1,875,000 = 99.7%: still tier 90
    assert limit(ann) == 1_875_000
    use(key, ann, 3_125)  # 1,873,125 = 99.9%
    assert limit(ann) == 2_156_250  # + 25% of 1,125,000
    tiers = [
        e.message.split(" trigger")[0].rsplit(" ", 1)[-1]
        for e in events(Action.AUTO_INCREASE)
    ]
    assert tiers == ["75%", "90%", "99.9%"]
    assert check_ledger() == []


def test_standard_tiers_bump_25_then_50_percent_of_the_current_limit(acme, key):
    engine.policy_ensure(organization=acme)  # Standard
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 800_000)  # 80%: +25%
    assert limit(ann) == 1_250_000
    use(key, ann, 200_000)  # 1,000,000 of 1,250,000 = 80%: same tier, cooling
    assert limit(ann) == 1_250_000
    use(key, ann, 187_500)  # 1,187,500 = 95%: +50%
    assert limit(ann) == 1_875_000
    allocation = Allocation.objects.get(user=ann, token_type=INF)
    assert allocation.last_auto_increase_tier == Decimal("95.0")
    assert check_ledger() == []


def test_standard_jump_straight_to_95_uses_the_higher_tier(acme, key):
    engine.policy_ensure(organization=acme)
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    use(key, ann, 960_000)
    assert limit(ann) == 1_500_000
    assert len(auto_changes(ann)) == 1


def test_embedding_is_increased_on_its_own_counter(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000, embedding=400_000)
    use(key, ann, 360_000, token_type=EMB)
    assert (limit(ann, INF), limit(ann, EMB)) == (1_000_000, 500_000)


def test_one_batch_raises_several_users_of_several_organizations(acme, key, simple):
    globex = OrganizationFactory(name="Globex")
    fund(globex)
    set_policy(globex, triggers=[90], bump_mode="flat", bump_value=100_000)
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    bob = person(acme, "bob@acme.example", inference=1_000_000)
    gus = person(globex, "gus@globex.example", inference=1_000_000)
    now = timezone.now().isoformat()
    result = metering.usage_record(
        key=key,
        events=[
            {
                "event_id": f"multi-{u.pk}",
                "user": u.email,
                "model": "gpt",
                "token_type": INF,
                "prompt_tokens": 950_000,
                "occurred_at": now,
            }
            for u in (ann, bob, gus)
        ],
    )
    assert result.count("recorded") == 3
    assert (limit(ann), limit(bob), limit(gus)) == (1_250_000, 1_250_000, 1_100_000)
    assert check_ledger() == []


# --- reclamation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "headroom", "floor", "expected"),
    [
        (1_000_000, 25, 500_000, 1_250_000),
        (400_001, 25, 200_000, 501_000),  # 500,001.25 → rounded up to 1,000
        (1_000_001, 0, 200_000, 1_001_000),
        (100_000, 25, 500_000, 500_000),  # the floor wins
        (0, 25, 200_000, 200_000),
        (1_000_000, 500, 200_000, 6_000_000),
    ],
)
def test_reclaimed_limit_is_peak_times_headroom_rounded_up_to_1000_above_the_floor(
    peak, headroom, floor, expected
):
    assert engine.reclaimed_limit(peak, headroom, floor) == expected


@pytest.fixture
def reclaiming(acme, boss):
    engine.policy_ensure(organization=acme)
    engine.policy_apply_preset(actor=boss, organization=acme, preset="dynamic")
    return set_policy(acme, lookback_days=60, auto_increase_enabled=False)


def last_month() -> dt.datetime:
    return timezone.now().replace(day=1, hour=0, minute=0) - dt.timedelta(days=2)


def test_reclamation_lowers_a_limit_to_peak_usage_plus_headroom(
    acme, boss, key, reclaiming
):
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=500_000)
    use(key, ann, 1_500_000, when=last_month())
    use(key, ann, 700_000)  # this month: lower than the peak
    plan = engine.distribution_plan(organization=acme)
    (change,) = plan.changes
    assert (change.current, change.usage, change.new_limit, change.delta) == (
        3_000_000,
        1_500_000,
        1_875_000,
        -1_125_000,
    )
    assert change.reason == "reclamation"
    assert plan.totals[INF]["reclaimed"] == 1_125_000
    engine.distribution_run(actor=boss, organization=acme)
    assert limit(ann) == 1_875_000
    assert AllocationChange.objects.filter(source=Source.RECLAMATION).count() == 1
    assert check_ledger() == []


def test_reclamation_ignores_months_outside_the_lookback(acme, key, reclaiming):
    set_policy(acme, lookback_days=20)
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=500_000)
    use(key, ann, 2_000_000, when=timezone.now() - dt.timedelta(days=100))
    (change,) = engine.distribution_plan(organization=acme).changes
    assert (change.usage, change.new_limit) == (0, 500_000)


def test_reclamation_respects_the_policy_floor(acme, key, reclaiming):
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=500_000)
    use(key, ann, 100_000)
    (change,) = engine.distribution_plan(organization=acme).changes
    assert change.new_limit == 500_000


def test_reclamation_respects_the_override_floor(acme, boss, key, reclaiming):
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=900_000)
    override(acme, boss, ann, floor=800_000)
    use(key, ann, 100_000)
    changes = engine.distribution_plan(organization=acme).changes
    assert [(c.token_type, c.new_limit) for c in changes] == [
        (INF, 800_000),
        (EMB, 800_000),
    ]


def test_reclamation_never_goes_below_the_platform_minimum(acme, boss, reclaiming):
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=200_000)
    # Saved before overrides below the minimum were refused: the engine still
    # never reclaims below the platform minimum.
    UserOverride.objects.create(organization=acme, user=ann, floor=50_000)
    (change,) = engine.distribution_plan(organization=acme).changes
    assert change.new_limit == 200_000
    engine.distribution_run(actor=boss, organization=acme)
    assert check_ledger() == []


def test_users_exempt_from_reclamation_are_untouched(acme, boss, key, reclaiming):
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=500_000)
    override(acme, boss, ann, exempt_reclamation=True)
    engine.distribution_run(actor=boss, organization=acme)
    assert limit(ann) == 3_000_000


def test_reclamation_never_raises_a_limit(acme, boss, key, reclaiming):
    ann = person(acme, "ann@acme.example", inference=600_000, embedding=500_000)
    use(key, ann, 590_000)  # peak × 1.25 = 737,500 > 600,000
    assert engine.distribution_plan(organization=acme).changes == ()


def test_reclamation_skips_unpaid_and_banned_users(acme, boss, reclaiming):
    ann = person(acme, "ann@acme.example", inference=3_000_000, embedding=500_000)
    bob = person(acme, "bob@acme.example", inference=3_000_000, embedding=500_000)
    user_ban(actor=boss, user=bob)
    ann.is_paid = False
    ann.save(update_fields=["is_paid"])
    assert engine.distribution_plan(organization=acme).changes == ()


def test_no_reclamation_when_it_is_off(acme, boss):
    engine.policy_ensure(organization=acme)  # Standard: reclamation off
    person(acme, "ann@acme.example", inference=3_000_000, embedding=500_000)
    assert engine.distribution_plan(organization=acme).changes == ()


def test_reclaimed_tokens_fund_the_floors_in_the_same_run(acme, boss, reclaiming):
    # Pool 10M: ann holds 9.7M and uses nothing; bob is 200,000 under the floor.
    ann = person(acme, "ann@acme.example", inference=9_700_000, embedding=500_000)
    bob = person(acme, "bob@acme.example", inference=300_000, embedding=500_000)
    plan = engine.distribution_plan(organization=acme)
    assert [(c.user_id, c.reason, c.delta) for c in plan.changes] == [
        (ann.pk, "reclamation", -9_200_000),
        (bob.pk, "floor", 200_000),
    ]
    engine.distribution_run(actor=boss, organization=acme)
    assert (limit(ann), limit(bob)) == (500_000, 500_000)
    assert check_ledger() == []


# --- runs -----------------------------------------------------------------------------


def run_changes(run) -> list[tuple]:
    return [
        (c.user_id, c.token_type, c.delta, c.new_limit, c.source)
        for c in AllocationChange.objects.filter(distribution_run=run).order_by("id")
    ]


def plan_changes(plan) -> list[tuple]:
    return [
        (c.user_id, c.token_type, c.delta, c.new_limit, plan.source_of(c))
        for c in sorted(plan.changes, key=lambda c: c.user_id)
    ]


def test_the_preview_equals_what_the_run_then_does(acme, boss, key, reclaiming):
    ann = person(acme, "ann@acme.example", inference=4_000_000, embedding=300_000)
    bob = person(acme, "bob@acme.example", inference=250_000, embedding=500_000)
    cy = person(acme, "cy@acme.example", inference=500_000, embedding=2_000_000)
    use(key, ann, 1_000_000, when=last_month())
    use(key, cy, 1_000_000, token_type=EMB)
    counts = (AllocationChange.objects.count(), AuditEvent.objects.count())
    plan = engine.distribution_plan(organization=acme, distribute_equally=True)
    assert (AllocationChange.objects.count(), AuditEvent.objects.count()) == counts
    assert not DistributionRun.objects.exists(), "the preview writes nothing"
    assert {c.reason for c in plan.changes} == {"reclamation", "floor", "equal share"}
    run = engine.distribution_run(
        actor=boss, organization=acme, distribute_equally=True
    )
    # Per user, the run applies the plan's changes in the plan's order.
    assert run_changes(run) == plan_changes(plan)
    for user in (ann, bob, cy):
        for t in (INF, EMB):
            rows = [
                c for c in plan.changes if c.user_id == user.pk and c.token_type == t
            ]
            if rows:
                assert limit(user, t) == rows[-1].new_limit
    assert (
        run.summary[INF]["unallocated_after"] == plan.totals[INF]["unallocated_after"]
    )
    assert check_ledger() == []


def test_run_raises_users_below_the_floor_largest_shortfall_first(acme, boss):
    engine.policy_ensure(organization=acme)  # floors 500,000
    ann = person(acme, "ann@acme.example", inference=200_000, embedding=500_000)
    bob = person(acme, "bob@acme.example", inference=300_000, embedding=500_000)
    cy = person(acme, "cy@acme.example", inference=450_000, embedding=500_000)
    person(acme, "big@acme.example", inference=8_700_000, embedding=500_000)
    # Unallocated inference: 10,000,000 − 9,650,000 = 350,000.
    plan = engine.distribution_plan(organization=acme)
    assert [(c.email, c.delta, c.new_limit) for c in plan.changes] == [
        ("ann@acme.example", 300_000, 500_000),
        ("bob@acme.example", 50_000, 350_000),  # partial: the pool runs out
    ]
    assert plan.shortfall == {INF: 200_000, EMB: 0}
    assert plan.totals[INF] == {
        "raised": 350_000,
        "reclaimed": 0,
        "distributed": 0,
        "unallocated_before": 350_000,
        "unallocated_after": 0,
    }
    run = engine.distribution_run(actor=boss, organization=acme)
    assert (limit(ann), limit(bob), limit(cy)) == (500_000, 350_000, 450_000)
    assert run.summary[INF]["shortfall"] == 200_000
    assert run.summary[INF]["users_raised"] == 2
    assert check_ledger() == []


def test_a_partial_raise_never_leaves_a_user_under_the_platform_minimum(acme, boss):
    engine.policy_ensure(organization=acme)
    low = person(acme, "low@acme.example", inference=100_000, embedding=500_000)
    mid = person(acme, "mid@acme.example", inference=400_000, embedding=500_000)
    person(acme, "big@acme.example", inference=9_450_000, embedding=500_000)
    # 50,000 unallocated: low needs 400,000 (and would stay under 200,000).
    plan = engine.distribution_plan(organization=acme)
    assert [(c.user_id, c.delta) for c in plan.changes] == [(mid.pk, 50_000)]
    assert plan.shortfall[INF] == 400_000 + 50_000
    engine.distribution_run(actor=boss, organization=acme)
    assert (limit(low), limit(mid)) == (100_000, 450_000)
    assert check_ledger() == []


def test_run_distributes_the_unallocated_pool_equally(acme, boss):
    engine.policy_ensure(organization=acme)
    ann = person(acme, "ann@acme.example", inference=500_000, embedding=500_000)
    bob = person(acme, "bob@acme.example", inference=500_000, embedding=500_000)
    cy = person(acme, "cy@acme.example", inference=500_000, embedding=500_000)
    unpaid = person(acme, "off@acme.example", inference=500_000, embedding=500_000)
    unpaid.is_paid = False
    unpaid.save(update_fields=["is_paid"])
    # 10M − 2M = 8,000,000 unallocated; 3 paid users: 2,666,666 each, 2 left over.
    run = engine.distribution_run(
        actor=boss, organization=acme, distribute_equally=True
    )
    for user in (ann, bob, cy):
        assert limit(user, INF) == limit(user, EMB) == 3_166_666
    assert limit(unpaid) == 500_000
    assert run.summary[INF]["distributed"] == 7_999_998
    assert run.summary[INF]["unallocated_after"] == 2
    assert run.distribute_equally
    assert check_ledger() == []


def test_equal_share_never_passes_a_users_ceiling(acme, boss):
    engine.policy_ensure(organization=acme)  # ceiling 5,000,000
    ann = person(acme, "ann@acme.example", inference=500_000, embedding=500_000)
    bob = person(acme, "bob@acme.example", inference=500_000, embedding=500_000)
    override(acme, boss, bob, ceiling=1_000_000)
    engine.distribution_run(actor=boss, organization=acme, distribute_equally=True)
    # 9,000,000 / 2 = 4,500,000 each, but ann stops at 5M and bob at 1M.
    assert (limit(ann), limit(bob)) == (5_000_000, 1_000_000)
    assert check_ledger() == []


def test_without_distribute_equally_the_pool_stays_unallocated(acme, boss):
    engine.policy_ensure(organization=acme)
    ann = person(acme, "ann@acme.example", inference=500_000, embedding=500_000)
    run = engine.distribution_run(actor=boss, organization=acme)
    assert limit(ann) == 500_000
    assert run.summary["changes"] == 0


def test_run_is_atomic_a_failure_midway_changes_nothing(acme, boss):
    engine.policy_ensure(organization=acme)
    users = [
        person(acme, f"u{i}@acme.example", inference=300_000, embedding=300_000)
        for i in range(3)
    ]
    real = pool_kernel._write

    def flaky(*args, **kwargs):
        # The limits and their changes are written, then the run fails.
        real(*args, **kwargs)
        raise RuntimeError("disk full")

    before = (AllocationChange.objects.count(), AuditEvent.objects.count())
    with (
        mock.patch.object(pool_kernel, "_write", side_effect=flaky),
        pytest.raises(RuntimeError, match="disk full"),
    ):
        engine.distribution_run(actor=boss, organization=acme)
    assert [limit(u) for u in users] == [300_000] * 3
    assert (AllocationChange.objects.count(), AuditEvent.objects.count()) == before
    assert not DistributionRun.objects.exists()
    assert check_ledger() == []


def test_run_records_one_audit_event_per_user_changed_and_one_for_the_run(acme, boss):
    engine.policy_ensure(organization=acme)
    ann = person(acme, "ann@acme.example", inference=300_000, embedding=400_000)
    bob = person(acme, "bob@acme.example", inference=300_000, embedding=500_000)
    person(acme, "cy@acme.example", inference=500_000, embedding=500_000)
    run = engine.distribution_run(actor=boss, organization=acme)
    limit_events = AuditEvent.objects.filter(
        action=Action.LIMIT_CHANGED, allocation_changes__distribution_run=run
    ).distinct()
    assert limit_events.count() == 2
    by_user = {e.target_id: e for e in limit_events}
    assert by_user[str(ann.pk)].before == {
        "inference_limit": 300_000,
        "embedding_limit": 400_000,
    }
    assert by_user[str(ann.pk)].after == {
        "inference_limit": 500_000,
        "embedding_limit": 500_000,
    }
    assert by_user[str(bob.pk)].before == {"inference_limit": 300_000}
    assert f"Distribution run #{run.pk}: floor" in by_user[str(bob.pk)].message
    for change in AllocationChange.objects.filter(distribution_run=run):
        assert change.audit_event.target_id == str(change.user_id)
        assert change.source == Source.DISTRIBUTION
        assert change.actor == boss
    (run_event,) = events(Action.DISTRIBUTION_RUN)
    assert run_event.target_id == str(run.pk)
    assert run_event.actor == boss
    assert run_event.after["changes"] == 3
    assert run_event.after["users_changed"] == 2
    assert run_event.after[INF]["raised"] == 400_000
    run.refresh_from_db()
    assert (run.trigger, run.actor, run.due_at) == ("manual", boss, None)
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert check_ledger() == []


def test_a_run_that_changes_nothing_is_still_recorded(acme, boss):
    engine.policy_ensure(organization=acme)
    run = engine.distribution_run(actor=boss, organization=acme)
    assert run.summary["changes"] == 0
    assert len(events(Action.DISTRIBUTION_RUN)) == 1
    assert not AllocationChange.objects.filter(distribution_run=run).exists()


def test_run_creates_the_policy_when_missing_and_refuses_an_inactive_org(acme, boss):
    engine.distribution_run(actor=boss, organization=acme)
    assert DistributionPolicy.objects.filter(organization=acme).exists()
    acme.status = Organization.Status.SUSPENDED
    acme.save(update_fields=["status"])
    with pytest.raises(ValidationError) as error:
        engine.distribution_run(actor=boss, organization=acme)
    assert "active organization" in error.value.messages[0]


# --- schedule -------------------------------------------------------------------------


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def schedule(**fields) -> DistributionPolicy:
    return DistributionPolicy(**fields)


SCHEDULES = [
    # (policy, after/now, next_run_at, last_due_at)
    (
        {"schedule": "daily", "schedule_hour": 2},
        utc(2025, 3, 10, 1, 0),
        utc(2025, 3, 10, 2),
        utc(2025, 3, 9, 2),
    ),
    (
        {"schedule": "daily", "schedule_hour": 2},
        utc(2025, 3, 10, 2, 0),
        utc(2025, 3, 11, 2),
        utc(2025, 3, 10, 2),
    ),
    (
        {"schedule": "daily", "schedule_hour": 23},
        utc(2025, 12, 31, 23, 30),
        utc(2026, 1, 1, 23),
        utc(2025, 12, 31, 23),
    ),
    (  # 2025-03-10 is a Monday
        {"schedule": "weekly", "schedule_weekday": 0, "schedule_hour": 2},
        utc(2025, 3, 10, 3, 0),
        utc(2025, 3, 17, 2),
        utc(2025, 3, 10, 2),
    ),
    (
        {"schedule": "weekly", "schedule_weekday": 0, "schedule_hour": 2},
        utc(2025, 3, 10, 1, 0),
        utc(2025, 3, 10, 2),
        utc(2025, 3, 3, 2),
    ),
    (
        {"schedule": "weekly", "schedule_weekday": 6, "schedule_hour": 0},
        utc(2025, 3, 12, 12, 0),
        utc(2025, 3, 16, 0),
        utc(2025, 3, 9, 0),
    ),
    (
        {"schedule": "monthly", "schedule_day": 15, "schedule_hour": 6},
        utc(2025, 1, 20, 0, 0),
        utc(2025, 2, 15, 6),
        utc(2025, 1, 15, 6),
    ),
    (
        {"schedule": "monthly", "schedule_day": 15, "schedule_hour": 6},
        utc(2025, 12, 15, 6, 0),
        utc(2026, 1, 15, 6),
        utc(2025, 12, 15, 6),
    ),
    (
        {"schedule": "monthly", "schedule_day": 15, "schedule_hour": 6},
        utc(2025, 1, 10, 0, 0),
        utc(2025, 1, 15, 6),
        utc(2024, 12, 15, 6),
    ),
]


@pytest.mark.parametrize(("fields", "moment", "upcoming", "latest"), SCHEDULES)
def test_next_run_and_last_due_time_of_the_schedule(fields, moment, upcoming, latest):
    policy = schedule(**fields)
    assert engine.next_run_at(policy, after=moment) == upcoming
    assert engine.last_due_at(policy, now=moment) == latest
    assert upcoming > moment >= latest


def test_schedule_times_are_utc_whatever_the_time_zone_given():
    policy = schedule(schedule="daily", schedule_hour=2)
    tokyo = dt.timezone(dt.timedelta(hours=9))
    moment = dt.datetime(2025, 3, 10, 10, 0, tzinfo=tokyo)  # 01:00 UTC
    assert engine.next_run_at(policy, after=moment) == utc(2025, 3, 10, 2)


def test_schedule_off_has_no_run_times():
    policy = schedule(schedule="off")
    assert engine.next_run_at(policy, after=timezone.now()) is None
    assert engine.last_due_at(policy, now=timezone.now()) is None


# --- run_due_distributions and the command --------------------------------------------


def command(*args) -> str:
    out = io.StringIO()
    call_command("run_distribution", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def due_org(acme):
    """Acme with a daily schedule, one user under the floor."""
    set_policy(acme, schedule="daily", schedule_hour=0)
    person(acme, "ann@acme.example", inference=300_000, embedding=500_000)
    return acme


def test_command_runs_a_due_organization_once(due_org):
    out = command()
    assert f"Acme (id {due_org.pk}): ran" in out
    assert "1 change for 1 user (inference: +200,000 to floors" in out
    run = DistributionRun.objects.get()
    policy = DistributionPolicy.objects.get(organization=due_org)
    assert run.trigger == "scheduled" and run.actor is None
    assert run.due_at == engine.last_due_at(policy, now=timezone.now())
    assert check_ledger() == []
    out = command()
    assert "skipped: already ran for" in out
    assert DistributionRun.objects.count() == 1


def test_command_dry_run_changes_nothing(due_org):
    counts = (AllocationChange.objects.count(), AuditEvent.objects.count())
    out = command("--dry-run")
    assert "would run" in out
    assert "1 change for 1 user (inference: +200,000 to floors" in out
    assert "dry run: nothing changed" in out
    assert not DistributionRun.objects.exists()
    assert (AllocationChange.objects.count(), AuditEvent.objects.count()) == counts


def test_command_org_filter_runs_only_that_organization(due_org):
    globex = OrganizationFactory(
        name="Globex", activated_at=timezone.now() - dt.timedelta(days=30)
    )
    fund(globex)
    set_policy(globex, schedule="daily", schedule_hour=0)
    out = command("--org", str(globex.pk))
    assert "Globex" in out and "Acme" not in out
    assert list(DistributionRun.objects.values_list("organization", flat=True)) == [
        globex.pk
    ]
    out = command()
    assert f"Acme (id {due_org.pk}): ran" in out
    assert f"Globex (id {globex.pk}): skipped: already ran" in out


def test_command_refuses_an_unknown_organization(db):
    with pytest.raises(CommandError, match="No organization with id 999999"):
        command("--org", "999999")


def test_schedules_off_or_before_activation_do_not_run(acme):
    engine.policy_ensure(organization=acme)  # schedule off
    late = OrganizationFactory(name="Late", activated_at=timezone.now())
    fund(late)
    set_policy(late, schedule="monthly", schedule_day=1, schedule_hour=0)
    results = dict((org.name, status) for org, status in engine.run_due_distributions())
    assert "Acme" not in results
    assert results["Late"].startswith("skipped: not due yet")
    assert engine.run_due_distributions(org_id=acme.pk) == [
        (acme, "skipped: schedule off")
    ]
    assert not DistributionRun.objects.exists()


def test_run_due_distributions_runs_once_per_due_time(due_org):
    now = timezone.now()
    assert engine.run_due_distributions(now=now, dry_run=True) == [
        (due_org, "would run")
    ]
    assert engine.run_due_distributions(now=now) == [(due_org, "ran")]
    (status,) = [s for _org, s in engine.run_due_distributions(now=now)]
    assert status.startswith("skipped: already ran")
    # The next day's due time runs again.
    later = now + dt.timedelta(days=1)
    assert engine.run_due_distributions(now=later) == [(due_org, "ran")]
    assert DistributionRun.objects.count() == 2
    assert check_ledger() == []


def test_the_fast_path_finds_only_counters_past_the_lowest_trigger(acme, key, simple):
    ann = person(acme, "ann@acme.example", inference=1_000_000)
    period = period_of(timezone.now())
    use(key, ann, 500_000)  # below 90%: the trigger would not even be looked at
    assert auto_increase._candidates({acme.pk}, {(ann.pk, INF)}, period) == []
    Allocation.objects.filter(user=ann, token_type=INF).update(limit=555_555)
    (row,) = auto_increase._candidates({acme.pk}, {(ann.pk, INF)}, period)  # 90.0001%
    assert (row["user_id"], row["used"], row["limit"]) == (ann.pk, 500_000, 555_555)
