"""Management → Token Distribution (docs/product.md, Token Distribution), from the
outside: the page, its forms, the preview and the run, the overrides and the
schedule."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from accounts.models import AuditEvent
from tests.factories import UserFactory, fund, give
from tests.kit import limit, member
from tokens.ledger import check_ledger
from tokens.models import (
    AllocationChange,
    DistributionPolicy,
    DistributionRun,
    UserOverride,
)
from tokens.services.distribution import (
    PRESET_FIELDS,
    PRESETS,
    distribution_run,
    override_set,
    policy_ensure,
)

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
Preset = DistributionPolicy.Preset

PAGE = reverse("tokens:distribution")
PREVIEW = reverse("tokens:distribution_preview")
PRESET = reverse("tokens:distribution_preset_apply")
LIMITS = reverse("tokens:distribution_limits_update")
AUTO = reverse("tokens:distribution_auto_increase_update")
RECLAIM = reverse("tokens:distribution_reclamation_update")
SCHEDULE = reverse("tokens:distribution_schedule_update")
RUN = reverse("tokens:distribution_run")
OVERRIDE = reverse("tokens:distribution_override_set")


def remove_url(user) -> str:
    return reverse("tokens:distribution_override_remove", kwargs={"user_id": user.pk})


def events(action) -> int:
    return AuditEvent.objects.filter(action=action).count()


def policy_of(org) -> dict:
    policy = DistributionPolicy.objects.get(organization=org)
    fields = [
        "preset",
        *PRESET_FIELDS,
        "lookback_days",
        "headroom_percent",
        "schedule",
        "schedule_hour",
        "schedule_weekday",
        "schedule_day",
    ]
    return {field: getattr(policy, field) for field in fields}


def body(response) -> str:
    return response.content.decode()


@pytest.fixture
def team(org, admin_user):
    """Acme funded with 4M of each type; Ava and Bob below the Standard floor."""
    fund(org, inference=4_000_000, embedding=4_000_000)
    ava = member(
        org, "ava@acme.example", first_name="Ava", inference=100_000, embedding=300_000
    )
    bob = member(
        org, "bob@acme.example", first_name="Bob", inference=400_000, embedding=500_000
    )
    give(admin_user, 500_000)
    give(admin_user, 500_000, "embedding")
    policy_ensure(organization=org)
    return {"ava": ava, "bob": bob}


# --- access --------------------------------------------------------------------------


def mutations(user) -> list[str]:
    return [PRESET, LIMITS, AUTO, RECLAIM, SCHEDULE, RUN, OVERRIDE, remove_url(user)]


def test_anonymous_is_sent_to_sign_in_everywhere(anon_client, team):
    sign_in = reverse("accounts:login")
    for url in [PAGE, PREVIEW]:
        response = anon_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(sign_in)
    for url in mutations(team["ava"]):
        assert anon_client.post(url)["Location"].startswith(sign_in)


def test_member_is_forbidden_everywhere(member_client, team, org):
    before = policy_of(org)
    for url in [PAGE, PREVIEW]:
        assert member_client.get(url).status_code == 403
    for url in mutations(team["ava"]):
        assert member_client.post(url, {"preset": "aggressive"}).status_code == 403
    assert policy_of(org) == before
    assert not DistributionRun.objects.exists()


def test_get_on_mutations_is_405(admin_client, team):
    for url in mutations(team["ava"]):
        assert admin_client.get(url).status_code == 405


def test_admin_of_another_org_sees_and_changes_only_their_own(
    other_admin_client, other_org, team, org
):
    fund(other_org, inference=2_000_000, embedding=2_000_000)
    ours = policy_of(org)
    ava = team["ava"]
    override_set(
        actor=None,
        organization=org,
        user=ava,
        floor=600_000,
        ceiling=None,
        exempt_auto_increase=False,
        exempt_reclamation=False,
    )

    page = other_admin_client.get(PAGE)
    assert page.status_code == 200
    assert page.context["org"] == other_org
    assert page.context["summary"]["inference"].pool == 2_000_000
    assert "ava@acme.example" not in body(page)
    preview = other_admin_client.get(PREVIEW)
    assert all(c.email != "ava@acme.example" for c in preview.context["changes"])

    # Their changes land on their own policy; our users are not theirs to touch.
    other_admin_client.post(PRESET, {"preset": "aggressive"})
    assert policy_of(org) == ours
    assert DistributionPolicy.objects.get(organization=other_org).preset == "aggressive"
    assert other_admin_client.post(remove_url(ava)).status_code == 404
    assert UserOverride.objects.filter(user=ava).exists()
    response = other_admin_client.post(
        OVERRIDE, {"email": "ava@acme.example", "floor": "900000"}
    )
    assert response.status_code == 400
    assert "ava@acme.example is not a user of your organization." in body(response)
    assert UserOverride.objects.get(user=ava).floor == 600_000
    assert other_admin_client.get(PAGE, {"override": ava.pk}).status_code == 404
    other_admin_client.post(RUN)
    assert limit(ava) == 100_000


def test_superuser_opens_an_org_with_the_org_param(superuser_client, team, org):
    response = superuser_client.get(PAGE, {"org": org.pk})
    assert response.status_code == 200
    assert response.context["org"] == org
    response = superuser_client.post(f"{PRESET}?org={org.pk}", {"preset": "dynamic"})
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}?org={org.pk}#top"
    assert policy_of(org)["preset"] == "dynamic"


# --- the page ------------------------------------------------------------------------


def test_page_shows_status_presets_and_the_active_badge(admin_client, team):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    html = body(response)
    summary = response.context["summary"]
    assert summary["inference"].pool == 4_000_000
    assert summary["inference"].allocated == 1_000_000
    assert summary["inference"].unallocated == 3_000_000
    for label in ["Purchased", "Allocated", "Used", "Unallocated"]:
        assert f'<div class="stat-label">{label}</div>' in html
    assert "3,000,000" in html
    assert "Active: Standard preset" in html
    cards = {card["value"]: card for card in response.context["presets"]}
    assert list(cards) == [p.value for p in Preset]
    assert [c["active"] for c in cards.values()] == [False, True, False, False, False]
    assert dict(cards["conservative"]["rows"]) == {
        "Floor": "200K / 200K",
        "Ceiling": "1M",
        "Trigger": "90%",
        "Cooldown": "4 h",
        "Bump": "+25% of the current limit",
        "Reclamation": "Off",
    }
    assert dict(cards["standard"]["rows"])["Bump"] == "+25% at 80%, +50% at 95%"
    assert dict(cards["aggressive"]["rows"])["Ceiling"] == "Unlimited"
    assert dict(cards["aggressive"]["rows"])["Bump"] == "Flat +500K"
    assert dict(cards["dynamic"]["rows"]) == {
        "Floor": "500K / 500K",
        "Ceiling": "Unlimited",
        "Trigger": "Tiers 75%, 90%, 99.9%",
        "Cooldown": "1 h",
        "Bump": "25% of the remaining pool, at most the current limit",
        "Reclamation": "On",
    }
    assert "Cost-conscious organizations" in html
    # The forms start from the policy.
    assert response.context["floor_form"]["floor_inference"].value() == 500_000
    assert 'value="500,000"' in html
    assert response.context["auto_form"]["triggers"].value() == "80, 95"
    assert response.context["auto_form"]["tier_bumps"].value() == "25, 50"


def test_choosing_a_preset_fills_the_numbers_and_the_badge(admin_client, team, org):
    response = admin_client.post(PRESET, {"preset": "aggressive"})
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}#top"
    policy = policy_of(org)
    assert policy["preset"] == "aggressive"
    for field, value in PRESETS[Preset.AGGRESSIVE].items():
        assert policy[field] == value, field
    assert events(Action.POLICY_CHANGED) == 1

    page = admin_client.get(PAGE)
    html = body(page)
    assert "Aggressive preset applied." in html
    assert "Active: Aggressive preset" in html
    assert [c["active"] for c in page.context["presets"]] == [
        False,
        False,
        True,
        False,
        False,
    ]


def test_an_unknown_preset_is_refused(admin_client, team, org):
    before = policy_of(org)
    response = admin_client.post(PRESET, {"preset": "reckless"})
    assert response.status_code == 400
    assert "Choose one of the five presets." in body(response)
    assert policy_of(org) == before
    assert events(Action.POLICY_CHANGED) == 0


def test_editing_a_field_switches_the_badge_to_custom(admin_client, team, org):
    response = admin_client.post(
        LIMITS,
        {"floor_inference": "600,000", "floor_embedding": "500000", "ceiling": "5M"},
    )
    assert response.status_code == 400  # "5M" is not a number
    response = admin_client.post(
        LIMITS,
        {
            "floor_inference": "600,000",
            "floor_embedding": "500000",
            "ceiling": "5000000",
        },
    )
    assert response.status_code == 302
    policy = policy_of(org)
    assert (policy["preset"], policy["floor_inference"]) == ("custom", 600_000)
    html = body(admin_client.get(PAGE))
    assert "Floor and ceiling saved. The active preset is now Custom." in html
    assert "Active: Custom preset" in html
    event = AuditEvent.objects.get(action=Action.POLICY_CHANGED)
    assert event.before == {"floor_inference": 500_000, "preset": "standard"}
    assert event.after == {"floor_inference": 600_000, "preset": "custom"}


def test_saving_unchanged_values_changes_nothing(admin_client, team, org):
    response = admin_client.post(
        LIMITS,
        {
            "floor_inference": "500000",
            "floor_embedding": "500000",
            "ceiling": "5000000",
        },
    )
    assert response.status_code == 302
    assert "Nothing to save" in body(admin_client.get(PAGE))
    assert policy_of(org)["preset"] == "standard"
    assert events(Action.POLICY_CHANGED) == 0


def test_ceiling_unlimited(admin_client, team, org):
    response = admin_client.post(
        LIMITS,
        {
            "floor_inference": "500000",
            "floor_embedding": "500000",
            "ceiling": "",
            "ceiling_unlimited": "on",
        },
    )
    assert response.status_code == 302
    assert policy_of(org)["ceiling"] is None
    assert events(Action.POLICY_CHANGED) == 1
    page = admin_client.get(PAGE)
    assert page.context["floor_form"]["ceiling_unlimited"].value() is True


def test_auto_increase_saved_and_audited(admin_client, team, org):
    response = admin_client.post(
        AUTO,
        {
            "auto_increase_enabled": "on",
            "triggers": "70, 85%, 99.9",
            "cooldown_minutes": "120",
            "bump_mode": "tiers",
            "bump_value": "25",
            "tier_bumps": "10, 20, 40",
            "bump_cap_at_current": "on",
        },
    )
    assert response.status_code == 302
    policy = policy_of(org)
    assert policy["triggers"] == [70, 85, 99.9]
    assert policy["tier_bumps"] == [10, 20, 40]
    assert policy["cooldown_minutes"] == 120
    assert policy["bump_cap_at_current"] is True
    assert policy["preset"] == "custom"
    assert events(Action.POLICY_CHANGED) == 1
    assert "Auto-increase saved." in body(admin_client.get(PAGE))


def test_reclamation_saved_and_audited(admin_client, team, org):
    response = admin_client.post(
        RECLAIM,
        {"reclamation_enabled": "on", "lookback_days": "60", "headroom_percent": "10"},
    )
    assert response.status_code == 302
    policy = policy_of(org)
    assert (
        policy["reclamation_enabled"],
        policy["lookback_days"],
        policy["headroom_percent"],
    ) == (True, 60, 10)
    assert policy["preset"] == "custom"  # reclamation is part of the presets
    assert events(Action.POLICY_CHANGED) == 1


def test_schedule_saved_shows_the_next_run(admin_client, team, org):
    response = admin_client.post(
        SCHEDULE,
        {
            "schedule": "weekly",
            "schedule_hour": "3",
            "schedule_weekday": "4",
            "schedule_day": "1",
        },
    )
    assert response.status_code == 302
    policy = policy_of(org)
    assert (
        policy["schedule"],
        policy["schedule_hour"],
        policy["schedule_weekday"],
    ) == (
        "weekly",
        3,
        4,
    )
    assert policy["preset"] == "standard"  # the schedule is not a preset field
    assert events(Action.POLICY_CHANGED) == 1
    page = admin_client.get(PAGE)
    next_run = page.context["next_run"]
    assert (next_run.weekday(), next_run.hour) == (4, 3)
    html = body(page)
    assert "Schedule saved. Next run:" in html
    assert f"{next_run:%Y-%m-%d %H:%M} UTC" in html


INVALID = [
    (
        "floor below the platform minimum",
        LIMITS,
        {
            "floor_inference": "150000",
            "floor_embedding": "500000",
            "ceiling": "5000000",
        },
        "The floor must be a whole number of tokens, at least the platform minimum "
        "of 200,000.",
    ),
    (
        "floor not a number",
        LIMITS,
        {"floor_inference": "lots", "floor_embedding": "500000", "ceiling": "5000000"},
        "Enter a whole number of tokens, such as 500,000.",
    ),
    (
        "ceiling below the floor",
        LIMITS,
        {"floor_inference": "500000", "floor_embedding": "500000", "ceiling": "300000"},
        "The ceiling (300,000) must be at least the floors",
    ),
    (
        "no ceiling and not unlimited",
        LIMITS,
        {"floor_inference": "500000", "floor_embedding": "500000", "ceiling": ""},
        "Enter a ceiling, or tick Unlimited.",
    ),
    (
        "trigger 40",
        AUTO,
        {"triggers": "40, 95"},
        "Each trigger is a usage percentage from 50 to 99.9",
    ),
    (
        "trigger 100",
        AUTO,
        {"triggers": "80, 100"},
        "Each trigger is a usage percentage from 50 to 99.9",
    ),
    (
        "trigger abc",
        AUTO,
        {"triggers": "abc"},
        "Enter percentages separated by commas, e.g. 80, 95.",
    ),
    ("no trigger", AUTO, {"triggers": ""}, "Enter at least one trigger percentage"),
    (
        "cooldown 0",
        AUTO,
        {"cooldown_minutes": "0"},
        "The cooldown is a whole number of minutes, at least 1",
    ),
    (
        "cooldown not whole",
        AUTO,
        {"cooldown_minutes": "1.5"},
        "Enter a whole number.",
    ),
    ("bump value 0", AUTO, {"bump_value": "0"}, "The bump must be greater than 0."),
    (
        "tier bumps length mismatch",
        AUTO,
        {"tier_bumps": "25"},
        "Tiers need one bump per trigger: 2 triggers, 1 bumps.",
    ),
    (
        "tier bumps not numbers",
        AUTO,
        {"tier_bumps": "25, lots"},
        "Enter percentages separated by commas, e.g. 25, 50.",
    ),
    (
        "lookback 0",
        RECLAIM,
        {"lookback_days": "0", "headroom_percent": "25"},
        "The lookback is a whole number of days from 1 to 365.",
    ),
    (
        "headroom -1",
        RECLAIM,
        {"lookback_days": "30", "headroom_percent": "-1"},
        "The headroom is a whole percentage from 0 to 500.",
    ),
    (
        "hour 24",
        SCHEDULE,
        {
            "schedule": "daily",
            "schedule_hour": "24",
            "schedule_weekday": "0",
            "schedule_day": "1",
        },
        "Choose an hour from 0 to 23 (UTC).",
    ),
    (
        "day 29",
        SCHEDULE,
        {
            "schedule": "monthly",
            "schedule_hour": "2",
            "schedule_weekday": "0",
            "schedule_day": "29",
        },
        "Choose a day of the month from 1 to 28.",
    ),
]

AUTO_VALID = {
    "auto_increase_enabled": "on",
    "triggers": "80, 95",
    "cooldown_minutes": "60",
    "bump_mode": "tiers",
    "bump_value": "25",
    "tier_bumps": "25, 50",
}


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_bad_input_shows_the_message_and_changes_nothing(
    admin_client, team, org, url, data, message
):
    if url == AUTO:
        data = {**AUTO_VALID, **data}
    before = policy_of(org)
    response = admin_client.post(url, data)
    assert response.status_code == 400
    html = body(response)
    assert escape(message) in html
    assert "Nothing was saved. Fix the errors in" in html
    assert policy_of(org) == before
    assert events(Action.POLICY_CHANGED) == 0


# --- overrides -----------------------------------------------------------------------


def test_override_add_edit_and_remove(admin_client, team, org):
    ava = team["ava"]
    response = admin_client.post(
        OVERRIDE,
        {
            "email": "AVA@acme.example",
            "floor": "700,000",
            "ceiling": "",
            "exempt_reclamation": "on",
            "note": "Runs the nightly batch",
        },
    )
    assert response.status_code == 302
    override = UserOverride.objects.get(user=ava)
    assert (override.floor, override.ceiling, override.exempt_reclamation) == (
        700_000,
        None,
        True,
    )
    assert override.organization == org
    assert events(Action.OVERRIDE_SET) == 1
    page = admin_client.get(PAGE)
    html = body(page)
    assert "Override for ava@acme.example saved." in html
    assert "Runs the nightly batch" in html
    assert "700,000" in html

    # Edit: the form is filled from the override.
    edit = admin_client.get(PAGE, {"override": ava.pk})
    form = edit.context["override_form"]
    assert form["email"].value() == "ava@acme.example"
    assert form["floor"].value() == 700_000
    assert "Edit the override for ava@acme.example" in body(edit)
    admin_client.post(
        OVERRIDE,
        {"email": "ava@acme.example", "floor": "", "ceiling": "2000000"},
    )
    override.refresh_from_db()
    assert (override.floor, override.ceiling, override.exempt_reclamation) == (
        None,
        2_000_000,
        False,
    )
    assert events(Action.OVERRIDE_SET) == 2

    response = admin_client.post(remove_url(ava))
    assert response.status_code == 302
    assert not UserOverride.objects.filter(user=ava).exists()
    assert events(Action.OVERRIDE_REMOVED) == 1
    assert "Override for ava@acme.example removed" in body(admin_client.get(PAGE))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "nobody@acme.example", "floor": "1"}, "is not a user of your"),
        ({"email": "not-an-email", "floor": "1"}, "Enter a valid email address."),
        (
            {"email": "", "floor": "1"},
            "Enter the email of a user of your organization.",
        ),
        ({"email": "ava@acme.example", "floor": "many"}, "Enter a whole number"),
        (
            {"email": "ava@acme.example", "floor": "900000", "ceiling": "800000"},
            "The ceiling (800,000) must be at least the floor (900,000).",
        ),
        (
            {"email": "ava@acme.example"},
            "An override needs a floor, a ceiling or an exemption",
        ),
    ],
)
def test_bad_override_shows_the_message_and_changes_nothing(
    admin_client, team, data, message
):
    response = admin_client.post(OVERRIDE, data)
    assert response.status_code == 400
    assert escape(message) in body(response)
    assert not UserOverride.objects.exists()
    assert events(Action.OVERRIDE_SET) == 0


def test_removing_a_missing_override_says_so(admin_client, team):
    response = admin_client.post(remove_url(team["bob"]))
    assert response.status_code == 302
    assert "This user has no override." in body(admin_client.get(PAGE))
    assert events(Action.OVERRIDE_REMOVED) == 0


# --- preview and run -----------------------------------------------------------------


def planned(response) -> dict:
    return {
        (c.email, c.token_type): (c.current, c.new_limit, c.reason)
        for c in response.context["changes"]
    }


def test_preview_lists_the_changes_and_changes_nothing(admin_client, team):
    response = admin_client.get(PREVIEW)
    assert response.status_code == 200
    assert planned(response) == {
        ("ava@acme.example", "inference"): (100_000, 500_000, "floor"),
        ("ava@acme.example", "embedding"): (300_000, 500_000, "floor"),
        ("bob@acme.example", "inference"): (400_000, 500_000, "floor"),
    }
    html = body(response)
    assert "Nothing has changed yet." in html
    assert "+400,000" in html
    assert "Raised to floor" in html
    effect = {row["token_type"]: row for row in response.context["effect"]}
    assert effect["inference"]["raised"] == 500_000
    assert effect["inference"]["unallocated_after"] == 2_500_000
    assert f'action="{RUN}"' in html
    assert limit(team["ava"]) == 100_000
    assert not AllocationChange.objects.filter(source="distribution").exists()
    assert not DistributionRun.objects.exists()


def test_preview_reports_a_shortfall(admin_client, org, team):
    policy = DistributionPolicy.objects.get(organization=org)
    policy.floor_inference = 2_000_000
    policy.ceiling = None
    policy.save()
    response = admin_client.get(PREVIEW)
    assert response.context["shortfall"]
    assert "tokens short of bringing every paid, active user up to the floor" in (
        body(response)
    )


def test_run_applies_the_preview(admin_client, team, admin_user):
    preview = planned(admin_client.get(PREVIEW))
    response = admin_client.post(RUN)
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}#top"
    ava, bob = team["ava"], team["bob"]
    for (email, token_type), (_current, new_limit, _reason) in preview.items():
        user = ava if email.startswith("ava") else bob
        assert limit(user, token_type) == new_limit
    assert limit(admin_user) == 500_000
    assert check_ledger() == []
    run = DistributionRun.objects.get()
    assert (run.trigger, run.actor, run.distribute_equally) == (
        "manual",
        admin_user,
        False,
    )
    assert events(Action.DISTRIBUTION_RUN) == 1
    page = admin_client.get(PAGE)
    html = body(page)
    assert (
        "Distribution run finished: 3 limits changed for 2 users. "
        "inference: +500,000 to floors; embedding: +200,000 to floors." in html
    )
    assert page.context["runs"][0].change_count == 3
    assert page.context["last_run"] == run
    # Nothing left to do: the preview is empty and a second run changes nothing.
    assert planned(admin_client.get(PREVIEW)) == {}


def test_run_with_the_equal_share(admin_client, team, admin_user):
    preview = admin_client.get(PREVIEW, {"equal": "1"})
    assert preview.context["equal"] is True
    assert 'name="distribute_equally" value="on"' in body(preview)
    assert {c.reason for c in preview.context["changes"]} == {"floor", "equal share"}
    assert "Equal share" in body(preview)
    admin_client.post(RUN, {"distribute_equally": "on"})
    run = DistributionRun.objects.get()
    assert run.distribute_equally is True
    # 4M each, split equally over three users after the floors: 1,333,333 each.
    for user in [team["ava"], team["bob"], admin_user]:
        assert limit(user) == 500_000 + 833_333
    assert check_ledger() == []


def test_run_without_changes_says_so(admin_client, team, org):
    distribution_run(actor=None, organization=org)
    admin_client.post(RUN)
    assert "every limit already fits the policy" in body(admin_client.get(PAGE))
    assert DistributionRun.objects.count() == 2


# --- queries -------------------------------------------------------------------------


def test_query_count_does_not_grow_with_users(admin_client, org, team):
    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url).status_code == 200
        return len(ctx.captured_queries)

    def add_users(n):
        for _i in range(n):
            user = UserFactory(organization=org)
            give(user, 100_000)
            override_set(
                actor=None,
                organization=org,
                user=user,
                floor=None,
                ceiling=None,
                exempt_auto_increase=True,
                exempt_reclamation=False,
            )
        distribution_run(actor=None, organization=org)

    fund(org, inference=40_000_000, embedding=40_000_000)
    admin_client.get(PAGE)  # session and last-active writes happen once
    add_users(7)  # 10 users
    few = count(PAGE), count(PREVIEW)
    add_users(30)  # 40 users
    assert (count(PAGE), count(PREVIEW)) == few
