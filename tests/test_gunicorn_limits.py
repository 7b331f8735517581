"""Requests gunicorn refuses before Django (issue 14, defect 13): under /api/ the
refusal is JSON like every other API answer; pages keep gunicorn's HTML. Starts the
real server (gunicorn.conf.py, one sync worker) on a free local port and sends the
raw requests over a socket."""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
DEADLINE_SECONDS = 60

pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn not installed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "DEMO_MODE": "true", "DJANGO_SETTINGS_MODULE": ""}
    env.pop("DJANGO_SETTINGS_MODULE")
    process = subprocess.Popen(  # noqa: S603 (our own command line)
        [
            str(GUNICORN),
            "asksage_admin.wsgi",
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(process, b"Booting worker")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(process, marker: bytes) -> None:
    """Read gunicorn's log until ``marker`` (bounded): the socket is bound before
    the worker boots, and a connection waits in the backlog until it accepts."""
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    seen = b""
    while marker not in seen:
        if not selector.select(timeout=DEADLINE_SECONDS):
            raise AssertionError(f"gunicorn did not start: {seen!r}")
        chunk = os.read(process.stderr.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"gunicorn exited: {seen!r}")
        seen += chunk


def _send(port: int, raw: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SECONDS) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        k.strip().lower(): v.strip()
        for k, _s, v in (x.partition(":") for x in lines[1:])
    }
    return int(lines[0].split()[1]), headers, body


def _request(path: bytes, *headers: bytes) -> bytes:
    return b"\r\n".join(
        [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, b"", b""]
    )


REFUSED = [
    pytest.param(
        _request(b"/api/v1/balance", b"X-Bad: a\x00b"), 400, id="nul-in-header"
    ),
    pytest.param(
        _request(b"/api/v1/balance", b"X-Big: " + b"a" * 10_240), 431, id="10kb-header"
    ),
    pytest.param(
        _request(b"/api/v1/balance?user=" + b"a" * 4_100), 414, id="4kb-request-line"
    ),
    pytest.param(
        _request(b"/api/v1/balance", *(b"X-H%d: v" % i for i in range(101))),
        431,
        id="101-headers",
    ),
]


@pytest.mark.parametrize(("raw", "status"), REFUSED)
def test_api_requests_refused_by_gunicorn_answer_json(server, raw, status):
    code, headers, body = _send(server, raw)
    assert code == status
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["error"] == "bad_request"
    assert document["detail"]


@pytest.mark.parametrize(
    ("extra", "status"),
    [(b"X-Bad: a\x00b", 400), (b"X-Big: " + b"a" * 10_240, 431)],
    ids=["nul-in-header", "10kb-header"],
)
def test_pages_refused_by_gunicorn_keep_its_html(server, extra, status):
    code, headers, body = _send(server, _request(b"/accounts/login/", extra))
    assert code == status
    assert headers["content-type"] == "text/html"
    assert b"<html>" in body
