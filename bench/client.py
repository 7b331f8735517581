"""A small HTTP/1.1 client for the benchmarks: one keep-alive connection, cookies,
CSRF and the sign-in (+ TOTP) flow of a browser. Only ever talks to 127.0.0.1."""

import http.client
import json
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Response:
    def __init__(self, status: int, headers: dict, body: bytes, seconds: float):
        self.status, self.headers, self.body, self.seconds = (
            status,
            headers,
            body,
            seconds,
        )

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client:
    def __init__(self, port: int, timeout: float = 600):
        self.host, self.port, self.timeout = "127.0.0.1", port, timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _headers(self, extra: dict | None) -> dict:
        headers = {"Host": f"{self.host}:{self.port}", "Accept-Encoding": "identity"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _remember(self, response: http.client.HTTPResponse) -> None:
        for value in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict | None = None,
        sink=None,
    ) -> Response:
        """One request; ``sink(chunk)`` receives the body in pieces instead of
        keeping it (for large downloads)."""
        for attempt in (1, 2):
            conn = self._connection()
            began = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=self._headers(headers))
                response = conn.getresponse()
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
            ):
                # The server closed an idle keep-alive connection: reconnect once.
                self.close()
                if attempt == 2:
                    raise
                continue
            if sink is None:
                data = response.read()
            else:
                data = b""
                while chunk := response.read1(1 << 16):
                    sink(chunk)
            seconds = time.perf_counter() - began
            self._remember(response)
            if response.will_close:
                self.close()
            return Response(response.status, dict(response.headers), data, seconds)
        raise AssertionError("unreachable")

    def download(self, path: str, params: dict | None = None) -> tuple[int, int, int]:
        """GET a large body, counting its bytes and line ends without keeping it:
        (status, bytes, newlines). The chunked framing is parsed here in large
        blocks (http.client returns one chunk per read, a few µs of Python per
        chunk, which would make the client, not the server, the bottleneck).
        ``last_chunks`` is then the number of HTTP chunks (0: not chunked) and
        ``last_ends_with_newline`` whether the body ends with a line end."""
        self.last_chunks, self.last_ends_with_newline = 0, False
        if params:
            path = f"{path}?{urlencode(params)}"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("GET", path, headers=self._headers(None))
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError):
                self.close()  # an idle keep-alive connection closed: once more
                if attempt == 2:
                    raise
        self._remember(response)
        if response.status != 200 or not response.chunked:
            size = newlines = 0
            while block := response.read1(1 << 20):
                size += len(block)
                newlines += block.count(b"\n")
                self.last_ends_with_newline = block.endswith(b"\n")
            return response.status, size, newlines
        raw, buffer, size, newlines, pos = response.fp, b"", 0, 0, 0
        finished = False
        while not finished:
            block = raw.read1(1 << 20)
            if not block:
                raise RuntimeError("the chunked body ended early")
            buffer = buffer[pos:] + block
            pos = 0
            while True:
                eol = buffer.find(b"\r\n", pos)
                if eol < 0:
                    break
                length = int(buffer[pos:eol].split(b";", 1)[0], 16)
                if length == 0:
                    finished = True
                    break
                end = eol + 2 + length
                if end + 2 > len(buffer):
                    break  # the rest of this chunk is in the next block
                newlines += buffer.count(b"\n", eol + 2, end)
                size += length
                self.last_chunks += 1
                self.last_ends_with_newline = buffer[end - 1 : end] == b"\n"
                pos = end + 2
        # The response was read past http.client: start afresh next time.
        self.close()
        return 200, size, newlines

    def get(self, path: str, params: dict | None = None, **kwargs) -> Response:
        if params:
            path = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, data: dict, referer: str = "") -> Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if referer:
            headers["Referer"] = f"http://{self.host}:{self.port}{referer}"
        return self.request(
            "POST", path, body=urlencode(data).encode(), headers=headers
        )

    def post_json(self, path: str, payload, token: str) -> Response:
        return self.request(
            "POST",
            path,
            body=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
            },
        )

    def _form_token(self, html: str) -> str:
        match = _CSRF_INPUT.search(html)
        if not match:
            raise RuntimeError("no CSRF token in the form")
        return match.group(1)

    def sign_in(self, email: str, password: str, totp=None) -> None:
        """The browser's flow: the login form, then the TOTP form when asked."""
        page = self.get("/accounts/login/")
        response = self.post_form(
            "/accounts/login/",
            {
                "csrfmiddlewaretoken": self._form_token(page.text),
                "username": email,
                "password": password,
            },
            referer="/accounts/login/",
        )
        if response.status != 302:
            raise RuntimeError(f"sign-in refused ({response.status})")
        target = urlsplit(response.headers.get("Location", "/"))
        if target.path.startswith("/accounts/mfa/"):
            if totp is None:
                raise RuntimeError("MFA is required but no TOTP device was given")
            where = target.path + (f"?{target.query}" if target.query else "")
            page = self.get(where)
            response = self.post_form(
                where,
                {"csrfmiddlewaretoken": self._form_token(page.text), "code": totp()},
                referer=where,
            )
            if response.status != 302:
                raise RuntimeError(f"MFA code refused ({response.status})")
