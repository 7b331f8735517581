""" "Last active" on User Management (docs/product.md, User Management): the later of
the last day with usage (the gateway) and the last sign-in to this console, so a
user who only works through the gateway is not shown as never active."""

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse

from tests.factories import UserFactory
from tokens.models import MonthlyUsage

pytestmark = pytest.mark.django_db
LIST = reverse("tokens:user_list")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def used_on(org, user, day: dt.date) -> None:
    MonthlyUsage.objects.create(
        organization=org,
        user=user,
        month=day.replace(day=1),
        inference_tokens=100,
        inference_events=1,
        tokens=100,
        events=1,
        last_day=day,
        inference_last_day=day,
    )


@pytest.fixture
def people(org, admin_user):
    gateway_only = UserFactory(organization=org, email="gw@acme.example")
    used_on(org, gateway_only, dt.date(2026, 10, 3))
    used_on(org, gateway_only, dt.date(2026, 11, 18))  # the newest month wins
    console_later = UserFactory(
        organization=org,
        email="console@acme.example",
        last_active_at=dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC),
    )
    used_on(org, console_later, dt.date(2026, 11, 2))
    usage_later = UserFactory(
        organization=org,
        email="usage@acme.example",
        last_active_at=dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.UTC),
    )
    used_on(org, usage_later, dt.date(2026, 11, 10))
    UserFactory(organization=org, email="never@acme.example")
    return org


def cells(response) -> dict[str, str]:
    """email → the Last active cell of each row."""
    html = response.content.decode()
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
    found = {}
    for row in rows:
        email = re.search(r"[\w.]+@acme\.example", row)
        # The Last active cell (the panel's table marks it col-wide).
        tds = re.findall(r'<td class="[^"]*col-wide[^"]*"[^>]*>(.*?)</td>', row, re.S)
        if email and tds:
            found[email.group(0)] = re.sub(r"<[^>]+>", "", tds[-1]).strip()
    return found


@pytest.mark.time_machine(NOW)
def test_last_active_is_the_later_of_usage_and_sign_in(admin_client, people):
    shown = cells(admin_client.get(LIST, {"per_page": 100}))
    assert shown["gw@acme.example"] == "2026-11-18"
    assert shown["console@acme.example"] == "2026-11-19"
    assert shown["usage@acme.example"] == "2026-11-10"
    assert shown["never@acme.example"] == "—"


@pytest.mark.time_machine(NOW)
def test_last_active_sorts_with_never_first(admin_client, people):
    order = list(cells(admin_client.get(LIST, {"sort": "last_active_at"})))
    # The admin's own visit (now) is the latest; never-active users come first.
    assert order[0] == "never@acme.example"
    assert order.index("usage@acme.example") < order.index("gw@acme.example")
    assert order.index("gw@acme.example") < order.index("console@acme.example")


@pytest.mark.time_machine(NOW)
def test_the_column_says_what_it_means(admin_client, people):
    html = admin_client.get(LIST).content.decode()
    assert "the last sign-in to this console, in UTC" in html


@pytest.mark.time_machine(NOW)
def test_the_export_and_the_user_page_agree(admin_client, people):
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(admin_client.get(reverse("tokens:user_export"))).decode()
            )
        )
    )
    by_email = {row["Email"]: row["Last active"] for row in rows}
    assert by_email["gw@acme.example"] == "2026-11-18"
    assert by_email["never@acme.example"] == ""
    gateway_only = people.members.get(email="gw@acme.example")
    page = admin_client.get(reverse("tokens:user_detail", args=[gateway_only.pk]))
    assert "2026-11-18" in page.content.decode()
