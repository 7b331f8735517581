"""Alerts (docs/forecasts.md, Alerts): thresholds fired by the usage batch, at
most once per threshold, user or organization, type and month; delivered after the
commit by e-mail and webhook; failures kept and retried by ``send_alerts``."""

import datetime as dt
import json
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from tests.factories import AdminFactory, AIModelFactory, UserFactory, fund, give
from tokens.models import Alert, AlertSettings
from tokens.services.alerts import delivery, webhook

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.time_machine(dt.datetime(2026, 11, 16, 12, 0, tzinfo=dt.UTC)),
]
USAGE = "/api/v1/usage"
PUBLIC = ["93.184.216.34"]


@pytest.fixture
def world(org, admin_user):
    AIModelFactory(key="gpt", input_rate=1, output_rate=1)
    fund(org, inference=2_000_000, embedding=2_000_000)
    ava = UserFactory(organization=org, email="ava@acme.example")
    give(ava, 1_000)
    AdminFactory(organization=org, email="second-admin@acme.example")
    return {"org": org, "ava": ava}


_counter = iter(range(10**6))


def spend(gateway, email: str, tokens: int, *, when=None, token_type="inference"):
    """Report ``tokens`` spent by ``email`` (prompt only, rate 1) as one batch."""
    body = {
        "events": [
            {
                "event_id": f"e{next(_counter)}",
                "user": email,
                "model": "gpt",
                "token_type": token_type,
                "prompt_tokens": tokens,
                "completion_tokens": 0,
                "occurred_at": (when or timezone.now()).isoformat(),
            }
        ]
    }
    response = gateway.post(USAGE, body)
    assert response.json()["recorded"] == 1, response.content
    return response


def alerts(**filters):
    return list(
        Alert.objects.filter(**filters)
        .order_by("kind", "threshold")
        .values_list("kind", "threshold", "user__email", "token_type")
    )


def test_a_user_gets_80_then_100_percent_alerts_once_each(
    gateway, world, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "ava@acme.example", 700)  # 70%: nothing
    assert alerts() == []
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "ava@acme.example", 100)  # 80%
    assert alerts() == [("user_usage", 80, "ava@acme.example", "inference")]
    assert [m.to for m in mailoutbox] == [["ava@acme.example"]]
    assert "80% of their inference limit (800 of 1,000 tokens)" in mailoutbox[0].subject
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "ava@acme.example", 50)  # 85%: already fired
    assert len(mailoutbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "ava@acme.example", 150)  # 100%: blocked, admins too
    assert alerts(threshold=100) == [
        ("user_usage", 100, "ava@acme.example", "inference")
    ]
    assert mailoutbox[1].to == [
        "ava@acme.example",
        "admin@acme.example",
        "second-admin@acme.example",
    ]
    assert "is blocked until next month" in mailoutbox[1].subject
    assert Alert.objects.filter(delivered_at__isnull=True).count() == 0


def test_an_unpaid_users_100_percent_goes_to_the_user_only(
    gateway, world, mailoutbox, django_capture_on_commit_callbacks
):
    type(world["ava"]).objects.filter(pk=world["ava"].pk).update(is_paid=False)
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "ava@acme.example", 1_000)
    assert [m.to for m in mailoutbox] == [["ava@acme.example"]] * 2


def test_the_organization_pool_thresholds_go_to_its_admins(
    gateway, world, mailoutbox, django_capture_on_commit_callbacks
):
    bob = UserFactory(organization=world["org"], email="bob@acme.example")
    give(bob, 1_900_000)
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "bob@acme.example", 999_999)  # just under 50% of 2M
    assert alerts(kind="org_usage") == []
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "bob@acme.example", 1)
    assert alerts(kind="org_usage") == [("org_usage", 50, None, "inference")]
    org_mail = [m for m in mailoutbox if "pool" in m.subject]
    assert [m.to for m in org_mail] == [
        ["admin@acme.example", "second-admin@acme.example"]
    ]
    assert "has used 50% of its inference pool" in org_mail[0].subject
    # 80% and 100% fire together when one batch jumps past both.
    with django_capture_on_commit_callbacks(execute=True):
        spend(gateway, "bob@acme.example", 1_000_000)
    assert [a[1] for a in alerts(kind="org_usage")] == [50, 80, 100]
    assert alerts(kind="org_usage", token_type="embedding") == []


def test_usage_of_last_month_reported_late_fires_nothing(gateway, world):
    spend(
        gateway,
        "ava@acme.example",
        1_000,
        when=dt.datetime(2026, 10, 31, 23, 0, tzinfo=dt.UTC),
    )
    assert alerts() == []


def test_switched_off_alerts_do_not_fire(gateway, world):
    AlertSettings.objects.create(
        organization=world["org"], org_enabled=False, user_enabled=False
    )
    spend(gateway, "ava@acme.example", 1_000)
    assert alerts() == []


def test_custom_thresholds_are_used(gateway, world):
    AlertSettings.objects.create(organization=world["org"], user_thresholds=[30])
    spend(gateway, "ava@acme.example", 300)
    assert alerts() == [("user_usage", 30, "ava@acme.example", "inference")]


def test_a_failed_email_stays_undelivered_and_send_alerts_retries_it(
    gateway, world, mailoutbox, django_capture_on_commit_callbacks
):
    with (
        mock.patch.object(
            delivery, "send_templated_email", side_effect=OSError("SMTP down")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        spend(gateway, "ava@acme.example", 800)
    alert = Alert.objects.get()
    assert alert.delivered_at is None and alert.emailed_at is None
    assert alert.attempts == 1
    assert "SMTP down" in alert.last_error
    assert mailoutbox == []
    call_command("send_alerts")
    alert.refresh_from_db()
    assert alert.delivered_at is not None and alert.attempts == 2
    assert alert.last_error == ""
    assert [m.to for m in mailoutbox] == [["ava@acme.example"]]
    call_command("send_alerts")  # nothing left: no second e-mail
    assert len(mailoutbox) == 1


def test_send_alerts_dry_run_sends_nothing(world, capsys, mailoutbox):
    Alert.objects.create(
        organization=world["org"],
        token_type="inference",
        month=dt.date(2026, 11, 1),
        kind=Alert.Kind.ORG_USAGE,
        threshold=50,
    )
    call_command("send_alerts", "--dry-run")
    assert "1 undelivered alert(s); nothing sent." in capsys.readouterr().out
    assert mailoutbox == []


def test_the_webhook_receives_a_slack_compatible_payload_after_the_commit(
    gateway, world, django_capture_on_commit_callbacks
):
    AlertSettings.objects.create(
        organization=world["org"], webhook_url="https://hooks.example.com/x"
    )
    sent = []

    def fake_open(request, timeout):
        sent.append((request.full_url, json.loads(request.data), timeout))
        response = mock.MagicMock()
        response.__enter__.return_value.status = 200
        return response

    with (
        mock.patch.object(webhook, "resolve", return_value=PUBLIC),
        mock.patch.object(webhook._opener, "open", side_effect=fake_open),
    ):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            spend(gateway, "ava@acme.example", 800)
        assert sent == []  # not before the commit
        for callback in callbacks:
            callback()
    url, body, timeout = sent[0]
    assert url == "https://hooks.example.com/x" and timeout == webhook.TIMEOUT_SECONDS
    assert body["text"].startswith("ava@acme.example has used 80%")
    assert body["alert"]["kind"] == "user_usage"
    assert body["alert"]["threshold"] == 80
    assert body["alert"]["used"] == 800 and body["alert"]["budget"] == 1_000
    assert Alert.objects.get().webhook_at is not None


def test_a_failed_webhook_is_retried_without_sending_the_email_again(
    gateway, world, mailoutbox, django_capture_on_commit_callbacks
):
    AlertSettings.objects.create(
        organization=world["org"], webhook_url="https://hooks.example.com/x"
    )
    with (
        mock.patch.object(webhook, "resolve", return_value=PUBLIC),
        mock.patch.object(webhook._opener, "open", side_effect=OSError("timed out")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        spend(gateway, "ava@acme.example", 800)
    alert = Alert.objects.get()
    assert alert.emailed_at is not None and alert.delivered_at is None
    assert "webhook: timed out" in alert.last_error
    ok = mock.MagicMock()
    ok.__enter__.return_value.status = 204
    with (
        mock.patch.object(webhook, "resolve", return_value=PUBLIC),
        mock.patch.object(webhook._opener, "open", return_value=ok),
    ):
        call_command("send_alerts")
    alert.refresh_from_db()
    assert alert.delivered_at is not None
    assert len(mailoutbox) == 1


@pytest.mark.parametrize(
    ("url", "addresses", "message"),
    [
        ("http://hooks.example.com/x", PUBLIC, "must start with https://"),
        ("ftp://hooks.example.com/x", PUBLIC, "must start with https://"),
        ("https://user:pw@hooks.example.com/", PUBLIC, "no user name or password"),
        ("https://localhost/x", ["127.0.0.1"], "private, loopback or reserved"),
        ("https://10.0.0.7/x", ["10.0.0.7"], "private, loopback or reserved"),
        ("https://metadata/x", ["169.254.169.254"], "private, loopback or reserved"),
        ("https://v6/x", ["::1"], "private, loopback or reserved"),
        ("https://mapped/x", ["::ffff:192.168.1.1"], "private, loopback or reserved"),
        ("https://mixed/x", ["93.184.216.34", "10.1.1.1"], "private, loopback"),
    ],
)
def test_webhook_urls_that_could_reach_the_platforms_network_are_refused(
    settings, url, addresses, message
):
    settings.DEBUG = settings.DEMO_MODE = False
    with (
        mock.patch.object(webhook, "resolve", return_value=addresses),
        pytest.raises(ValidationError) as refusal,
    ):
        webhook.check_url(url)
    assert message in " ".join(refusal.value.messages)


def test_plain_http_is_allowed_only_in_demo_mode(settings):
    settings.DEBUG, settings.DEMO_MODE = False, True
    with mock.patch.object(webhook, "resolve", return_value=PUBLIC):
        assert webhook.check_url(" http://hooks.example.com/x ") == (
            "http://hooks.example.com/x"
        )


def test_an_unknown_webhook_host_is_refused(settings):
    settings.DEBUG = settings.DEMO_MODE = False
    with (
        mock.patch.object(webhook, "resolve", side_effect=OSError("no such host")),
        pytest.raises(ValidationError) as refusal,
    ):
        webhook.check_url("https://nowhere.invalid/x")
    assert "could not be found" in refusal.value.messages[0]


def test_thresholds_fire_again_in_the_next_month_and_not_across_the_edge(
    gateway, world, time_machine
):
    last_second = dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=dt.UTC)
    time_machine.move_to(last_second, tick=False)
    spend(gateway, "ava@acme.example", 800, when=last_second)
    assert list(Alert.objects.values_list("month", "threshold")) == [
        (dt.date(2026, 11, 1), 80)
    ]
    # 00:00:00 on 1 December: a new month, the counter starts at 0.
    first_second = dt.datetime(2026, 12, 1, 0, 0, 0, tzinfo=dt.UTC)
    time_machine.move_to(first_second, tick=False)
    spend(gateway, "ava@acme.example", 100, when=first_second)
    assert Alert.objects.count() == 1
    spend(gateway, "ava@acme.example", 700, when=first_second)
    assert sorted(Alert.objects.values_list("month", "threshold")) == [
        (dt.date(2026, 11, 1), 80),
        (dt.date(2026, 12, 1), 80),
    ]


@pytest.mark.django_db(transaction=True)
def test_alerts_are_delivered_in_a_thread_of_their_own_after_the_commit(
    gateway, world, mailoutbox, settings
):
    """In production the usage call that fires an alert does not wait for its
    e-mail or webhook: the commit hands the alert to a thread of its own."""
    settings.ALERTS_DELIVER_IN_BACKGROUND = True
    threads = []
    real = delivery.deliver_soon

    def recorded(ids):
        thread = real(ids)
        threads.append(thread)
        return thread

    with mock.patch.object(delivery, "deliver_soon", recorded):
        spend(gateway, "ava@acme.example", 800)  # 80%
    assert len(threads) == 1 and threads[0] is not None
    assert threads[0].name == "alerts"
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()
    alert = Alert.objects.get()
    assert alert.delivered_at is not None
    assert [m.to for m in mailoutbox] == [["ava@acme.example"]]
