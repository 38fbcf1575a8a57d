"""moto's S3 server with HTTP/1.1 keep-alive, as real S3 has it.

``ThreadedMotoServer`` serves through werkzeug's development server, which closes the
connection after every answer. So each S3 request of a test paid for a new TCP connection on
the client side, a new thread on the server side, and a 10 ms wait for the client to hang up
before that thread ended. aiobotocore, like every S3 client, keeps connections open; this
server lets it, and answers exactly what moto answers.

Measured on a 2-core machine: a GetObject took 3.4 ms of CPU (client and server in one
process) and now takes 2.1 ms; a PutObject 3.9 ms and now 2.2 ms.

How an answer is sent differs from werkzeug's server in three ways, all of them what a
keep-alive HTTP/1.1 server must do:

- the request body is read whole (by ``Content-Length``, or de-chunked) before moto runs, so
  the next request on the connection starts where this one ended;
- moto's answer is sent with a ``Content-Length`` (no ``Connection: close``) and in one
  write after the headers, with Nagle off (else the body waits for a delayed ACK);
- an answer to ``HEAD`` keeps moto's ``Content-Length``, the size of the object, and has no body.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable
from typing import Any

from botocore.utils import parse_to_aware_datetime
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import DechunkedInput, make_server

_NO_BODY = frozenset({204, 304})
_ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def parse_iso_time(value: Any) -> dt.datetime:
    """``botocore.utils.parse_to_aware_datetime``, with the times moto stores (``2026-11-25T12:00:00.000Z``) read
    by ``datetime.fromisoformat``: the same instant in UTC, so the same text once moto formats it again. Every
    other value goes to botocore's parser (dateutil), as before."""
    if isinstance(value, str) and _ISO_UTC.fullmatch(value):
        return dt.datetime.fromisoformat(value)
    parsed: dt.datetime = parse_to_aware_datetime(value)
    return parsed


class KeepAliveHandler(MotoRequestHandler):
    """One connection: any number of requests, each answered whole."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: the tests make thousands of requests."""

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked
            body = DechunkedInput(self.rfile).read()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        environ.update(
            {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": False, "CONTENT_LENGTH": str(len(body))}
        )
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return self._refuse_write

        answer: Iterable[bytes] = self.server.app(environ, start_response)  # type: ignore[attr-defined]
        try:
            payload = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        head = self.command == "HEAD"
        for name, value in headers:
            lowered = name.lower()
            if lowered in ("connection", "transfer-encoding") or (lowered == "content-length" and not head):
                continue
            self.send_header(name, value)
        if not head and int(code) not in _NO_BODY:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head and payload:
            self.wfile.write(payload)

    @staticmethod
    def _refuse_write(data: bytes) -> None:
        raise AssertionError("moto's app returns its body; it never calls write()")


class KeepAliveMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` with ``KeepAliveHandler`` in place of werkzeug's handler."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveHandler)
        self._server_ready_event.set()
        # werkzeug looks for a shutdown request every 0.5 s, so stopping the server at the end of a session
        # waited up to that long. A request wakes the loop at once whatever the interval, so serving is unchanged.
        self._server.serve_forever(poll_interval=0.05)
