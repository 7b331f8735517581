"""Forecasts on the pages (docs/forecasts.md) and the Alerts page: the figures come
from the rollups (never raw events), each page costs a constant number of queries,
and the alert settings are saved through the service with one audit event."""

import datetime as dt
import math
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent
from asksage_admin.lib import forecasts as fc
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.models import Alert, AlertSettings, DailyUsage, OrgDailyUsage
from tokens.selectors.forecasts import org_forecasts, user_forecasts
from tokens.services.alerts import runout_check, webhook

NOW = dt.datetime(2026, 11, 16, 12, 0, tzinfo=dt.UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]
TODAY = NOW.date()
ALERTS = reverse("tokens:alerts")
SETTINGS = reverse("tokens:alert_settings_update")
TEST = reverse("tokens:alert_webhook_test")


def org_history(org, daily: dict[dt.date, int], model=None, stripes=3):
    """Organization daily rollup rows, each day split over ``stripes`` stripes
    (the readers must add them up)."""
    model = model or AIModelFactory(key="gpt")
    for day, tokens in daily.items():
        share = tokens // stripes
        for stripe in range(stripes):
            extra = tokens - share * stripes if stripe == 0 else 0
            OrgDailyUsage.objects.create(
                organization=org,
                model=model,
                token_type="inference",
                day=day,
                stripe=stripe,
                tokens=share + extra,
                events=1,
            )


def last_days(n: int, value: int) -> dict[dt.date, int]:
    return {TODAY - dt.timedelta(days=i): value for i in range(1, n + 1)}


@pytest.fixture
def busy_org(org):
    org.activated_at = NOW - dt.timedelta(days=90)
    org.save()
    fund(org, inference=2_000_000, embedding=2_000_000)
    # 100,000 a day for 28 days (and today so far: 50,000): the pool of 2M lasts
    # to the 20th of November.
    org_history(org, {**last_days(28, 100_000), TODAY: 50_000})
    return org


def test_org_forecast_sums_the_stripes_and_projects_from_the_rollup(busy_org):
    f = org_forecasts(busy_org, NOW)["inference"]
    month_used = 15 * 100_000 + 50_000
    assert f.forecast.used == month_used
    assert f.forecast.rate.method == fc.METHOD_WEEKDAY
    # Half of today and 14 more days at 100,000.
    assert f.forecast.projected == month_used + 50_000 + 14 * 100_000
    assert f.forecast.runout == dt.date(2026, 11, 20)
    assert f.pool == f.next_pool == 2_000_000
    assert f.lots_this_month == math.ceil((3_000_000 - 2_000_000) / 2_000_000) == 1
    assert f.forecast.next_month == 31 * 100_000
    assert f.lots_next_month == 1  # 3.1M against 2M: one more lot of 2M
    assert org_forecasts(busy_org, NOW)["embedding"].forecast.projected == 0


def test_a_new_organization_projects_from_its_own_days_only(org):
    org.activated_at = NOW - dt.timedelta(days=1, hours=12)  # yesterday, noon
    org.save()
    fund(org, inference=2_000_000, embedding=2_000_000)
    # Zeros before activation would dilute the rate; only yesterday counts.
    org_history(org, {TODAY - dt.timedelta(days=1): 40_000, TODAY: 20_000})
    f = org_forecasts(org, NOW)["inference"]
    assert f.forecast.rate.method == fc.METHOD_SHORT
    assert f.forecast.rate.on(TODAY) == 40_000
    assert f.forecast.projected == 60_000 + 20_000 + 14 * 40_000


def test_org_forecasts_cost_two_queries_whatever_the_history(busy_org):
    with CaptureQueriesContext(connection) as ctx:
        org_forecasts(busy_org, NOW)
    tables = " ".join(q["sql"] for q in ctx.captured_queries)
    assert len(ctx.captured_queries) == 2
    assert "tokens_usageevent" not in tables and "tokens_dailyusage" not in tables


def test_the_user_projection_uses_the_last_seven_days(org, member):
    model = AIModelFactory(key="gpt")
    for i in range(1, 8):
        DailyUsage.objects.create(
            organization=org,
            user=member,
            model=model,
            token_type="inference",
            day=TODAY - dt.timedelta(days=i),
            tokens=1_000,
            events=1,
        )
    (f, _embedding) = user_forecasts(org, member, {"inference": 30_000}, NOW)
    # 16 days of November so far were not all in the last 7: the month so far is
    # the 7 days (7,000); 14.5 days left at 1,000.
    assert f.used == 7_000
    assert f.projected == 7_000 + 14_500
    assert f.percent == 72 and not f.likely_to_hit


def test_runout_alert_fires_once_for_a_pool_projected_to_run_out(
    busy_org, admin_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = runout_check(NOW)
        again = runout_check(NOW)
    assert len(first) == 1 and again == []
    alert = Alert.objects.get()
    assert (alert.kind, alert.token_type, alert.user_id) == (
        "org_runout",
        "inference",
        None,
    )
    assert alert.detail["runout"] == "2026-11-20"
    assert "projected to run out on 2026-11-20" in mailoutbox[0].subject
    assert mailoutbox[0].to == ["admin@acme.example"]


def test_runout_alert_respects_the_setting(busy_org):
    AlertSettings.objects.create(organization=busy_org, runout_enabled=False)
    assert runout_check(NOW) == []


# --- pages ----------------------------------------------------------------------------


def test_distribution_shows_the_pool_forecast_and_the_lots(admin_client, busy_org):
    page = admin_client.get(reverse("tokens:distribution")).content.decode()
    assert "3,000,000 (150% of the pool)" in page
    assert "2026-11-20" in page
    assert "1 more lot of 2,000,000" in page


def test_statistics_draws_the_projection_and_its_table(admin_client, busy_org):
    response = admin_client.get(reverse("analytics:statistics"))
    chart = response.context["daily_chart"]
    projected = next(s for s in chart["datasets"] if s["key"] == "projection-inference")
    by_day = dict(zip(chart["labels"], projected["data"], strict=True))
    assert by_day["2026-11-15"] == 0  # the past has no projection
    assert by_day["2026-11-16"] == 50_000  # the rest of today
    assert by_day["2026-11-30"] == 100_000
    rows = dict(response.context["projection_rows"])
    assert rows[dt.date(2026, 11, 30)]["inference"] == 100_000
    assert 'id="table-projection"' in response.content.decode()
    # A past month has no forecast.
    past = admin_client.get(reverse("analytics:statistics"), {"month": "2026-10"})
    assert past.status_code == 200
    assert past.context["forecasts"] is None


def test_me_shows_the_month_end_projection(client, org, member):
    fund(org)
    give(member, 20_000)
    model = AIModelFactory(key="gpt")
    for i in range(1, 8):
        DailyUsage.objects.create(
            organization=org,
            user=member,
            model=model,
            token_type="inference",
            day=TODAY - dt.timedelta(days=i),
            tokens=1_000,
            events=1,
        )
    client.force_login(member)
    page = client.get(reverse("tokens:me")).content.decode()
    assert (
        "about <strong>21,500</strong> by the end of the month (108% of your limit)"
        in page
    )
    assert "Likely to hit the limit" in page


def test_users_table_sorts_by_likely_to_hit_the_limit(admin_client, org):
    fund(org)
    model = AIModelFactory(key="gpt")
    expected = {}
    for name, limit, per_day in (
        ("low", 100_000, 100),
        ("high", 10_000, 1_000),
        ("none", 0, 0),
    ):
        user = UserFactory(organization=org, email=f"{name}@acme.example")
        if limit:
            give(user, limit)
        for i in range(1, 8):
            DailyUsage.objects.create(
                organization=org,
                user=user,
                model=model,
                token_type="inference",
                day=TODAY - dt.timedelta(days=i),
                tokens=per_day,
                events=1,
            )
        if limit:
            expected[name] = (
                100
                * fc.recent_projection(month_used=0, last_days=7 * per_day, now=NOW)
                / limit
            )
    response = admin_client.get(
        reverse("tokens:user_list"), {"sort": "-likely_percent"}
    )
    rows = [
        (r.record.email, r.record.likely_percent)
        for r in response.context["table"].page.object_list
    ]
    assert [e for e, _p in rows][:2] == ["high@acme.example", "low@acme.example"]
    percent = dict(rows)
    # The SQL equals the pure function (the counter is empty: used so far 0).
    assert percent["high@acme.example"] == pytest.approx(expected["high"])
    assert percent["low@acme.example"] == pytest.approx(expected["low"])
    assert percent["none@acme.example"] == -1
    assert "Likely to hit the limit" in response.content.decode()


# --- the Alerts page ------------------------------------------------------------------


VALID = {
    "org_enabled": "on",
    "org_thresholds": "50, 90, 100",
    "runout_enabled": "on",
    "user_enabled": "on",
    "user_thresholds": "75,100",
    "webhook_url": "https://hooks.example.com/x",
}


def settings_events() -> int:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.ORG_SETTINGS_CHANGED,
        target_type="tokens.alertsettings",
    ).count()


def test_alerts_page_shows_the_defaults_and_the_alerts(admin_client, org, member):
    Alert.objects.create(
        organization=org,
        user=member,
        token_type="inference",
        month=dt.date(2026, 11, 1),
        kind=Alert.Kind.USER_USAGE,
        threshold=80,
        used=800,
        budget=1_000,
        recipients=["member@acme.example"],
    )
    page = admin_client.get(ALERTS).content.decode()
    assert 'value="50, 80, 100"' in page and 'value="80, 100"' in page
    assert "member@acme.example" in page and "Not delivered" in page


def test_alerts_page_query_count_is_constant_in_alerts(admin_client, org, member):
    def add(n):
        for _ in range(n):
            Alert.objects.create(
                organization=org,
                user=member,
                token_type="inference",
                month=dt.date(2026, 11, 1),
                kind=Alert.Kind.USER_USAGE,
                threshold=Alert.objects.count() + 1,
            )

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(ALERTS).status_code == 200
        return len(ctx.captured_queries)

    add(1)
    admin_client.get(ALERTS)
    few = count()
    add(40)
    assert count() == few


def test_saving_settings_writes_them_with_one_audit_event(admin_client, org):
    with mock.patch.object(webhook, "resolve", return_value=["93.184.216.34"]):
        response = admin_client.post(SETTINGS, VALID)
        assert response.status_code == 302
        saved = AlertSettings.objects.get(organization=org)
        assert saved.org_thresholds == [50, 90, 100]
        assert saved.user_thresholds == [75, 100]
        assert saved.webhook_url == "https://hooks.example.com/x"
        assert settings_events() == 1
        event = AuditEvent.objects.get(target_type="tokens.alertsettings")
        assert event.before["org_thresholds"] == [50, 80, 100]
        assert event.after["org_thresholds"] == [50, 90, 100]
        # The same values again: nothing changed, no event.
        admin_client.post(SETTINGS, VALID)
        assert settings_events() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("org_thresholds", "0, 50", "between 1 and 100"),
        ("user_thresholds", "80, 120", "between 1 and 100"),
        ("org_thresholds", "fifty", "whole percentages separated by commas"),
        ("org_thresholds", "10,20,30,40,50,60", "one to 5 thresholds"),
        ("webhook_url", "http://hooks.example.com/x", "must start with https://"),
        ("webhook_url", "https://10.0.0.1/x", "private, loopback or reserved"),
    ],
)
def test_bad_settings_are_refused_with_the_reason_and_nothing_saved(
    admin_client, org, settings, field, value, message
):
    settings.DEBUG = settings.DEMO_MODE = False
    with mock.patch.object(webhook, "resolve", return_value=["10.0.0.1"]):
        response = admin_client.post(SETTINGS, {**VALID, field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not AlertSettings.objects.exists()
    assert settings_events() == 0


def test_send_test_posts_to_the_saved_webhook(admin_client, org):
    AlertSettings.objects.create(
        organization=org, webhook_url="https://hooks.example.com/x"
    )
    ok = mock.MagicMock()
    ok.__enter__.return_value.status = 200
    with (
        mock.patch.object(webhook, "resolve", return_value=["93.184.216.34"]),
        mock.patch.object(webhook._opener, "open", return_value=ok) as opened,
    ):
        response = admin_client.post(TEST, follow=True)
    assert (
        "A test message was sent to https://hooks.example.com/x."
        in response.content.decode()
    )
    assert b'"kind": "test"' in opened.call_args.args[0].data


def test_send_test_says_why_it_failed(admin_client, org):
    response = admin_client.post(TEST, follow=True)
    assert "Save a webhook URL first." in response.content.decode()
    AlertSettings.objects.create(
        organization=org, webhook_url="https://hooks.example.com/x"
    )
    with (
        mock.patch.object(webhook, "resolve", return_value=["93.184.216.34"]),
        mock.patch.object(webhook._opener, "open", side_effect=OSError("timed out")),
    ):
        response = admin_client.post(TEST, follow=True)
    assert "The webhook call failed: timed out" in response.content.decode()


def test_the_audit_trail_keeps_only_the_webhooks_host(admin_client, org):
    with mock.patch.object(webhook, "resolve", return_value=["93.184.216.34"]):
        admin_client.post(
            SETTINGS, {**VALID, "webhook_url": "https://hooks.example.com/T0/B1/s3cr3t"}
        )
    event = AuditEvent.objects.get(target_type="tokens.alertsettings")
    assert event.before["webhook_url"] == ""
    assert event.after["webhook_url"] == "https://hooks.example.com/…"
    assert "s3cr3t" not in str(event.after)


@pytest.mark.parametrize("query", [{"per_page": "-1"}, {"page": "-1"}, {"sort": "x"}])
def test_alerts_page_ignores_bad_paging_and_sorting(admin_client, query):
    assert admin_client.get(ALERTS, query).status_code == 200
