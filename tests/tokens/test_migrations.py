"""Data migrations, run forwards and backwards on the test database."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import AIModelFactory, OrganizationFactory, UserFactory
from tokens.ledger import _check_monthly, _check_org_daily

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
