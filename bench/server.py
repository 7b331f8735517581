"""The app under test: gunicorn on 127.0.0.1 (a free port), started and stopped by
the harness, with the bench settings and database."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.client import Client


def free_port(preferred: int = 8765) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def children(pid: int) -> list[int]:
    """The worker processes of the gunicorn master."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …: comm may contain spaces, so split after ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return sorted(found)


def status_kb(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM``-style field of /proc/<pid>/status, in kB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    def __init__(self, env: dict, workers: int, threads: int, log_dir: Path):
        self.env, self.workers, self.threads = env, workers, threads
        self.log_path = log_dir / "gunicorn.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def description(self) -> str:
        kind = "gthread" if self.threads > 1 else "sync"
        return (
            f"gunicorn {kind}, {self.workers} workers × {self.threads} threads, "
            f"127.0.0.1:{self.port}"
        )

    def start(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        command = [
            str(gunicorn),
            "asksage_admin.wsgi",
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--timeout",
            "600",
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
        ]
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (our own command line)
            command,
            env=self.env,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited ({self.process.returncode}); see {self.log_path}"
                )
            try:
                client = Client(self.port, timeout=5)
                if client.get("/healthz").status == 200:
                    client.close()
                    if len(self.worker_pids()) >= self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def server_env(base: dict) -> dict:
    env = dict(os.environ)
    env.update(base)
    return env
