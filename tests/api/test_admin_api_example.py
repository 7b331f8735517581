"""The example script of docs/admin-api.md runs against a live server: it sets the
listed users' limits (after a dry run) and prints the month's usage per user."""

import importlib.util
import io
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts.access_tokens import access_token_create
from tests.factories import UserFactory, fund
from tokens import selectors

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "docs/examples/admin_api_onboard_and_report.py"
)


def load_script():
    spec = importlib.util.spec_from_file_location("admin_api_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db(transaction=True)
def test_the_example_onboards_users_and_prints_the_report(
    live_server, org, admin_user, tmp_path, monkeypatch
):
    cache.clear()
    fund(org)
    ava = UserFactory(organization=org, email="ava@acme.example")
    UserFactory(organization=org, email="bob@acme.example")
    _token, secret = access_token_create(
        actor=admin_user, name="script", scope="write", expires_in_days=7
    )
    limits = tmp_path / "limits.csv"
    limits.write_text(
        "ava@acme.example,250000\nbob@acme.example,250000\nnobody@acme.example,1\n"
    )
    monkeypatch.setenv("ADMIN_API_TOKEN", secret)
    out = io.StringIO()
    month = timezone.now().strftime("%Y-%m")
    status = load_script().main(
        ["--base-url", live_server.url, "--limits", str(limits), "--month", month],
        out=out,
    )
    text = out.getvalue()
    assert status == 0, text
    assert "acting as admin@acme.example on Acme Corp" in text
    assert "not in the organization, skipped: nobody@acme.example" in text
    assert "limit 250000: 2 user(s) changed" in text
    assert "ava@acme.example,0,0,0,250000" in text
    assert selectors.user_limits(org, ava)["inference"] == 250_000


@pytest.mark.django_db(transaction=True)
def test_the_example_reports_a_refusal(live_server, monkeypatch, capsys):
    cache.clear()
    monkeypatch.setenv("ADMIN_API_TOKEN", "eat_000000000000_unknown")
    status = load_script().main(
        ["--base-url", live_server.url, "--month", "2026-01"], out=io.StringIO()
    )
    assert status == 1
    assert "401 unauthorized: The access token is unknown." in capsys.readouterr().err
