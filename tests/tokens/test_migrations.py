"""Data migrations, run forwards and backwards on the test database."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import AIModelFactory, OrganizationFactory, UserFactory
from tokens.ledger.rollups import _check_monthly, _check_org_daily

BEFORE = ("tokens", "0005_covering_usage_indexes")
ROLLUPS = ("tokens", "0006_usage_rollups")


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True)
def test_rollups_are_backfilled_from_daily_usage_and_removed_on_reverse():
    org, other = OrganizationFactory(), OrganizationFactory()
    ava = UserFactory(organization=org, email="ava@acme.example")
    bob = UserFactory(organization=org, email="bob@acme.example")
    gus = UserFactory(organization=other, email="gus@globex.example")
    chat, big = AIModelFactory(key="chat"), AIModelFactory(key="big")
    try:
        apps = migrate(BEFORE)
        daily = apps.get_model("tokens", "DailyUsage")
        rows = [
            # (organization, user, model, type, day, tokens, events)
            (org, ava, chat, "inference", dt.date(2026, 7, 5), 100, 2),
            (org, ava, big, "inference", dt.date(2026, 7, 5), 40, 1),
            (org, ava, chat, "inference", dt.date(2026, 7, 30), 7, 1),
            (org, bob, chat, "inference", dt.date(2026, 7, 5), 5, 1),
            (org, bob, big, "embedding", dt.date(2026, 7, 20), 11, 2),
            (org, bob, chat, "embedding", dt.date(2026, 8, 1), 9, 3),
            (other, gus, chat, "inference", dt.date(2026, 7, 5), 50, 5),
        ]
        daily.objects.bulk_create(
            daily(
                organization_id=o.pk,
                user_id=u.pk,
                model_id=m.pk,
                token_type=t,
                day=d,
                tokens=n,
                events=e,
            )
            for o, u, m, t, d, n, e in rows
        )

        apps = migrate(ROLLUPS)
        org_daily = apps.get_model("tokens", "OrgDailyUsage")
        monthly = apps.get_model("tokens", "MonthlyUsage")
        assert sorted(
            org_daily.objects.values_list(
                "organization_id", "model_id", "token_type", "day", "tokens", "events"
            )
        ) == sorted(
            [
                (org.pk, chat.pk, "inference", dt.date(2026, 7, 5), 105, 3),
                (org.pk, big.pk, "inference", dt.date(2026, 7, 5), 40, 1),
                (org.pk, chat.pk, "inference", dt.date(2026, 7, 30), 7, 1),
                (org.pk, chat.pk, "embedding", dt.date(2026, 8, 1), 9, 3),
                (org.pk, big.pk, "embedding", dt.date(2026, 7, 20), 11, 2),
                (other.pk, chat.pk, "inference", dt.date(2026, 7, 5), 50, 5),
            ]
        )
        # One row per organization, user and month: each type's tokens, events
        # and last day (none without usage of the type), then the totals.
        assert sorted(
            monthly.objects.values_list(
                "organization_id",
                "user_id",
                "month",
                "inference_tokens",
                "inference_events",
                "inference_last_day",
                "embedding_tokens",
                "embedding_events",
                "embedding_last_day",
                "tokens",
                "events",
                "last_day",
            )
        ) == sorted(
            [
                (org.pk, ava.pk, dt.date(2026, 7, 1), 147, 4, dt.date(2026, 7, 30),
                 0, 0, None, 147, 4, dt.date(2026, 7, 30)),
                (org.pk, bob.pk, dt.date(2026, 7, 1), 5, 1, dt.date(2026, 7, 5),
                 11, 2, dt.date(2026, 7, 20), 16, 3, dt.date(2026, 7, 20)),
                (org.pk, bob.pk, dt.date(2026, 8, 1), 0, 0, None,
                 9, 3, dt.date(2026, 8, 1), 9, 3, dt.date(2026, 8, 1)),
                (other.pk, gus.pk, dt.date(2026, 7, 1), 50, 5, dt.date(2026, 7, 5),
                 0, 0, None, 50, 5, dt.date(2026, 7, 5)),
            ]
        )  # fmt: skip
        # The rollups agree with the daily rollup (there are no events here: only
        # the invariants between the rollups are of interest; the other checks
        # read columns that later migrations add).
        assert not [*_check_org_daily(None), *_check_monthly(None)]

        migrate(BEFORE)  # the reverse empties the rollups, then drops them
        assert "tokens_monthlyusage" not in connection.introspection.table_names()
    finally:
        # Back to the latest state for the tests that follow.
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("tokens")[0])


@pytest.mark.django_db(transaction=True)
def test_counters_of_a_user_who_moved_are_split_per_organization():
    """Migration 0009: a counter that held usage of two organizations (the old
    per-user key) is rebuilt from the events and open holds, one per organization."""
    first, second = OrganizationFactory(), OrganizationFactory()
    mover = UserFactory(organization=second, email="mover@example.com")
    stayer = UserFactory(organization=first, email="stayer@example.com")
    model = AIModelFactory(key="chat")
    november = dt.date(2026, 11, 1)
    try:
        apps = migrate(("tokens", "0008_drop_redundant_indexes"))
        event = apps.get_model("tokens", "UsageEvent")
        counter = apps.get_model("tokens", "UsageCounter")
        for n, (org, user, tokens) in enumerate(
            [(first, mover, 100), (second, mover, 40), (first, stayer, 7)]
        ):
            event.objects.create(
                event_id=f"e{n}",
                organization_id=org.pk,
                user_id=user.pk,
                model_id=model.pk,
                token_type="inference",
                prompt_tokens=tokens,
                completion_tokens=0,
                tokens=tokens,
                input_rate=1,
                output_rate=1,
                occurred_at=dt.datetime(2026, 11, 10, tzinfo=dt.UTC),
                payload_digest="x",
            )
        # The old mis-attribution: one counter of the first organization for both.
        for org, user, used in ((first, mover, 140), (first, stayer, 7)):
            counter.objects.create(
                organization_id=org.pk,
                user_id=user.pk,
                token_type="inference",
                period=november,
                used=used,
            )
        apps = migrate(("tokens", "0009_counter_per_organization"))
        counter = apps.get_model("tokens", "UsageCounter")
        assert sorted(
            counter.objects.values_list("organization_id", "user_id", "used", "held")
        ) == sorted(
            [
                (first.pk, mover.pk, 100, 0),
                (second.pk, mover.pk, 40, 0),
                (first.pk, stayer.pk, 7, 0),
            ]
        )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("tokens")[0])
