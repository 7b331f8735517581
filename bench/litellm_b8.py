"""B8, LiteLLM with budget enforcement: the LiteLLM proxy (``bench/litellm_proxy.py``,
its own virtualenv, a mock chat model, one uvicorn worker) alone, and another
with the budget callback (``integrations/asksage_budget/litellm.py``) pointed at
the benchmark's gunicorn; 16 keep-alive clients, chat completions for members of
the big organization, the two proxies measured in alternating rounds in the same
run. The figure is the callback's proxy's requests per second against LiteLLM's
alone; p50 and p99 of each beside it. After the run every call must have been
recorded once and no hold left open."""

import datetime as dt
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.benchmarks import Row, _log, _run_clients
from bench.client import Client
from bench.dataset import Context, Scale
from bench.gateway import _percentile, _users
from bench.litellm_proxy import MASTER_KEY, Proxy, missing
from bench.server import Server, children

B8_CLIENTS = 16
B8_ROUNDS = 2
MAX_TOKENS = 16  # the estimate each call reserves: this plus its prompt


def _body(email: str) -> dict:
    return {
        "model": "mock-chat",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": MAX_TOKENS,
        "user": email,
    }


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their
    children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in {p for root in pids for p in (root, *children(root))}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _round(port: int, requests: int, emails: list[str]):
    """req/s, per-request seconds and statuses of ``requests`` chat calls."""
    pool = [Client(port, timeout=120) for _ in range(B8_CLIENTS)]
    times: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()

    def one(index: int, n: int) -> None:
        response = pool[index].post_json(
            "/v1/chat/completions", _body(emails[n % len(emails)]), MASTER_KEY
        )
        with lock:
            statuses[response.status] += 1
            times.append(response.seconds)

    _run_clients(B8_CLIENTS, list(range(B8_CLIENTS)), one)  # connect, warm up
    times.clear()
    statuses.clear()
    seconds = _run_clients(B8_CLIENTS, list(range(requests)), one)
    for client in pool:
        client.close()
    return requests / seconds, times, statuses


def _settled(
    ctx: Context, began: dt.datetime, expected: int, timeout: float = 60
) -> tuple[int, int]:
    """(the callback's events recorded since ``began``, its open holds) once its
    background reports are in (or at the timeout)."""
    from tokens.models import Hold, UsageEvent

    deadline = time.monotonic() + timeout
    while True:
        recorded = UsageEvent.objects.filter(
            organization_id=ctx.big_org,
            occurred_at__gte=began,
            event_id__startswith="litellm-",
        ).count()
        open_holds = Hold.objects.filter(
            status=Hold.Status.OPEN,
            created_at__gte=began,
            request_id__startswith="litellm-",
        ).count()
        if (recorded >= expected and not open_holds) or time.monotonic() > deadline:
            return recorded, open_holds
        time.sleep(0.2)


def b8(ctx: Context, spec: Scale, server: Server) -> list[Row]:
    reason = missing()
    if reason:
        _log(f"B8 skipped: {reason}")
        return [
            Row(
                "B8 LiteLLM with the budget callback",
                "—",
                "—",
                "—",
                "≥ 0.7× LiteLLM alone",
                False,
                f"not run: {reason}",
            )
        ]
    requests = 2_000 if spec.name == "full" else 320
    emails = _users(ctx)[:200]
    work = Path(tempfile.mkdtemp(prefix="asksage-b8-"))
    alone = Proxy(work, {}, callback=False)
    budget = Proxy(
        work,
        {
            "ASKSAGE_BUDGET_URL": f"http://127.0.0.1:{server.port}",
            "ASKSAGE_BUDGET_KEY": ctx.service_key,
            "ASKSAGE_BUDGET_MODEL_MAP": json.dumps({"mock-chat": ctx.flat_model}),
        },
    )
    began = dt.datetime.now(dt.UTC)
    results = {"alone": [], "budget": []}
    # CPU seconds of the proxy and of the platform's gunicorn during each one's
    # rounds (warm-up included): what a call costs, whatever else loads the host.
    cpu = {"alone": [0.0, 0.0], "budget": [0.0, 0.0]}
    try:
        alone.start()
        budget.start()
        platform = [server.process.pid]
        for _ in range(B8_ROUNDS):  # alternating, so that load drifts hit both
            for name, proxy in (("alone", alone), ("budget", budget)):
                before = _cpu([proxy.process.pid]), _cpu(platform)
                results[name].append(_round(proxy.port, requests // B8_ROUNDS, emails))
                cpu[name][0] += _cpu([proxy.process.pid]) - before[0]
                cpu[name][1] += _cpu(platform) - before[1]
        recorded, open_holds = _settled(ctx, began, requests + B8_CLIENTS * B8_ROUNDS)
    finally:
        alone.stop()
        budget.stop()

    def summary(name: str):
        rounds = results[name]
        times = [t for _, ts, _ in rounds for t in ts]
        seconds = sum(len(ts) / rate for rate, ts, _ in rounds)
        statuses = sum((s for _, _, s in rounds), Counter())
        return len(times) / seconds, times, statuses

    rate_a, times_a, statuses_a = summary("alone")
    rate_b, times_b, statuses_b = summary("budget")
    ratio = rate_b / rate_a
    p = {
        name: (_percentile(ts, 50) * 1000, _percentile(ts, 99) * 1000)
        for name, ts in (("alone", times_a), ("budget", times_b))
    }
    calls = sum(statuses_b.values())

    def per_call(name: str, which: int) -> float:
        return cpu[name][which] * 1000 / (requests + B8_CLIENTS * B8_ROUNDS)

    clean = (
        set(statuses_a) == {200}
        and set(statuses_b) == {200}
        and recorded == requests + B8_CLIENTS * B8_ROUNDS
        and open_holds == 0
    )
    detail = (
        f"{requests:,} chat calls to each proxy ({B8_ROUNDS} alternating rounds, "
        f"{B8_CLIENTS} clients, mock model, 1 uvicorn worker each); p50/p99 alone "
        f"{p['alone'][0]:.1f}/{p['alone'][1]:.1f} ms, with the callback "
        f"{p['budget'][0]:.1f}/{p['budget'][1]:.1f} ms; rounds alone "
        + ", ".join(f"{r:,.0f}" for r, _, _ in results["alone"])
        + " req/s, with "
        + ", ".join(f"{r:,.0f}" for r, _, _ in results["budget"])
        + f" req/s; HTTP alone {dict(statuses_a)}, with {dict(statuses_b)}; "
        f"events recorded {recorded:,} for {calls:,} calls "
        f"(+ {B8_CLIENTS * B8_ROUNDS} warm-up); open holds {open_holds}; "
        f"CPU per call: the proxy alone {per_call('alone', 0):.1f} ms, with the "
        f"callback {per_call('budget', 0):.1f} ms, the platform behind it "
        f"{per_call('budget', 1):.1f} ms"
    )
    row = Row(
        f"B8 LiteLLM + budget callback, {B8_CLIENTS} clients",
        f"{rate_b:,.0f} req/s (p50 {p['budget'][0]:.0f} ms, "
        f"p99 {p['budget'][1]:.0f} ms)",
        f"{rate_a:,.0f} req/s LiteLLM alone (p50 {p['alone'][0]:.0f} ms, "
        f"p99 {p['alone'][1]:.0f} ms)",
        f"{ratio:.2f}×",
        "≥ 0.7×; every call recorded once, no hold left open",
        ratio >= 0.7 and clean,
        detail,
    )
    _log(f"{row.name}: {row.ours} vs {row.baseline}; {detail}")
    return [row]
