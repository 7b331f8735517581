"""B1–B6 of the performance issue. Each returns ``Row``s: our figure beside its
baseline measured in the same run, the ratio, the target and whether it is met.

HTTP figures are measured like a real client (``bench.client`` on 127.0.0.1, one
keep-alive connection per client); query counts in-process with Django's test
Client and ``CaptureQueriesContext`` against the same database."""

import datetime as dt
import math
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from bench.client import Client
from bench.dataset import CUT_LIMIT, MODELS, Context, Scale
from bench.server import Server, reset_peak, status_kb


@dataclass
class Row:
    name: str
    ours: str
    baseline: str
    ratio: str
    target: str
    passed: bool
    detail: str = ""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def median(values) -> float:
    return statistics.median(values)


# --- sign-in --------------------------------------------------------------------


def totp_for(email: str):
    """A function returning the current TOTP code of the user's bench device."""
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user__email=email, name="bench")

    def code() -> str:
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time()
        return f"{totp.token():0{device.digits}d}"

    return code


def signed_in(port: int, email: str, password: str) -> Client:
    client = Client(port)
    for attempt in range(3):
        try:
            client.sign_in(email, password, totp=totp_for(email))
            return client
        except RuntimeError:
            # A TOTP code is accepted once: wait for the next one.
            if attempt == 2:
                raise
            client = Client(port)
            time.sleep(31 - time.time() % 30)
    raise AssertionError("unreachable")


def test_client(email: str):
    """An in-process client signed in as ``email`` with MFA passed."""
    from django.test import Client as DjangoClient
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import User

    user = User.objects.get(email=email)
    client = DjangoClient()
    client.force_login(user)
    device = TOTPDevice.objects.get(user=user, name="bench")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def count_queries(client, path: str) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)  # warm caches (content types, templates) first
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
    return len(captured.captured_queries), response.status_code


# --- B3 -------------------------------------------------------------------------

PAGES = [
    ("users", "/panel/users/"),
    ("distribution", "/panel/distribution/"),
    ("requests", "/panel/requests/"),
    ("statistics", "/panel/statistics/"),
    ("activity: user activity", "/panel/activity/?tab=usage"),
    ("activity: audit trail", "/panel/activity/?tab=audit"),
    ("/me/", "/me/"),
]
B3_REQUESTS = 20


def timed_pair(big: Client, ref: Client, big_path: str, ref_path: str, n: int):
    """``n`` requests of each, interleaved (so noise hits both alike), after two
    warm-up requests; returns the two lists of seconds."""
    for client, path in ((big, big_path), (ref, ref_path)):
        for _ in range(2):
            response = client.get(path)
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
    ours, base = [], []
    for _ in range(n):
        for client, path, out in ((big, big_path, ours), (ref, ref_path, base)):
            response = client.get(path)
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
            out.append(response.seconds)
    return ours, base


def b3(ctx: Context, spec: Scale, big: Client, ref: Client) -> list[Row]:
    big_tc, ref_tc = test_client(ctx.big_admin), test_client(ctx.ref_admin)
    rows = []
    for label, path in PAGES:
        ours, base = timed_pair(big, ref, path, path, B3_REQUESTS)
        q_big, s_big = count_queries(big_tc, path)
        q_ref, s_ref = count_queries(ref_tc, path)
        m_ours, m_base = median(ours), median(base)
        ratio = m_ours / m_base
        passed = (
            ratio <= 1.5
            and m_ours <= 0.300
            and q_big == q_ref
            and s_big == s_ref == 200
        )
        rows.append(
            Row(
                f"B3 {label}",
                f"{_ms(m_ours)}, {q_big} queries",
                f"{_ms(m_base)}, {q_ref} queries",
                f"{ratio:.2f}×",
                "≤ 1.5× and ≤ 300 ms; queries equal",
                passed,
                f"p90 {_ms(sorted(ours)[int(len(ours) * 0.9) - 1])}",
            )
        )
        _log(f"B3 {label}: {rows[-1].ours} vs {rows[-1].baseline}")
    return rows


# --- B4 -------------------------------------------------------------------------


def b4(ctx: Context, spec: Scale, big: Client) -> list[Row]:
    from urllib.parse import urlencode

    from accounts.models import AuditEvent
    from analytics import keyset

    events = AuditEvent.objects.filter(organization_id=ctx.big_org).order_by(
        "-time", "-id"
    )
    total = events.count()
    depth = min(100_000, total - 60)
    row = events.values("time", "id")[depth - 1]
    cursor = keyset.encode(row["time"], row["id"])
    first = "/panel/activity/?tab=audit"
    deep = f"{first}&{urlencode({'after': cursor})}"
    response = big.get(deep)
    if response.status != 200:
        raise RuntimeError(f"deep page: HTTP {response.status}")
    ours, base = timed_pair(big, big, deep, first, B3_REQUESTS)
    m_ours, m_base = median(ours), median(base)
    ratio = m_ours / m_base
    result = Row(
        f"B4 audit trail page {depth:,} rows deep",
        _ms(m_ours),
        f"{_ms(m_base)} (first page)",
        f"{ratio:.2f}×",
        "≤ 2× first page",
        ratio <= 2.0,
        f"{total:,} audit events in the organization",
    )
    _log(f"B4: {result.ours} vs {result.baseline}")
    return [result]


# --- B2 -------------------------------------------------------------------------

EXPORT_SQL = """
SELECT e.event_id, e.occurred_at, u.email, m.key, e.token_type, e.prompt_tokens,
       e.completion_tokens, e.tokens, e.application
FROM tokens_usageevent e
JOIN accounts_user u ON u.id = e.user_id
JOIN tokens_aimodel m ON m.id = e.model_id
WHERE e.organization_id = {org} AND e.occurred_at >= '{start}'
  AND e.occurred_at < '{stop}'
ORDER BY e.occurred_at, e.id
"""


class RssSampler(threading.Thread):
    """Samples VmRSS of the workers every 10 ms; growth = peak − start, per pid."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids = pids
        self.start_kb = {p: status_kb(p, "VmRSS") for p in pids}
        self.peak_kb = dict(self.start_kb)
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for p in self.pids:
                self.peak_kb[p] = max(self.peak_kb[p], status_kb(p, "VmRSS"))
            time.sleep(0.01)

    def growth_mb(self) -> float:
        self.stop_event.set()
        self.join()
        grown = []
        for p in self.pids:
            hwm = status_kb(p, "VmHWM")
            grown.append(max(self.peak_kb[p], hwm) - self.start_kb[p])
        return max(grown) / 1024


# A streamed export arrives in at least one HTTP chunk per this many rows (100 for
# a million rows); a body built whole would come as one.
ROWS_PER_CHUNK_AT_MOST = 10_000


def b2(ctx: Context, spec: Scale, big: Client, server: Server, dsn: str) -> list[Row]:
    from tokens.models import UsageEvent

    events = UsageEvent.objects.filter(organization_id=ctx.big_org)
    total = events.count()
    wanted = min(spec.b2_rows, total)
    oldest = (
        events.order_by("-occurred_at", "-id").values_list("occurred_at", flat=True)[
            wanted - 1
        ]
    ).astimezone(dt.UTC)
    start = oldest.date()
    today = dt.datetime.now(dt.UTC).date()
    params = {"start": start.isoformat(), "end": today.isoformat()}
    stop = today + dt.timedelta(days=1)
    sql = EXPORT_SQL.format(org=ctx.big_org, start=start, stop=stop)

    def ours_once() -> tuple[float, int, int, float, int, bool]:
        pids = server.worker_pids()
        for p in pids:
            reset_peak(p)
        sampler = RssSampler(pids)
        sampler.start()
        began = time.perf_counter()
        status, size, lines = big.download(
            "/panel/statistics/export/events.csv", params
        )
        seconds = time.perf_counter() - began
        growth = sampler.growth_mb()
        if status != 200:
            raise RuntimeError(f"export: HTTP {status}")
        return (
            seconds,
            lines - 1,
            size,
            growth,
            big.last_chunks,
            big.last_ends_with_newline,
        )

    def baseline_once() -> tuple[float, int, int]:
        lines = size = 0
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            began = time.perf_counter()
            with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                for data in copy:
                    lines += bytes(data).count(b"\n")
                    size += len(data)
            seconds = time.perf_counter() - began
        return seconds, lines - 1, size

    runs = 3
    ours_runs, base_runs = [], []
    for _ in range(runs):
        base_runs.append(baseline_once())
        ours_runs.append(ours_once())
    seconds = median(r[0] for r in ours_runs)
    rows = ours_runs[0][1]
    growth = max(r[3] for r in ours_runs)
    base_seconds = median(r[0] for r in base_runs)
    base_rows = base_runs[0][1]
    if rows != base_rows:
        raise RuntimeError(f"export gave {rows:,} rows, COPY {base_rows:,}")
    rate, base_rate = rows / seconds, base_rows / base_seconds
    ratio = rate / base_rate
    out = [
        Row(
            f"B2 raw usage export, {rows:,} rows over HTTP",
            f"{rate:,.0f} rows/s ({seconds:.1f} s)",
            f"{base_rate:,.0f} rows/s ({base_seconds:.1f} s) COPY",
            f"{ratio:.2f}×",
            "≥ 0.5× COPY",
            ratio >= 0.5,
            f"{ours_runs[0][2] / 1e6:,.0f} MB of CSV; COPY {base_runs[0][2] / 1e6:,.0f}"
            " MB",
        ),
        Row(
            "B2 peak RSS growth of the worker",
            f"{growth:,.1f} MB",
            "—",
            "—",
            "≤ 50 MB",
            growth <= 50,
        ),
    ]
    # Streamed, not built whole: the body arrives in many HTTP chunks (the export
    # yields blocks of rows as the database cursor gives them; a body built in
    # memory would come as one) and ends with a whole line, what the suite's
    # 100,000-event export test asserted before it moved here (docs/performance.md).
    # The worker's memory is the row above.
    chunks = min(r[4] for r in ours_runs)
    streamed_chunks = max(2, (rows + 1) // ROWS_PER_CHUNK_AT_MOST)
    whole = all(r[5] for r in ours_runs)
    out.append(
        Row(
            "B2 the export streams: HTTP chunks",
            f"{chunks:,} chunks for {rows + 1:,} lines",
            "—",
            "—",
            f"≥ {streamed_chunks:,} chunks (1 per 10,000 rows), last line whole",
            chunks >= streamed_chunks and whole,
        )
    )
    _log(f"B2: {out[0].ours} vs {out[0].baseline}; RSS +{growth:.1f} MB")
    return out


# --- B1 -------------------------------------------------------------------------

B1_BATCH = 500
B1_CLIENTS = 4


def _b1_events(ctx: Context, n: int, tag: str) -> list[dict]:
    from accounts.models import User

    emails = list(
        User.objects.filter(organization_id=ctx.big_org)
        .exclude(email=ctx.hot_user)
        .values_list("email", flat=True)
    )
    rng = random.Random(1)
    now = dt.datetime.now(dt.UTC)
    events = []
    for i in range(n):
        key, _name, token_type, _i, _o = MODELS[rng.randrange(len(MODELS))]
        events.append(
            {
                "event_id": f"{tag}-{i}",
                "user": emails[rng.randrange(len(emails))],
                "model": key,
                "token_type": token_type,
                # Small calls: B1 measures ingestion, not auto-increase (which
                # fires when a user's month passes a trigger).
                "prompt_tokens": rng.randrange(20, 600),
                "completion_tokens": 0
                if token_type == "embedding"
                else rng.randrange(0, 300),
                "occurred_at": (
                    now - dt.timedelta(seconds=rng.uniform(1, 600))
                ).isoformat(),
                "application": rng.choice(["chat", "api", "notebook"]),
            }
        )
    return events


def _run_clients(n_clients: int, work: list, fn) -> float:
    """Run ``fn(client_index, item)`` over ``work`` from ``n_clients`` threads;
    returns the wall time."""
    lock = threading.Lock()
    items = iter(work)
    errors = []

    def worker(index: int) -> None:
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            try:
                fn(index, item)
            except Exception as error:  # reported below
                errors.append(error)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def b1(ctx: Context, spec: Scale, port: int, dsn: str) -> list[Row]:
    from accounts.models import User
    from tokens.ledger import check_ledger
    from tokens.models import AIModel

    tag = f"b1-{uuid.uuid4().hex[:8]}"
    events = _b1_events(ctx, spec.b1_events, tag)
    batches = [events[i : i + B1_BATCH] for i in range(0, len(events), B1_BATCH)]
    clients = [Client(port) for _ in range(B1_CLIENTS)]
    statuses, recorded = Counter(), Counter()

    def send(index: int, batch: list[dict]) -> None:
        response = clients[index].post_json(
            "/api/v1/usage", {"events": batch}, ctx.service_key
        )
        statuses[response.status] += 1
        if response.status == 200:
            recorded["events"] += response.json()["recorded"]

    # A warm-up batch per client (connections, caches), not counted.
    warm = _b1_events(ctx, B1_CLIENTS * 10, tag + "-warm")
    for i, client in enumerate(clients):
        client.post_json(
            "/api/v1/usage", {"events": warm[i * 10 : (i + 1) * 10]}, ctx.service_key
        )
    seconds = _run_clients(B1_CLIENTS, batches, send)
    for client in clients:
        client.close()
    rate = recorded["events"] / seconds
    ok = statuses == Counter({200: len(batches)}) and recorded["events"] == len(events)

    # Baseline: the same events, INSERTed with executemany into a bare table.
    users = dict(
        User.objects.filter(organization_id=ctx.big_org).values_list("email", "id")
    )
    models = {m.key: m for m in AIModel.objects.all()}
    now = dt.datetime.now(dt.UTC)
    raw = []
    for e in events:
        m = models[e["model"]]
        charge = math.ceil(
            Decimal(e["prompt_tokens"]) * m.input_rate
            + Decimal(e["completion_tokens"]) * m.output_rate
        )
        raw.append(
            (
                e["event_id"],
                ctx.big_org,
                users[e["user"]],
                m.pk,
                e["token_type"],
                e["prompt_tokens"],
                e["completion_tokens"],
                charge,
                m.input_rate,
                m.output_rate,
                e["occurred_at"],
                now,
                e["application"],
                "0" * 64,
            )
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_usage")
        conn.execute(
            "CREATE TABLE bench_raw_usage (event_id varchar(128), organization_id "
            "bigint, user_id bigint, model_id bigint, token_type varchar(10), "
            "prompt_tokens bigint, completion_tokens bigint, tokens bigint, "
            "input_rate numeric(10,4), output_rate numeric(10,4), occurred_at "
            "timestamptz, received_at timestamptz, application varchar(100), "
            "payload_digest varchar(64))"
        )
    conns = [psycopg.connect(dsn) for _ in range(B1_CLIENTS)]
    insert = (
        "INSERT INTO bench_raw_usage VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )

    def raw_send(index: int, batch: list[tuple]) -> None:
        conn = conns[index]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(insert, batch)

    raw_batches = [raw[i : i + B1_BATCH] for i in range(0, len(raw), B1_BATCH)]
    base_seconds = _run_clients(B1_CLIENTS, raw_batches, raw_send)
    for conn in conns:
        conn.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_raw_usage")
    base_rate = len(raw) / base_seconds

    from accounts.models import Organization

    began = time.perf_counter()
    violations = check_ledger(organization=Organization.objects.get(pk=ctx.big_org))
    check_seconds = time.perf_counter() - began
    ratio = rate / base_rate
    row = Row(
        f"B1 usage ingestion, {len(events):,} events, {B1_CLIENTS} clients × "
        f"batches of {B1_BATCH}",
        f"{rate:,.0f} events/s",
        f"{base_rate:,.0f} events/s executemany",
        f"{ratio:.2f}×",
        "≥ 5,000/s and ≥ 0.25×; check_ledger clean",
        ok and not violations and rate >= 5000 and ratio >= 0.25,
        f"HTTP {dict(statuses)}; check_ledger after: "
        + ("clean" if not violations else f"{len(violations)} violations")
        + f" ({check_seconds:.0f} s)",
    )
    if violations:
        for line in violations[:20]:
            _log(f"  ledger: {line}")
    _log(f"B1: {row.ours} vs {row.baseline}; {row.detail}")
    return [row]


# --- B5 -------------------------------------------------------------------------

B5_CLIENTS = 16
B5_TOKENS = 1000


def b5(ctx: Context, spec: Scale, port: int, dsn: str) -> list[Row]:
    from accounts.models import Organization, User
    from asksage_admin.lib.periods import period_of
    from tokens.ledger import check_ledger
    from tokens.models import Allocation, Hold, UsageCounter
    from tokens.services.pool import allocation_set_limit

    hot = User.objects.select_related("organization").get(email=ctx.hot_user)
    admin = User.objects.get(email=ctx.big_admin)
    period = period_of()

    def counter() -> tuple[int, int]:
        row = (
            UsageCounter.objects.filter(user=hot, token_type="inference", period=period)
            .values_list("used", "held")
            .first()
        )
        return row or (0, 0)

    used0, held0 = counter()
    budget = spec.b5_pairs * B5_TOKENS
    limit = used0 + held0 + budget
    allocation_set_limit(
        actor=admin,
        user=hot,
        token_type="inference",
        limit=limit,
        note="Benchmark B5 budget.",
    )
    attempts = spec.b5_pairs + spec.b5_extra
    clients = [Client(port) for _ in range(B5_CLIENTS)]
    statuses: Counter = Counter()
    outcome: Counter = Counter()
    last_pair_end = [0.0]
    tag = uuid.uuid4().hex[:8]
    lock = threading.Lock()

    def attempt(index: int, n: int) -> None:
        client = clients[index]
        response = client.post_json(
            "/api/v1/authorize",
            {
                "user": ctx.hot_user,
                "model": ctx.flat_model,
                "token_type": "inference",
                "tokens": B5_TOKENS,
                "request_id": f"b5-{tag}-{n}",
            },
            ctx.service_key,
        )
        with lock:
            statuses[response.status] += 1
        if response.status == 402:
            with lock:
                outcome["refused"] += 1
            return
        if response.status != 200:
            with lock:
                outcome["authorize_error"] += 1
            return
        hold_id = response.json()["hold_id"]
        response = client.post_json(
            "/api/v1/usage",
            {
                "events": [
                    {
                        "event_id": f"b5-{tag}-{n}",
                        "user": ctx.hot_user,
                        "model": ctx.flat_model,
                        "token_type": "inference",
                        "prompt_tokens": 600,
                        "completion_tokens": 400,
                        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                        "hold_id": hold_id,
                    }
                ]
            },
            ctx.service_key,
        )
        with lock:
            statuses[response.status] += 1
            if response.status == 200 and response.json()["recorded"] == 1:
                outcome["pairs"] += 1
                last_pair_end[0] = time.perf_counter()
            else:
                outcome["settle_error"] += 1

    # Watch the hot row while the clients run: used + held must never pass the limit.
    watch = {"samples": 0, "over": 0, "max_spent": 0}
    stop = threading.Event()

    def watcher() -> None:
        with psycopg.connect(_dsn_of_django()) as conn:
            while not stop.is_set():
                row = conn.execute(
                    'SELECT c.used + c.held, a."limit" FROM tokens_usagecounter c '
                    "JOIN tokens_allocation a ON a.user_id = c.user_id AND "
                    "a.token_type = c.token_type WHERE c.user_id = %s AND "
                    "c.token_type = 'inference' AND c.period = %s",
                    [hot.pk, period],
                ).fetchone()
                conn.commit()
                if row:
                    watch["samples"] += 1
                    watch["max_spent"] = max(watch["max_spent"], row[0])
                    if row[0] > row[1]:
                        watch["over"] += 1
                time.sleep(0.02)

    watch_thread = threading.Thread(target=watcher, daemon=True)
    watch_thread.start()
    began = time.perf_counter()
    _run_clients(B5_CLIENTS, list(range(attempts)), attempt)
    wall = time.perf_counter() - began
    stop.set()
    watch_thread.join()
    for client in clients:
        client.close()

    base_rate = _hot_row_baseline(dsn, spec.b5_pairs)

    used, held = counter()
    final_limit = Allocation.objects.get(user=hot, token_type="inference").limit
    open_holds = Hold.objects.filter(user=hot, status=Hold.Status.OPEN).count()
    pairs = outcome["pairs"]
    seconds = (last_pair_end[0] - began) if pairs else wall
    rate = pairs / seconds if seconds else 0
    five_xx = sum(n for s, n in statuses.items() if s >= 500)
    spent = used + held
    overspend = max(0, spent - final_limit)
    consistent = used - used0 == pairs * B5_TOKENS and held == held0
    violations = check_ledger(organization=Organization.objects.get(pk=ctx.big_org))
    passed = (
        rate >= 300
        and overspend == 0
        and watch["over"] == 0
        and five_xx == 0
        and consistent
        and pairs == spec.b5_pairs
        and outcome["refused"] == spec.b5_extra
        and not violations
    )
    row = Row(
        f"B5 hot user, {B5_CLIENTS} clients authorize + settle",
        f"{rate:,.0f} pairs/s",
        f"{base_rate:,.0f} pairs/s raw hot-row transactions",
        f"{rate / base_rate:.2f}×",
        "≥ 300 pairs/s; no overspend; no 5xx",
        passed,
        f"{pairs:,} pairs in {seconds:.1f} s, {outcome['refused']:,} refused (402) "
        f"past the budget; used {used:,} of limit {final_limit:,} (overspend "
        f"{overspend:,}; watched {watch['samples']} times, max used+held "
        f"{watch['max_spent']:,}); 5xx: {five_xx}; HTTP {dict(statuses)}; "
        f"open holds {open_holds}; check_ledger: "
        + ("clean" if not violations else f"{len(violations)} violations"),
    )
    if violations:
        for line in violations[:20]:
            _log(f"  ledger: {line}")
    _log(f"B5: {row.ours}; {row.detail}")
    return [row]


def _hot_row_baseline(dsn: str, pairs: int) -> float:
    """The physical ceiling of B5 on this machine: the same two transactions on
    one row (a conditional ``held +=``, commit; ``used +=, held -=``, commit) from
    as many psycopg connections, nothing else. Pairs per second."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_hot")
        conn.execute(
            "CREATE TABLE bench_hot (id int PRIMARY KEY, used bigint, held bigint, "
            "lim bigint)"
        )
        conn.execute("INSERT INTO bench_hot VALUES (1, 0, 0, %s)", [pairs * B5_TOKENS])
    conns = [psycopg.connect(dsn) for _ in range(B5_CLIENTS)]

    def pair(index: int, _n: int) -> None:
        conn = conns[index]
        with conn.transaction():
            granted = conn.execute(
                "UPDATE bench_hot SET held = held + %s WHERE id = 1 AND "
                "used + held + %s <= lim RETURNING used",
                [B5_TOKENS, B5_TOKENS],
            ).fetchone()
        if granted:
            with conn.transaction():
                conn.execute(
                    "UPDATE bench_hot SET used = used + %s, held = held - %s "
                    "WHERE id = 1",
                    [B5_TOKENS, B5_TOKENS],
                )

    seconds = _run_clients(B5_CLIENTS, list(range(pairs)), pair)
    for conn in conns:
        conn.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_hot")
    return pairs / seconds


def _dsn_of_django() -> str:
    from django.db import connection

    s = connection.settings_dict
    return (
        f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} "
        f"dbname={s['NAME']} user={s['USER']}"
        + (f" password={s['PASSWORD']}" if s["PASSWORD"] else "")
    )


# --- B6 -------------------------------------------------------------------------


class _Rollback(Exception):
    pass


class QueryCounter:
    """Counts every statement the connection runs (no cap, unlike
    CaptureQueriesContext, which keeps only the last 9,000)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _run_once(org_id: int, admin_email: str) -> tuple[float, int, dict]:
    from django.db import connection, transaction

    from accounts.models import Organization, User
    from tokens.services.distribution import distribution_run

    organization = Organization.objects.get(pk=org_id)
    admin = User.objects.get(email=admin_email)
    result = {}
    counter = QueryCounter()
    try:
        with transaction.atomic():
            with connection.execute_wrapper(counter):
                began = time.perf_counter()
                run = distribution_run(actor=admin, organization=organization)
                seconds = time.perf_counter() - began
            result = run.summary
            raise _Rollback
    except _Rollback:
        pass
    return seconds, counter.count, result


def b6(ctx: Context, spec: Scale) -> list[Row]:
    from accounts.models import User

    n_big = User.objects.filter(organization_id=ctx.big_org).count()
    n_ref = User.objects.filter(organization_id=ctx.ref_org).count()
    big_runs = [_run_once(ctx.big_org, ctx.big_admin) for _ in range(3)]
    ref_runs = [_run_once(ctx.ref_org, ctx.ref_admin) for _ in range(3)]
    seconds, base_seconds = (
        median(r[0] for r in big_runs),
        median(r[0] for r in ref_runs),
    )
    queries, base_queries = big_runs[0][1], ref_runs[0][1]
    changed, base_changed = big_runs[0][2], ref_runs[0][2]
    row = Row(
        f"B6 distribution run, {n_big:,} users (every 10th raised to the floor)",
        f"{seconds:.2f} s, {queries:,} queries",
        f"{base_seconds:.2f} s, {base_queries:,} queries ({n_ref:,} users)",
        f"{seconds / base_seconds:.1f}× time, {queries / base_queries:.1f}× queries",
        "≤ 5 s; queries constant in users",
        seconds <= 5 and queries == base_queries,
        f"changes {changed.get('changes')} vs {base_changed.get('changes')} "
        f"(limits under the floor: {CUT_LIMIT:,})",
    )
    _log(f"B6: {row.ours} vs {row.baseline}; {row.detail}")
    return [row]
