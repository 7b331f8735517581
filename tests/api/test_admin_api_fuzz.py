"""schemathesis against the admin API, in-process through WSGI, with the admin's
read-write token: every operation of the generated document gets the boundary
cases schemathesis derives from its schemas and random valid and invalid requests;
no answer may be a 5xx, and each must be a documented status with the documented
content type and body (docs/admin-api.md).

Bounded like the gateway's (``MAX_EXAMPLES`` random requests per operation); marked
``fuzz``."""

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.access_tokens import access_token_create
from api.admin import admin_api
from tests.factories import UserFactory, fund, give
from tokens.services.requests import token_request_submit

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(
    admin_api.get_openapi_schema(path_prefix="/api/v1/admin")
)
APP = get_wsgi_application()


@pytest.fixture
def fuzz_world(org, admin_user, settings, wsgi_keeps_the_test_connection):
    settings.ALLOWED_HOSTS = ["localhost"]
    cache.clear()
    fund(org)
    for n in range(3):
        user = UserFactory(organization=org, email=f"user{n}@acme.example")
        give(user, 300_000)
    token_request_submit(user=user, token_type="inference", amount=1_000, reason="x")
    _token, secret = access_token_create(
        actor=admin_user, name="fuzz", scope="write", expires_in_days=30
    )
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_admin_api_answers_conform_to_the_document(case, fuzz_world):
    case.call_and_validate(app=APP, headers=fuzz_world, checks=CHECKS)
