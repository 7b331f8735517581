"""Personas (docs/development.md, House style): anonymous, member, org admin with MFA,
admin of another organization, sales staff, superuser. Each signed-in persona is a test
client."""

import pytest
from django.contrib.auth.models import Group
from django.core import signals
from django.db import close_old_connections, connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import service_key_create
from tests.factories import AdminFactory, OrganizationFactory, UserFactory


def pytest_collection_modifyitems(config, items):
    """The ``postgres`` marker, applied here once: on any other database such a test
    is skipped with the marker's reason (``@pytest.mark.postgres(reason=...)``)."""
    if connection.vendor == "postgresql":
        return
    for item in items:
        mark = item.get_closest_marker("postgres")
        if mark is not None:
            why = mark.kwargs.get("reason", "it tests PostgreSQL itself")
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL: {why}"))


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Finished before the test database is dropped: on PostgreSQL, end the idle
    sessions other threads left on it (the live server keeps one per keep-alive
    connection of the browser until the socket closes), or dropping the database
    fails ("is being accessed by other users"). Waits up to 5 s for each to end."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def sign_in(user, *, mfa: bool = False) -> Client:
    """A client signed in as ``user``; with ``mfa`` it has also passed TOTP."""
    client = Client()
    client.force_login(user)
    if mfa:
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme Corp")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Globex")


@pytest.fixture
def member(org):
    return UserFactory(organization=org, email="member@acme.example")


@pytest.fixture
def admin_user(org):
    return AdminFactory(organization=org, email="admin@acme.example")


@pytest.fixture
def other_admin_user(other_org):
    return AdminFactory(organization=other_org, email="admin@globex.example")


@pytest.fixture
def sales_user(db):
    user = UserFactory(organization=None, email="sales@vendor.example", is_staff=True)
    user.groups.add(Group.objects.get(name="Sales"))
    return user


@pytest.fixture
def superuser(db):
    return UserFactory(
        organization=None,
        email="root@vendor.example",
        is_staff=True,
        is_superuser=True,
    )


@pytest.fixture
def anon_client():
    return Client()


@pytest.fixture
def member_client(member):
    return sign_in(member)


@pytest.fixture
def admin_client(admin_user):
    return sign_in(admin_user, mfa=True)


@pytest.fixture
def other_admin_client(other_admin_user):
    return sign_in(other_admin_user, mfa=True)


@pytest.fixture
def sales_client(sales_user):
    return sign_in(sales_user)


@pytest.fixture
def superuser_client(superuser):
    return sign_in(superuser, mfa=True)


@pytest.fixture
def service_key(db):
    """An unbound (platform gateway) key and its secret."""
    return service_key_create(actor=None, name="gateway")


@pytest.fixture
def gateway(service_key):
    """A client that speaks to /api/v1/ with the platform gateway's key."""
    return ApiClient(service_key[1])


class ApiClient:
    def __init__(self, secret: str):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {secret}"}

    def post(self, path: str, body=None, **extra):
        import json

        return self.client.post(
            path,
            data=json.dumps(body) if body is not None else "",
            content_type="application/json",
            headers=self.headers,
            **extra,
        )

    def get(self, path: str, params=None):
        return self.client.get(path, params or {}, headers=self.headers)


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """As Django's test client does: a request's end must not close the database
    connection that holds the test's transaction (PostgreSQL)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
