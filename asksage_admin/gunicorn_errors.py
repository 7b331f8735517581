"""JSON refusals from gunicorn for the gateway API (issue 14, defect 13).

gunicorn refuses some requests before Django sees them (a request line over
``limit_request_line``, a header over ``limit_request_field_size``, more than
``limit_request_fields`` headers, a NUL or other invalid byte in a header, a bad
method or HTTP version) and answers them with its own small HTML page. The API
promises JSON, so ``install`` (run by ``post_worker_init`` in ``gunicorn.conf.py``,
inside each worker process) makes those answers
``{"error": "bad_request", "detail": "…"}`` (same status) when the request's path
is under ``/api/``, or could not be read at all (an over-long request line or
header block: gunicorn stops before the path is known). Other pages keep gunicorn's
HTML. gunicorn has no setting for this; it writes the refusal with
``gunicorn.util.write_error`` from ``Worker.handle_error``, so the worker's
``handle_error`` marks the current refusal and ``write_error`` is replaced by one
that reads the mark. Most header errors are raised without the request, so
``Request.parse`` is wrapped to attach it once the request line (the path) is read.
"""

import contextvars
import json

from gunicorn import util
from gunicorn.http import message
from gunicorn.http.errors import ParseException

_JSON = contextvars.ContextVar("asksage_json_refusal", default=False)
_html_write_error = util.write_error


def wants_json(req, exc) -> bool:
    """True for a refused request to /api/, or one whose path is unknown."""
    req = req if req is not None else getattr(exc, "req", None)
    path = getattr(req, "path", None)
    return path is None or str(path).startswith("/api/")


def write_error(sock, status_int, reason, mesg):
    if not _JSON.get():
        return _html_write_error(sock, status_int, reason, mesg)
    error = "bad_request" if status_int < 500 else "server_error"
    detail = f"{reason}: {mesg}" if mesg else reason
    body = json.dumps({"error": error, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)
    return None


def _parse_keeping_the_request(parse):
    def wrapped(self, unreader):
        try:
            return parse(self, unreader)
        except ParseException as error:
            if getattr(error, "req", None) is None and self.path is not None:
                error.req = self
            raise

    wrapped.asksage_wrapped = True
    return wrapped


def install(worker) -> None:
    """Wrap this worker's ``handle_error``, gunicorn's ``write_error`` and the
    request parser (in this worker process only)."""
    if not getattr(message.Request.parse, "asksage_wrapped", False):
        message.Request.parse = _parse_keeping_the_request(message.Request.parse)
    original = worker.handle_error

    def handle_error(req, client, addr, exc):
        token = _JSON.set(wants_json(req, exc))
        try:
            return original(req, client, addr, exc)
        finally:
            _JSON.reset(token)

    worker.handle_error = handle_error
    util.write_error = write_error
