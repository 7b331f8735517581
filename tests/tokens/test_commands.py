"""The operations commands (docs/operations.md, Commands), run with call_command."""

import csv
import datetime as dt
import io
import json
import re
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.utils import timezone

from accounts.models import AuditEvent, ServiceKey
from accounts.services import service_key_create
from asksage_admin.lib.csv import safe_cell, write_rows
from tests.conftest import ApiClient
from tests.factories import AIModelFactory, UserFactory, fund, give
from tests.tokens.test_ledger import build_world
from tokens.management.commands import import_usage
from tokens.models import (
    ORG_DAILY_STRIPES,
    Allocation,
    AllocationChange,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    Purchase,
    UsageCounter,
    UsageEvent,
)
from tokens.selectors.metering import EXPORT_COLUMNS

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.postgres(
    reason="SQLite cannot drop a table's UNIQUE or CHECK constraint; the database "
    "itself guarantees this invariant there",
)


def run(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_failing(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), str(failure.value)


# --- check_ledger --------------------------------------------------------------------


@pytest.fixture
def world(gateway):
    return build_world(gateway)


def test_check_ledger_passes_on_a_consistent_ledger(world):
    out, _err = run("check_ledger")
    assert out == "Ledger OK: 2 organizations, 4 users, 6 usage events checked.\n"
    out, _err = run("check_ledger", "--org", str(world.other.pk))
    assert out == "Ledger OK: 1 organization, 1 user, 1 usage event checked.\n"


def _shrink_pool(world):
    Purchase.objects.filter(organization=world.org).update(inference_tokens=0)


def _bump_limit(world):
    Allocation.objects.filter(user=world.member, token_type="inference").update(
        limit=F("limit") + 1
    )


def _bump_used(world):
    UsageCounter.objects.filter(user=world.member, token_type="inference").update(
        used=F("used") + 7
    )


def _grow_hold(world):
    Hold.objects.filter(pk=world.open_hold).update(tokens=F("tokens") + 1)


def _miscount_daily(world):
    DailyUsage.objects.filter(user=world.admin).update(events=F("events") + 1)
    # The coarser rollups are checked against the daily rollup: keep them agreeing
    # with it, so only invariant 5 breaks.
    row = DailyUsage.objects.get(user=world.admin)
    OrgDailyUsage.objects.filter(
        organization=row.organization_id,
        model=row.model_id,
        token_type=row.token_type,
        day=row.day,
        stripe=world.admin.pk % ORG_DAILY_STRIPES,
    ).update(events=F("events") + 1)
    MonthlyUsage.objects.filter(user=world.admin).update(
        inference_events=F("inference_events") + 1, events=F("events") + 1
    )


def _miscount_org_daily(world):
    OrgDailyUsage.objects.filter(organization=world.org).update(tokens=F("tokens") + 1)


def _misdate_monthly(world):
    MonthlyUsage.objects.filter(user=world.member).update(last_day=F("month"))


def _misfile_audit(world):
    foreign = AuditEvent.objects.filter(organization=world.other).first()
    AllocationChange.objects.filter(user=world.member).update(audit_event=foreign)


def _automatic_below_minimum(world):
    latest = AllocationChange.objects.filter(
        user=world.member, token_type="embedding"
    ).latest("time", "id")
    AllocationChange.objects.filter(pk=latest.pk).update(source="reclamation")


@pytest.mark.parametrize(
    ("breakage", "invariant"),
    [
        (_shrink_pool, "Invariant 1 (allocated ≤ pool): Acme Corp"),
        (_bump_limit, "Invariant 2 (limit = sum of changes): member@acme.example"),
        (_bump_used, "Invariant 3 (used = sum of usage events): member@acme.example"),
        (_grow_hold, "Invariant 4 (held = sum of open holds): member@acme.example"),
        (_miscount_daily, "Invariant 5 (daily rollup = usage events): admin@acme"),
        (
            _miscount_org_daily,
            "Invariant 5b (organization daily rollup = daily rollup): Acme Corp",
        ),
        (
            _misdate_monthly,
            "Invariant 5c (monthly rollup = daily rollup): member@acme.example",
        ),
        (_misfile_audit, "Invariant 9 (allocation changes audited): allocation"),
        (_automatic_below_minimum, "Invariant 10 (limits and platform minimum): "),
    ],
)
def test_check_ledger_reports_each_broken_invariant_and_fails(
    world, breakage, invariant
):
    breakage(world)
    out, error = run_failing("check_ledger")
    lines = out.splitlines()
    assert lines, "each violation is printed"
    assert all(line.startswith(invariant[:12]) for line in lines), lines
    assert any(line.startswith(invariant) for line in lines), lines
    noun = "violation" if len(lines) == 1 else "violations"
    assert error == f"{len(lines)} ledger {noun}; see the lines above."


@postgres_only
def test_check_ledger_reports_duplicate_ids_and_negative_counters(world):
    with connection.cursor() as cursor:
        # Run the deferred foreign-key checks now: ALTER TABLE refuses to run with
        # pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = "
            "'tokens_usageevent'::regclass AND contype = 'u'"
        )
        (unique_event_id,) = cursor.fetchone()
        for table, constraint in (
            ("tokens_usageevent", unique_event_id),
            ("tokens_hold", "hold_key_request_unique"),
            ("tokens_usagecounter", "usagecounter_non_negative"),
        ):
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
    event = UsageEvent.objects.get(event_id="e-admin")
    event.pk = None
    event.tokens = 0
    event.save()
    hold = Hold.objects.get(pk=world.open_hold)
    hold.pk, hold.status = None, Hold.Status.RELEASED
    hold.save(force_insert=True)
    UsageCounter.objects.filter(user=world.outsider).update(held=-1)
    out, _error = run_failing("check_ledger")
    assert (
        "Invariant 6 (unique ids): event_id 'e-admin' is recorded 2 times in the "
        "scope of organization " in out
    )
    assert "Invariant 6 (unique ids): request_id 'r-open' of service key " in out
    assert (
        "Invariant 7 (no negative counters): user@globex.example, inference, "
        f"{timezone.now():%Y-%m}: used 1,040, held -1 (must be ≥ 0)." in out
    )


def test_check_ledger_unknown_org():
    _out, error = run_failing("check_ledger", "--org", "999")
    assert error == "No organization with id 999."


# --- create_service_key ----------------------------------------------------------


def test_create_service_key_prints_a_secret_that_authenticates(member):
    out, _err = run("create_service_key", "--name", "ops gateway")
    secrets_shown = re.findall(r"^eak_\S+$", out, flags=re.MULTILINE)
    assert len(secrets_shown) == 1
    assert "cannot be shown again" in out
    assert "any user (platform gateway, unbound)" in out
    key = ServiceKey.objects.get(name="ops gateway")
    assert key.organization is None
    assert secrets_shown[0] not in key.digest
    response = ApiClient(secrets_shown[0]).get(
        "/api/v1/balance", {"user": member.email, "token_type": "inference"}
    )
    assert response.status_code == 200
    assert ApiClient("eak_nope_nope").get("/api/v1/balance").status_code == 401


def test_create_service_key_bound_to_an_org(member, other_admin_user):
    out, _err = run(
        "create_service_key", "--name", "acme", "--org", str(member.organization_id)
    )
    secret = re.search(r"^eak_\S+$", out, flags=re.MULTILINE).group()
    assert ServiceKey.objects.get(name="acme").organization == member.organization
    client = ApiClient(secret)
    assert (
        client.get(
            "/api/v1/balance", {"user": member.email, "token_type": "inference"}
        ).status_code
        == 200
    )
    refused = client.get(
        "/api/v1/balance",
        {"user": other_admin_user.email, "token_type": "inference"},
    )
    assert refused.status_code == 404  # unknown to this key


def test_create_service_key_refuses_unknown_org_and_blank_name(db):
    assert run_failing("create_service_key", "--name", "x", "--org", "999")[1] == (
        "No organization with id 999."
    )
    assert (
        run_failing("create_service_key", "--name", "  ")[1] == "Give the key a name."
    )
    assert not ServiceKey.objects.exists()


# --- import_usage ----------------------------------------------------------------


@pytest.fixture
def metered(member, other_admin_user):
    fund(member.organization)
    give(member, 1_000_000)
    AIModelFactory(key="gpt")
    return member


def _event(event_id, user, prompt=100, completion=10, **extra):
    return {
        "event_id": event_id,
        "user": user.email if hasattr(user, "email") else user,
        "model": "gpt",
        "token_type": "inference",
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "occurred_at": timezone.now().isoformat(),
        **extra,
    }


@pytest.fixture
def usage_file(tmp_path, metered):
    first = _event("imp-1", metered, 100, 10)
    lines = [
        json.dumps(first),
        json.dumps(_event("imp-2", metered, 200, 20)),
        json.dumps(first),  # a duplicate
        json.dumps({**first, "prompt_tokens": 999}),  # a conflict
        '{"event_id": "imp-broken", ',  # not JSON
        json.dumps(_event("imp-3", "nobody@nowhere.example")),
        "",
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_usage_records_with_the_api_rules(usage_file, metered):
    out, err = run("import_usage", str(usage_file))
    assert out.splitlines()[-1] == "Recorded 2, duplicates 1, rejected 3 (6 lines)."
    assert err.splitlines() == [
        "line 4: rejected (conflict): This event_id appears twice in the batch with "
        "different data.",
        "line 5: rejected (invalid_json): Not valid JSON: Expecting property name "
        "enclosed in double quotes at column 27.",
        "line 6: rejected (unknown_user): No user with this email.",
    ]
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {
        "imp-1",
        "imp-2",
    }
    counter = UsageCounter.objects.get(user=metered, token_type="inference")
    assert counter.used == 330
    # The import acts through one internal, unbound key, created on first use.
    key = ServiceKey.objects.get(name="import_usage")
    assert key.organization is None


def test_import_usage_again_is_all_duplicates(usage_file, metered):
    run("import_usage", str(usage_file))
    out, _err = run("import_usage", str(usage_file))
    assert out.splitlines()[-1] == "Recorded 0, duplicates 3, rejected 3 (6 lines)."
    assert UsageEvent.objects.count() == 2
    assert UsageCounter.objects.get(user=metered).used == 330
    assert ServiceKey.objects.filter(name="import_usage").count() == 1
    assert run("check_ledger")[0].startswith("Ledger OK")


def test_import_usage_reads_stdin(monkeypatch, metered):
    lines = "\n".join(json.dumps(_event(f"in-{i}", metered)) for i in range(3))
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    out, _err = run("import_usage", "-")
    assert out.splitlines()[-1] == "Recorded 3, duplicates 0, rejected 0 (3 lines)."


def test_import_usage_as_an_org_key_refuses_other_orgs(tmp_path, metered):
    other = UserFactory(email="x@globex.example")
    key, _secret = service_key_create(
        actor=None, name="acme-gw", organization=metered.organization
    )
    path = tmp_path / "u.jsonl"
    path.write_text(
        json.dumps(_event("k-1", metered)) + "\n" + json.dumps(_event("k-2", other))
    )
    out, err = run("import_usage", str(path), "--key-prefix", key.prefix)
    assert out.splitlines()[-1] == "Recorded 1, duplicates 0, rejected 1 (2 lines)."
    assert err == ("line 2: rejected (unknown_user): No user with this email.\n")
    assert not ServiceKey.objects.filter(name="import_usage").exists()
    assert run_failing("import_usage", str(path), "--key-prefix", "nope")[1] == (
        "No active service key with prefix 'nope'."
    )


def test_import_usage_batches_and_reports_progress(monkeypatch, tmp_path, metered):
    monkeypatch.setattr(import_usage, "MAX_BATCH", 3)
    monkeypatch.setattr(import_usage, "PROGRESS_EVERY", 4)
    sent = []
    real = import_usage.usage_record

    def spy(*, key, events):
        sent.append(len(events))
        return real(key=key, events=events)

    monkeypatch.setattr(import_usage, "usage_record", spy)
    path = tmp_path / "u.jsonl"
    path.write_text("\n".join(json.dumps(_event(f"b-{i}", metered)) for i in range(10)))
    out, _err = run("import_usage", str(path))
    assert sent == [3, 3, 3, 1]
    assert out.splitlines() == [
        "Processed 6 lines: 6 recorded, 0 duplicates, 0 rejected.",
        "Processed 9 lines: 9 recorded, 0 duplicates, 0 rejected.",
        "Recorded 10, duplicates 0, rejected 0 (10 lines).",
    ]


def test_import_usage_draws_a_progress_bar_on_a_terminal(tmp_path, metered):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(_event("t-1", metered)) + "\n")
    out = Terminal()
    call_command("import_usage", str(path), stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith(
        "\r[##############################] 100% 1 lines: 1 recorded"
    )


def test_import_usage_missing_file(db):
    assert run_failing("import_usage", "/no/such/file.jsonl")[1] == (
        "Cannot read /no/such/file.jsonl: No such file or directory."
    )


# --- expire_holds ----------------------------------------------------------------


def test_expire_holds_expires_only_past_holds(gateway, metered):
    def authorize(tokens, request_id):
        response = gateway.post(
            "/api/v1/authorize",
            {
                "user": metered.email,
                "model": "gpt",
                "token_type": "inference",
                "tokens": tokens,
                "request_id": request_id,
            },
        )
        return response.json()["hold_id"]

    stale, fresh = authorize(3_000, "stale"), authorize(500, "fresh")
    Hold.objects.filter(pk=stale).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    counter = UsageCounter.objects.get(user=metered, token_type="inference")
    assert counter.held == 3_500
    out, _err = run("expire_holds")
    assert out == "Expired 1 hold.\n"
    counter.refresh_from_db()
    assert counter.held == 500
    assert Hold.objects.get(pk=stale).status == Hold.Status.EXPIRED
    assert Hold.objects.get(pk=fresh).status == Hold.Status.OPEN
    assert run("expire_holds")[0] == "Expired 0 holds.\n"


# --- export_usage ----------------------------------------------------------------


@pytest.fixture
def exportable(gateway, metered, other_admin_user):
    fund(other_admin_user.organization)
    give(other_admin_user, 1_000_000)

    def at(day, hour=12):
        return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC).isoformat()

    today = timezone.now().date()
    days = [today - dt.timedelta(days=n) for n in (3, 2, 1)]
    events = [
        _event("x-before", metered, occurred_at=at(days[0], 23)),
        _event("x-1", metered, 10, 1, occurred_at=at(days[1], 0), application="chat"),
        _event(
            "x-2",
            metered,
            20,
            2,
            occurred_at=at(days[2], 23),
            application='=HYPERLINK("http://evil")',
        ),
        _event("x-globex", other_admin_user, occurred_at=at(days[1])),
    ]
    assert gateway.post("/api/v1/usage", {"events": events}).json()["recorded"] == 4
    return metered, days


def test_export_usage_writes_the_orgs_events_in_range(tmp_path, exportable):
    member, days = exportable
    path = tmp_path / "usage.csv"
    out, _err = run(
        "export_usage",
        "--org",
        str(member.organization_id),
        "--from",
        days[1].isoformat(),
        "--to",
        days[2].isoformat(),
        "--output",
        str(path),
    )
    assert out == f"Exported 2 usage events to {path}.\n"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        EXPORT_COLUMNS,
        [
            "x-1",
            f"{days[1].isoformat()}T00:00:00+00:00",
            member.email,
            "gpt",
            "inference",
            "10",
            "1",
            "11",
            "chat",
        ],
        [
            "x-2",
            f"{days[2].isoformat()}T23:00:00+00:00",
            member.email,
            "gpt",
            "inference",
            "20",
            "2",
            "22",
            '\'=HYPERLINK("http://evil")',
        ],
    ]


def test_export_usage_to_stdout(exportable):
    member, days = exportable
    out, err = run(
        "export_usage",
        "--org",
        str(member.organization_id),
        "--from",
        days[0].isoformat(),
        "--to",
        days[0].isoformat(),
    )
    rows = list(csv.reader(io.StringIO(out)))
    assert [row[0] for row in rows] == ["event_id", "x-before"]
    assert err == "Exported 1 usage events.\n"


def test_export_usage_refuses_bad_input(member):
    org = str(member.organization_id)
    assert run_failing(
        "export_usage", "--org", org, "--from", "2026-13-01", "--to", "2026-12-01"
    )[1] == ("'2026-13-01' is not a date: use YYYY-MM-DD.")
    assert run_failing(
        "export_usage", "--org", org, "--from", "2026-02-02", "--to", "2026-02-01"
    )[1] == ("--from must be on or before --to.")
    assert run_failing(
        "export_usage", "--org", "999", "--from", "2026-02-01", "--to", "2026-02-01"
    )[1] == ("No organization with id 999.")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("chat", "chat"),
        ("a=b", "a=b"),
        (-5, -5),
        (None, None),
    ],
)
def test_safe_cell_escapes_formula_leading_text_only(value, cell):
    assert safe_cell(value) == cell


def test_write_rows_streams_escaped_rows():
    buffer = io.StringIO()
    count = write_rows(csv.writer(buffer), iter([["=x", 1], ["ok", -2]]))
    assert count == 2
    assert buffer.getvalue() == "'=x,1\r\nok,-2\r\n"
