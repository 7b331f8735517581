"""Request id: one per request, from a trusted-looking X-Request-ID or a new one."""

import logging
import re
import uuid

from asksage_admin.lib import request_context

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    header = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(self.header, "")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_context.activate(
            request_context.RequestContext(
                request_id=request_id, ip=request_context.client_ip(request)
            )
        )
        try:
            response = self.get_response(request)
        finally:
            request_context.reset(token)
        response[self.header] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to every log record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_context.current().request_id or "-"
        return True
