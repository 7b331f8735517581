"""schemathesis against the gateway, in-process through WSGI: every operation of
the generated document (GET /api/v1/openapi.json) gets its documented examples, the
boundary cases schemathesis derives from the schemas (coverage) and random valid and
invalid requests (fuzzing), sent with a valid service key, and every answer must be
no 5xx and conform to the document (status code, content type, headers, body
schema).

Bounded: at most ``MAX_EXAMPLES`` random requests per operation, so a few hundred in
all. Marked ``fuzz`` (CI runs ``pytest -m fuzz``); fast enough to stay in the normal
suite too."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.gateway import openapi_document
from tests.factories import AIModelFactory, UserFactory, fund, give
from tokens.models import Hold
from tokens.services import metering

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

MAX_EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(openapi_document())
APP = get_wsgi_application()
EXAMPLE = schema.raw_schema["components"]["schemas"]["AuthorizeRequest"]["examples"][0]
(RELEASE,) = schema.raw_schema["paths"]["/api/v1/holds/{hold_id}/release"].values()
EXAMPLE_HOLD = RELEASE["parameters"][0]["example"]


@pytest.fixture
def fuzz_world(org, service_key, settings, wsgi_keeps_the_test_connection):
    """The document's example user and model exist (so the examples and some
    generated requests succeed); requests come from the platform gateway's key."""
    settings.ALLOWED_HOSTS = ["localhost"]
    fund(org)
    user = UserFactory(organization=org, email=EXAMPLE["user"])
    give(user, 1_000_000)
    give(user, 1_000_000, "embedding")
    AIModelFactory(key=EXAMPLE["model"])
    hold = metering.authorize(
        key=service_key[0],
        user_email=EXAMPLE["user"],
        model_key=EXAMPLE["model"],
        token_type="inference",
        tokens=1_000,
        request_id="fuzz-example-hold",
    ).hold
    Hold.objects.filter(pk=hold.pk).update(id=EXAMPLE_HOLD)
    return {"Authorization": f"Bearer {service_key[1]}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_conform_to_the_document(case, fuzz_world):
    case.call_and_validate(app=APP, headers=fuzz_world, checks=CHECKS)
