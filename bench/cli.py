"""``python -m bench``: build the dataset in its own PostgreSQL database, check the
ledger, serve the app with gunicorn on 127.0.0.1, run B1–B6, print one table and
write it (with the machine's description) to ``bench/RESULTS.md`` (full scale) or
``bench/RESULTS-<scale>.md``; stop the server and drop the database.

The server runs the production settings (DEBUG and DEMO_MODE off, a random
SECRET_KEY, MFA required for admins: the harness signs in with the admin's TOTP
like a browser would) with two deliberate differences, both because there is no
TLS terminator in front of it: SECURE_SSL_REDIRECT=false (plain HTTP on
127.0.0.1) and ALLOWED_HOSTS=127.0.0.1,localhost,testserver. STATIC_ROOT points at
the run's own folder (``bench/settings.py``), where the harness runs collectstatic.
"""

import argparse
import contextlib
import datetime as dt
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"]
# Measured in this order: the read benchmarks before the writes change the data.
ORDER = ["B3", "B4", "B2", "B1", "B5", "B7", "B8", "B6"]


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated benchmarks to run (default all: B1,B2,B3,B4,B5,B6,B7,B8)",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the database at the end"
    )
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="use the database a --keep-db run left (skip the build)",
    )
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--results", default="", help="where to write the table")
    args = parser.parse_args(argv)
    only = [b.strip().upper() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    args.selected = [b for b in ORDER if not only or b in only]
    return args


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "CPU": cpu,
        "Cores": str(os.cpu_count()),
        "Memory": memory,
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }


def create_database(admin_dsn: str, name: str, reuse: bool) -> bool:
    """Create the database (dropping a leftover); with ``reuse`` keep an existing
    one. Returns True when it was created."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if exists and reuse:
            return False
        if exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv=None) -> int:
    args = parse(argv)
    began = time.monotonic()
    db_name = f"asksage_bench_{args.scale}"
    if not (args.keep_db or args.reuse_db):
        # A throwaway run gets its own database, so two runs never collide.
        db_name += f"_{os.getpid()}"
    base = args.pg.rstrip("/")
    db_url = f"{base}/{db_name}"
    work = Path(tempfile.mkdtemp(prefix="asksage-bench-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_STATIC_ROOT": str(work / "static"),
        "DATABASE_URL": db_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "DEMO_MODE": "false",
        "REQUIRE_ADMIN_MFA": "true",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))

    created = create_database(f"{base}/postgres", db_name, args.reuse_db)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from bench import benchmarks as bm
    from bench import dataset, gateway, litellm_b8
    from bench.report import write_results
    from bench.server import Server, server_env

    spec = dataset.scale(args.scale)
    server = None
    rows = []
    loads: dict[str, str] = {}
    ok = False
    try:
        if created:
            t = time.monotonic()
            call_command("migrate", verbosity=0, interactive=False)
            log(f"migrations: {time.monotonic() - t:.1f} s")
            log(f"building the {args.scale} dataset …")
            ctx = dataset.build(spec)
            log(f"dataset built in {ctx.build_seconds:.0f} s: {ctx.counts}")
        else:
            call_command("migrate", verbosity=0, interactive=False)
            ctx = dataset.load_context()
            log(f"reusing {db_name}: {ctx.counts}")

        from tokens.ledger import check_ledger

        t = time.monotonic()
        violations = check_ledger()
        seconds = time.monotonic() - t
        log(f"check_ledger: {len(violations)} violations in {seconds:.0f} s")
        if violations:
            for line in violations[:50]:
                log(f"  {line}")
            log("the dataset breaks the ledger invariants: not benchmarking")
            return 2
        ledger_seconds = time.monotonic() - t

        t = time.monotonic()
        call_command("collectstatic", interactive=False, verbosity=0)
        log(f"collectstatic: {time.monotonic() - t:.1f} s")
        connections.close_all()

        server = Server(server_env(env), args.workers, args.threads, work)
        server.start()
        log(f"serving on 127.0.0.1:{server.port} ({server.description})")
        big = ref = None
        if {"B2", "B3", "B4"} & set(args.selected):
            big = bm.signed_in(server.port, ctx.big_admin, ctx.password)
            ref = bm.signed_in(server.port, ctx.ref_admin, ctx.password)
        dsn = db_url.replace("postgres://", "postgresql://")
        for name in args.selected:
            log(f"{name} … (load average {_load()})")
            loads[name] = _load()
            t = time.monotonic()
            if name == "B3":
                rows += bm.b3(ctx, spec, big, ref)
            elif name == "B4":
                rows += bm.b4(ctx, spec, big)
            elif name == "B2":
                rows += bm.b2(ctx, spec, big, server, dsn)
            elif name == "B1":
                rows += bm.b1(ctx, spec, server.port, dsn)
            elif name == "B5":
                rows += bm.b5(ctx, spec, server.port, dsn)
            elif name == "B6":
                rows += bm.b6(ctx, spec)
            elif name == "B7":
                rows += gateway.b7(ctx, spec, server, dsn)
            elif name == "B8":
                rows += litellm_b8.b8(ctx, spec, server)
            log(f"{name} took {time.monotonic() - t:.0f} s")
            loads[name] += f" → {_load()}"
        ok = True
    finally:
        if server is not None:
            server.stop()
        connections.close_all()
        if not args.keep_db:
            drop_database(f"{base}/postgres", db_name)
            log(f"dropped {db_name}")
        shutil.rmtree(work, ignore_errors=True)
    if not ok:
        return 1

    elapsed = time.monotonic() - began
    pg_version = _pg_version(f"{base}/postgres")
    info = machine() | {
        "PostgreSQL": pg_version,
        "Django": django.get_version(),
        "Server": server.description if server else "—",
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Commit": _git_head(),
    }
    path = (
        Path(args.results)
        if args.results
        else (
            ROOT
            / "bench"
            / ("RESULTS.md" if args.scale == "full" else f"RESULTS-{args.scale}.md")
        )
    )
    table = write_results(
        path,
        rows,
        scale=args.scale,
        info=info,
        ctx=ctx,
        elapsed=elapsed,
        ledger_seconds=ledger_seconds,
        reused=not created,
        loads=loads,
    )
    print()
    print(table)
    print()
    failed = [r.name for r in rows if not r.passed]
    log(
        f"{len(rows) - len(failed)}/{len(rows)} targets met; whole run "
        f"{elapsed / 60:.1f} min; written to {path}"
    )
    return 0


def _load() -> str:
    """The 1-minute load average (other work on the machine shows here)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _pg_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
