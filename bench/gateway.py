"""B7, the gateway mix: what one organization's real gateway traffic looks like.
Many different users of the big organization, each call an ``authorize`` and then
a ``usage`` of one event settling that hold, from 32 keep-alive clients at once;
beside it ``GET /healthz`` at the same concurrency in the same run (the
framework's floor: routing, middleware, one query). Also with one client (the
latency of a pair against two healthz requests), and the statements each gateway
call runs, for a user of the big organization and of the reference one (they
must not grow with the organization)."""

import datetime as dt
import random
import statistics
import threading
import time
import uuid
from collections import Counter

import psycopg

from bench.benchmarks import Row, _log, _run_clients, median
from bench.client import Client
from bench.dataset import Context, Scale
from bench.server import Server

B7_CLIENTS = 32
B7_USERS = 1_000
B7_TOKENS = 50  # asked per call; the event charges less (prompt 20 + completion 10)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _users(ctx: Context) -> list[str]:
    """B7_USERS members of the big organization with room for the run, not the
    hot user (B5's)."""
    from accounts.models import User

    emails = list(
        User.objects.filter(organization_id=ctx.big_org, is_paid=True, is_banned=False)
        .exclude(email=ctx.hot_user)
        .order_by("pk")
        .values_list("email", flat=True)[:B7_USERS]
    )
    random.Random(7).shuffle(emails)
    return emails


def _roomy_user(org_id: int, exclude: str) -> str:
    """A paid, unbanned member of the organization with room left this month."""
    from asksage_admin.lib.periods import period_of
    from tokens.models import Allocation, UsageCounter

    used = dict(
        UsageCounter.objects.filter(
            organization_id=org_id, token_type="inference", period=period_of()
        ).values_list("user_id", "used")
    )
    for user_id, email, limit in (
        Allocation.objects.filter(
            organization_id=org_id,
            token_type="inference",
            user__is_paid=True,
            user__is_banned=False,
        )
        .exclude(user__email=exclude)
        .order_by("user_id")
        .values_list("user_id", "user__email", "limit")
    ):
        if limit - used.get(user_id, 0) > 10 * B7_TOKENS:
            return email
    raise RuntimeError(f"no member of organization {org_id} has room left")


def _deadlocks(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def _ask(ctx: Context, email: str, tag: str) -> dict:
    """The body of an authorization of B7_TOKENS for ``email``."""
    return {
        "user": email,
        "model": ctx.flat_model,
        "token_type": "inference",
        "tokens": B7_TOKENS,
        "request_id": tag,
    }


def _spent(ctx: Context, email: str, tag: str, hold_id: str) -> dict:
    """The body of a usage report of one event settling ``hold_id``."""
    return {
        "events": [
            {
                "event_id": tag,
                "user": email,
                "model": ctx.flat_model,
                "token_type": "inference",
                "prompt_tokens": 20,
                "completion_tokens": 10,
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "hold_id": hold_id,
            }
        ]
    }


def _pair(client: Client, ctx: Context, email: str, tag: str) -> tuple[list, float]:
    """authorize, then usage of one event with that hold; (statuses, seconds)."""
    began = time.perf_counter()
    response = client.post_json(
        "/api/v1/authorize", _ask(ctx, email, tag), ctx.service_key
    )
    statuses = [response.status]
    if response.status == 200:
        response = client.post_json(
            "/api/v1/usage",
            _spent(ctx, email, tag, response.json()["hold_id"]),
            ctx.service_key,
        )
        statuses.append(response.status)
        if response.status == 200 and response.json()["recorded"] != 1:
            statuses.append("not recorded")
    return statuses, time.perf_counter() - began


def _healthz(port: int, clients: int, requests: int) -> tuple[float, list[float]]:
    """req/s and per-request seconds of GET /healthz from ``clients`` clients."""
    pool = [Client(port) for _ in range(clients)]
    times: list[float] = []
    lock = threading.Lock()

    def one(index: int, _n: int) -> None:
        response = pool[index].request("GET", "/healthz")
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
        with lock:
            times.append(response.seconds)

    for i in range(clients):  # connect first: keep-alive from the start
        one(i, 0)
    times.clear()
    seconds = _run_clients(clients, list(range(requests)), one)
    for client in pool:
        client.close()
    return requests / seconds, times


def _pairs(ctx, port: int, clients: int, pairs: int, emails: list[str]):
    pool = [Client(port) for _ in range(clients)]
    times: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    run = uuid.uuid4().hex[:8]

    def one(index: int, n: int) -> None:
        got, seconds = _pair(pool[index], ctx, emails[n % len(emails)], f"b7-{run}-{n}")
        with lock:
            statuses.update(got)
            times.append(seconds)

    seconds = _run_clients(clients, list(range(pairs)), one)
    for client in pool:
        client.close()
    return pairs / seconds, times, statuses


def _statements(ctx: Context, email: str) -> dict[str, int]:
    """Statements per call in-process (Django's test client, same database), after
    one warm-up pair so that the user's counter of the month exists."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from accounts.services import service_key_create

    # A gateway key of the member's own organization (the benchmark's key is
    # bound to the big one, and a bound key knows no one outside it).
    member = User.objects.select_related("organization").get(email=email)
    _key, secret = service_key_create(
        actor=None, name="bench B7 statements", organization=member.organization
    )
    client = DjangoClient(headers={"Authorization": f"Bearer {secret}"})

    def post(path: str, body: dict):
        return client.post(path, body, content_type="application/json")

    counts = {}
    for attempt in range(2):
        tag = f"b7-count-{uuid.uuid4().hex[:8]}"
        with CaptureQueriesContext(connection) as authorize:
            response = post("/api/v1/authorize", _ask(ctx, email, tag))
        spent = _spent(ctx, email, tag, response.json()["hold_id"])
        with CaptureQueriesContext(connection) as usage:
            post("/api/v1/usage", spent)
        with CaptureQueriesContext(connection) as balance:
            client.get("/api/v1/balance", {"user": email, "token_type": "inference"})
        if attempt:
            counts = {
                "authorize": len(authorize),
                "usage": len(usage),
                "balance": len(balance),
            }
    return counts


def b7(ctx: Context, spec: Scale, server: Server, dsn: str) -> list[Row]:
    from accounts.models import Organization
    from tokens.ledger import check_ledger

    emails = _users(ctx)
    pairs_n = 4_000 if spec.name == "full" else 1_000
    health_n = 4 * pairs_n
    single_n = 150
    log_start = server.log_path.stat().st_size
    deadlocks_before = _deadlocks(dsn)

    health_rate, _ = _healthz(server.port, B7_CLIENTS, health_n)
    _, health_single = _healthz(server.port, 1, 2 * single_n)
    rate, times, statuses = _pairs(ctx, server.port, B7_CLIENTS, pairs_n, emails)
    _, single, single_statuses = _pairs(ctx, server.port, 1, single_n, emails)
    statuses.update(single_statuses)

    deadlocks = _deadlocks(dsn) - deadlocks_before
    with server.log_path.open("rb") as log:
        log.seek(log_start)
        logged = log.read().decode("utf-8", "replace")
    logged_deadlocks = logged.count("deadlock detected")
    five_xx = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)
    refused = statuses.get(402, 0)
    violations = check_ledger(organization=Organization.objects.get(pk=ctx.big_org))

    p50, p99 = _percentile(times, 50), _percentile(times, 99)
    floor = health_rate / 2
    single_p50 = statistics.median(single)
    health_p50 = median(health_single)
    clean = (
        five_xx == 0
        and deadlocks == 0
        and logged_deadlocks == 0
        and not violations
        and "not recorded" not in statuses
    )
    big_counts = _statements(ctx, _roomy_user(ctx.big_org, exclude=ctx.hot_user))
    ref_counts = _statements(ctx, _roomy_user(ctx.ref_org, exclude=ctx.hot_user))
    detail = (
        f"{pairs_n:,} pairs over {len(emails):,} users; p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms ({p99 / p50:.1f}× p50); healthz "
        f"{health_rate:,.0f} req/s; 5xx: {five_xx}; refused (402): {refused}; "
        f"deadlocks: {deadlocks} in pg_stat_database, {logged_deadlocks} in the "
        f"server log; HTTP {dict(statuses)}; check_ledger: "
        + ("clean" if not violations else f"{len(violations)} violations")
    )
    rows = [
        Row(
            f"B7 gateway mix, {B7_CLIENTS} clients, distinct users of one org",
            f"{rate:,.0f} pairs/s",
            f"{floor:,.0f} (healthz req/s ÷ 2)",
            f"{rate / floor:.2f}×",
            "≥ 0.5×; p99 ≤ 3× p50; no 5xx, no deadlock, ledger clean",
            rate >= 0.5 * floor and p99 <= 3 * p50 and clean,
            detail,
        ),
        Row(
            "B7 one client: a pair's p50",
            f"{single_p50 * 1000:.1f} ms",
            f"{2 * health_p50 * 1000:.1f} ms (two healthz)",
            f"{single_p50 / (2 * health_p50):.2f}×",
            "≤ 2.5×",
            single_p50 <= 2.5 * 2 * health_p50,
            f"{single_n} pairs; healthz p50 {health_p50 * 1000:.2f} ms",
        ),
        Row(
            "B7 statements per call (authorize / usage of 1 event / balance)",
            "/".join(str(big_counts[k]) for k in ("authorize", "usage", "balance"))
            + " (big org)",
            "/".join(str(ref_counts[k]) for k in ("authorize", "usage", "balance"))
            + " (reference org)",
            "—",
            "the same for both organizations",
            big_counts == ref_counts,
            "counted in-process with Django's test client, the service key's "
            "look-up and the transaction's BEGIN and COMMIT included",
        ),
    ]
    for row in rows:
        _log(f"{row.name}: {row.ours} vs {row.baseline}; {row.detail}")
    if violations:
        for line in violations[:20]:
            _log(f"  ledger: {line}")
    return rows
