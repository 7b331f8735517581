"""A lost answer after commit (issue 14, defect 8): when the session cannot be saved
after the view committed (the database connection dropped, or the session row was
deleted meanwhile), the admin gets a page that says the change may have been saved
and where to check, never Django's bare "Bad Request (400)"."""

from contextlib import contextmanager
from unittest import mock

import pytest
from django.contrib.sessions.models import Session
from django.db import OperationalError, connection
from django.urls import reverse

from tests.factories import UserFactory, fund, give
from tokens import services
from tokens.models import AllocationChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_of_org(org, admin_user):
    fund(org)
    member = UserFactory(organization=org, email="ava@acme.example")
    give(member, 300_000)
    return member


def _limit_url(member):
    return reverse("tokens:user_limit_edit", args=[member.pk, "inference"])


@contextmanager
def _session_update_fails():
    """The database goes away for the session's UPDATE (the last write of a
    request, after the view's transaction committed)."""

    def wrapper(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE") and "django_session" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def _assert_friendly(response, status):
    body = response.content.decode()
    assert response.status_code == status
    assert "Bad Request (400)" not in body
    assert "Your change may have been saved" in body
    assert "Activity log" in body
    assert reverse("analytics:activity") in body
    assert "/panel/users/" in body  # back to where they came from
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response


def test_database_lost_after_commit_answers_the_truth_and_the_change_is_saved(
    admin_client, member_of_org
):
    with _session_update_fails():
        response = admin_client.post(
            _limit_url(member_of_org),
            {"limit": "400000"},
            headers={"referer": "http://testserver/panel/users/"},
        )
    _assert_friendly(response, 503)
    assert response["Retry-After"]
    assert "connection to the database broke" in response.content.decode()
    change = AllocationChange.objects.filter(user=member_of_org).latest("id")
    assert change.new_limit == 400_000


def test_session_deleted_during_the_request_answers_the_truth(
    admin_client, member_of_org
):
    real = services.allocation_set_limit

    def set_limit_then_lose_the_session(**kwargs):
        result = real(**kwargs)
        Session.objects.all().delete()  # e.g. a sign-out in another tab
        return result

    with mock.patch.object(
        services, "allocation_set_limit", set_limit_then_lose_the_session
    ):
        response = admin_client.post(
            _limit_url(member_of_org),
            {"limit": "400000"},
            headers={"referer": "http://testserver/panel/users/"},
        )
    _assert_friendly(response, 400)
    assert "session ended" in response.content.decode()
    assert response.cookies["sessionid"].value == ""  # the stale cookie is dropped
    assert (
        AllocationChange.objects.filter(user=member_of_org).latest("id").new_limit
        == 400_000
    )


def test_a_foreign_referer_is_not_offered_as_the_way_back(admin_client, member_of_org):
    with _session_update_fails():
        response = admin_client.post(
            _limit_url(member_of_org),
            {"limit": "400000"},
            headers={"referer": "https://evil.example/phish"},
        )
    assert response.status_code == 503
    assert "evil.example" not in response.content.decode()
