"""A/B of the gateway's ``authorize`` as the plain view (tokens/api.py) and as a
django-ninja operation doing the same work (bearer auth, a typed body, the same
service), in-process with Django's test client, interleaved rounds in one session
(docs/admin-api.md, Why the gateway stays on plain views).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/NAME \
        .venv/bin/pytest bench/ninja_ab.py -p no:xdist -q -s

Each round: N authorizes (each its own request_id, a small amount, so every call
reserves a hold) through one variant, then N through the other; the order of the
two alternates per round. Prints the median µs per call of each variant per round,
and the median over rounds.
"""

import json
import statistics
import time
from typing import Literal

import pytest
from django.http import HttpRequest
from django.test import Client, override_settings
from django.urls import path
from ninja import NinjaAPI, Schema
from ninja.security import HttpBearer
from pydantic import Field

from accounts.services import service_key_authenticate, service_key_create
from tests.factories import AIModelFactory, OrganizationFactory, UserFactory, fund, give
from tokens import api as plain
from tokens.services import metering

ROUNDS = 12
CALLS = 150


class _Key(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        return service_key_authenticate(token)


class AuthorizeIn(Schema):
    user: str = Field(min_length=1, max_length=254)
    model: str = Field(min_length=1, max_length=100)
    token_type: Literal["embedding", "inference"]
    tokens: int = Field(gt=0, le=10**12, strict=True)
    request_id: str = Field(min_length=1, max_length=128)


ninja_api = NinjaAPI(urls_namespace="ab", docs_url=None, openapi_url=None)


@ninja_api.post("/authorize", auth=_Key())
def authorize(request, body: AuthorizeIn):
    return metering.authorize(
        key=request.auth,
        user_email=body.user,
        model_key=body.model,
        token_type=body.token_type,
        tokens=body.tokens,
        request_id=body.request_id,
    ).as_dict()


urlpatterns = [
    path("plain/authorize", plain.authorize),
    path("ninja/", ninja_api.urls),
]


def _run(client: Client, url: str, headers: dict, tag: str) -> tuple[float, float]:
    """Median wall-clock and median CPU time of this process per call, in µs (the
    CPU time leaves out waiting for PostgreSQL and for other processes)."""
    times, cpu = [], []
    for i in range(CALLS):
        body = json.dumps(
            {
                "user": "ava@acme.example",
                "model": "gpt",
                "token_type": "inference",
                "tokens": 1,
                "request_id": f"{tag}-{i}",
            }
        )
        start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
        response = client.post(
            url, data=body, content_type="application/json", headers=headers
        )
        cpu.append(time.process_time_ns() - start_cpu)
        times.append(time.perf_counter_ns() - start)
        assert response.status_code == 200, response.content
    return statistics.median(times) / 1000, statistics.median(cpu) / 1000


@pytest.mark.parametrize(
    "commits",
    [
        # Each call commits (as in production): the figure includes the commit.
        pytest.param(True, marks=pytest.mark.django_db(transaction=True)),
        # Inside one test transaction (savepoints, no commit): the CPU cost alone.
        pytest.param(False, marks=pytest.mark.django_db),
    ],
    ids=["commits", "no-commit"],
)
@override_settings(ROOT_URLCONF=__name__)
def test_ninja_vs_plain_authorize(commits):
    org = OrganizationFactory(name="Acme")
    fund(org)
    ava = UserFactory(organization=org, email="ava@acme.example")
    give(ava, 5_000_000)
    AIModelFactory(key="gpt").allowed_for.add(org)
    _key, secret = service_key_create(actor=None, name="ab")
    headers = {"Authorization": f"Bearer {secret}"}
    client = Client()
    for variant in ("plain/authorize", "ninja/authorize"):  # warm up
        _run(client, f"/{variant}", headers, f"warm-{variant}")
    wall: dict[str, list[float]] = {"plain": [], "ninja": []}
    cpu: dict[str, list[float]] = {"plain": [], "ninja": []}
    for r in range(ROUNDS):
        order = ("plain", "ninja") if r % 2 == 0 else ("ninja", "plain")
        for variant in order:
            w, c = _run(client, f"/{variant}/authorize", headers, f"{variant}-{r}")
            wall[variant].append(w)
            cpu[variant].append(c)
        print(
            f"round {r}: wall plain {wall['plain'][-1]:.0f} µs, ninja "
            f"{wall['ninja'][-1]:.0f} µs; cpu plain {cpu['plain'][-1]:.0f} µs, "
            f"ninja {cpu['ninja'][-1]:.0f} µs"
        )
    mode = "commits" if commits else "no commit"
    for name, series in (("wall", wall), ("cpu", cpu)):
        p, n = statistics.median(series["plain"]), statistics.median(series["ninja"])
        print(
            f"[{mode}] {name} median per call: plain {p:.0f} µs, ninja {n:.0f} µs, "
            f"ninja/plain {n / p:.3f}"
        )
