"""Fixtures of the integration tests (docs/integrations.md): the platform's data
and a service key with a known secret, a waiter on the platform's API calls, and
LiteLLM proxies (``bench/litellm_proxy.py``) pointed at the live server through
a relay the test can cut.

Tests marked ``litellm`` need ``.venv-litellm`` (``make litellm-venv``): without
it they are skipped with the reason, except in CI (``CI=true``), where that is a
failure. They are skipped under ``--clock``: the proxy keeps the real clock, so
its usage would be reported at another instant than the server's."""

import os
import threading
from collections import Counter
from pathlib import Path

import pytest
from django.core.signals import request_finished, request_started

from accounts.models import ServiceKey
from accounts.services import service_key_digest
from bench import litellm_proxy
from tests.factories import AIModelFactory, UserFactory, fund, give
from tests.integrations.relay import Relay

SECRET = "eak_1e57c11e57c1_integration-tests-secret-0123456789abcdef"
MEMBER = "ava@acme.example"


def pytest_collection_modifyitems(config, items):
    reason = litellm_proxy.missing()
    clock = config.getoption("--clock")
    for item in items:
        if not item.get_closest_marker("litellm"):
            continue
        if clock:
            item.add_marker(
                pytest.mark.skip(
                    reason="--clock: the LiteLLM proxy keeps the real clock"
                )
            )
        elif reason and os.environ.get("CI") != "true":  # in CI: ``proxies`` fails
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def key(transactional_db, settings) -> ServiceKey:
    """An unbound (platform gateway) key whose secret the proxies know. (The
    proxies reach the live server as 127.0.0.1, through the relay.)"""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    prefix = SECRET.split("_")[1]
    return ServiceKey.objects.create(
        name="litellm tests", prefix=prefix, digest=service_key_digest(SECRET)
    )


@pytest.fixture
def world(transactional_db, key):
    """One funded organization, a member with room, the mock models' keys."""
    user = UserFactory(email=MEMBER)
    fund(user.organization)
    give(user, 1_000_000)
    give(user, 1_000_000, "embedding")
    models = {
        "mock-chat": AIModelFactory(key="mock-chat", input_rate=1, output_rate=1),
        "mock-broken": AIModelFactory(key="mock-broken"),
        "text-embedding": AIModelFactory(key="text-embedding", token_type="embedding"),
    }
    return {"user": user, "org": user.organization, "models": models}


class PlatformCalls:
    """Counts the platform's finished requests by path; ``wait`` blocks on a
    condition (no sleeping) until enough have finished."""

    def __init__(self):
        self.done: Counter = Counter()
        self._cond = threading.Condition()
        self._local = threading.local()

    def started(self, sender, environ=None, **kwargs):
        self._local.path = (environ or {}).get("PATH_INFO", "")

    def finished(self, sender, **kwargs):
        with self._cond:
            self.done[getattr(self._local, "path", "")] += 1
            self._cond.notify_all()

    def until(self, predicate, timeout: float = 30) -> None:
        """Check ``predicate`` now and after each request the platform finishes."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"not true after {timeout} s: {dict(self.done)}")

    def wait(self, path: str, count: int, timeout: float = 30) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.done[path] >= count, timeout):
                raise AssertionError(
                    f"{path}: {self.done[path]} calls finished, expected {count}"
                )


@pytest.fixture
def calls():
    recorder = PlatformCalls()
    request_started.connect(recorder.started, weak=False)
    request_finished.connect(recorder.finished, weak=False)
    yield recorder
    request_started.disconnect(recorder.started)
    request_finished.disconnect(recorder.finished)


@pytest.fixture(scope="session")
def proxies(live_server, tmp_path_factory):
    """Started on first use, one per configuration, stopped at the session's end:
    ``proxies("closed")`` → (proxy, relay)."""
    reason = litellm_proxy.missing()
    if reason:
        pytest.fail(f"The LiteLLM tests must run in CI: {reason}")
    started: dict[tuple, tuple] = {}
    work = Path(tmp_path_factory.mktemp("litellm"))
    host, port = live_server.thread.host, live_server.thread.port

    def get(policy: str = "closed", cap: int = 20_000):
        if (policy, cap) not in started:
            relay = Relay((host, port))
            proxy = litellm_proxy.Proxy(
                work,
                {
                    "ASKSAGE_BUDGET_URL": relay.url,
                    "ASKSAGE_BUDGET_KEY": SECRET,
                    "ASKSAGE_BUDGET_FAILURE_POLICY": policy,
                    "ASKSAGE_BUDGET_FAIL_OPEN_TOKENS": str(cap),
                    "ASKSAGE_BUDGET_TIMEOUT": "3",
                    "ASKSAGE_BUDGET_MODEL_MAP": '{"mock-embed": "text-embedding"}',
                },
            ).start()
            started[(policy, cap)] = (proxy, relay)
        proxy, relay = started[(policy, cap)]
        relay.up()
        return proxy, relay

    yield get
    for proxy, relay in started.values():
        proxy.stop()
        relay.close()
