"""Fault injection for the commit protocol: real failures and real kills, no mocks of our code.

- ``FaultProxy``: an HTTP proxy in front of moto's S3 server. It counts every request and,
  at request *k*, can deny it (403, not retried), start an outage (503 for it and every
  request after), or forward it and then SIGKILL the client process before it sees the answer,
  or forward it, *cancel* the client (SIGTERM, or SIGUSR1 for a ``task.cancel()``) and hold the
  answer back a moment: the request was applied, the answer not yet received.
- ``FsFaults``: in a forked child, wraps the ``os`` calls that change the file system
  (create, fsync, rename, unlink, mkdir, rmdir); at step *k* it fails the call with EIO,
  or performs it and then SIGKILLs the process, or cancels it (SIGTERM or SIGUSR1).
- ``run_child``: runs ``python -m pipeline`` in a forked child (so pandas and aioboto3 are
  already imported) and returns its exit code and stderr, or ``None`` when it was killed.
  With ``library=True`` the child runs ``run_pipeline`` as a task that SIGUSR1 cancels, the way a
  library user's own code cancels a run (``task.cancel()``); it exits 3 when cancelled.

Steps are counted, not listed: a probe run reports how many there are, and the tests walk
every one of them, so a new step in the commit cannot escape the harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import gc
import http.client
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Imported here, not in each child: every forked run then starts with the command line already loaded.
from pipeline import cli, deps

_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied (injected)</Message></Error>"
)
_OUTAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>injected outage</Message></Error>"
)


CANCELS = {"term": signal.SIGTERM, "cancel": signal.SIGUSR1}
"""Modes that cancel the run rather than kill it: SIGTERM reaches the CLI, SIGUSR1 a library ``task.cancel()``."""
CANCELLED_EXIT = 3
"""What a library child exits with when its run task was cancelled."""
HOLD_ANSWER = 0.1
"""Seconds the proxy holds an applied request's answer back after cancelling its client."""


@dataclasses.dataclass
class Plan:
    """What the proxy does: ``pass``, or at request ``at``: ``deny``, ``outage``, ``kill``, ``term`` or ``cancel``."""

    mode: str = "pass"
    at: int = 0
    victim: int | None = None


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one request to moto, unless the proxy's plan says to fail or kill at it."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle on, the body waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    proxy: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    upstream: http.client.HTTPConnection | None = None
    """This client connection's own connection to moto, kept open as the client keeps its own."""

    def finish(self) -> None:
        super().finish()
        if self.upstream is not None:
            self.upstream.close()

    def _handle(self) -> None:
        proxy, body = self.proxy, self._body()
        with proxy.lock:
            proxy.count += 1
            number, plan = proxy.count, proxy.plan
            proxy.log.append(f"{number} {self.command} {self.path}")
        if plan.mode == "deny" and number == plan.at:
            return self._reply(403, _DENIED)
        if plan.mode == "outage" and number >= plan.at:
            return self._reply(503, _OUTAGE)
        if self.upstream is None:
            self.upstream = proxy.connect()
        status, headers, data = proxy.forward(self.upstream, self.command, self.path, self.headers, body)
        if plan.mode == "kill" and number == plan.at and plan.victim:
            with contextlib.suppress(ProcessLookupError):
                os.kill(plan.victim, signal.SIGKILL)
            self.close_connection = True
            return None
        if plan.mode in CANCELS and number == plan.at and plan.victim:
            with contextlib.suppress(ProcessLookupError):
                os.kill(plan.victim, CANCELS[plan.mode])
            proxy.held.wait(HOLD_ANSWER)  # applied; the client is cancelled while it waits for the answer
        return self._reply(status, data, headers)

    def _reply(self, status: int, data: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        skip = {"content-length", "transfer-encoding", "connection", "server", "date"}
        for name, value in headers:
            if name.lower() not in skip:
                self.send_header(name, value)
        if not headers:
            self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class FaultProxy:
    """A threaded HTTP/1.1 proxy to ``upstream`` that injects one planned fault."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.count = 0
        self.plan = Plan()
        self.log: list[str] = []
        self.lock = threading.Lock()
        self.held = threading.Event()
        """Never set: what a held answer waits on, for ``HOLD_ANSWER`` seconds."""
        handler = type("Handler", (_ProxyHandler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval: stopping the proxy then takes milliseconds, not up to half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        """Where clients connect."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def connect(self) -> http.client.HTTPConnection:
        """A connection to ``upstream`` (opened at the first request)."""
        return http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30)

    def forward(
        self, connection: http.client.HTTPConnection, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request on ``connection``: status, headers and body of the answer."""
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("expect", "transfer-encoding", "connection")}
        forwarded["Content-Length"] = str(len(body))
        connection.request(method, path, body=body, headers=forwarded)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def arm(self, mode: str = "pass", at: int = 0, victim: int | None = None) -> None:
        """Reset the request count and plan the next fault."""
        with self.lock:
            self.count, self.plan, self.log = 0, Plan(mode, at, victim), []


# -- the file system ------------------------------------------------------------------------


class FsFaults:
    """Counts the file-system steps of this process; fails or kills at step ``at``."""

    CALLS = ("replace", "rename", "unlink", "rmdir", "mkdir", "fsync")

    def __init__(self, mode: str = "count", at: int = 0) -> None:
        self.mode, self.at, self.count = mode, at, 0
        self.steps: list[str] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        """Wrap the ``os`` functions (only ever in a forked child: this never undoes itself)."""
        for name in self.CALLS:
            setattr(os, name, self._wrap(name, getattr(os, name)))
        original_open = os.open

        def counted_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT:
                return int(self._step("create", path, lambda: original_open(path, flags, *args, **kwargs)))
            return original_open(path, flags, *args, **kwargs)

        os.open = counted_open

    def _wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return self._step(name, args[0] if args else "", lambda: function(*args, **kwargs))

        return wrapped

    def _step(self, name: str, target: Any, call: Callable[[], Any]) -> Any:
        # Steps run on the loop and in worker threads at once: each takes its number under the lock, and is
        # judged by that number (``self.count`` may have moved on by the time the step is done).
        with self._lock:
            self.count += 1
            number = self.count
            self.steps.append(f"{name} {target}")
        if self.mode == "fail" and number == self.at:
            raise OSError(errno.EIO, f"injected failure of {name}", str(target))
        result = call()
        if number == self.at and self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if number == self.at and self.mode in CANCELS:
            os.kill(os.getpid(), CANCELS[self.mode])  # handled by the event loop at its next turn
        return result


# -- children -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChildResult:
    """How a forked ``python -m pipeline`` ended: exit code (``None`` if killed), stderr, and its step log."""

    code: int | None
    stderr: str
    steps: list[str]


class Child:
    """A forked ``python -m pipeline``, held at the start line until ``go``."""

    def __init__(
        self,
        argv: list[str],
        workdir: Path,
        *,
        name: str = "child",
        env: dict[str, str] | None = None,
        fs: FsFaults | None = None,
        library: bool = False,
    ) -> None:
        self.err_path, self.steps_path = workdir / f"{name}.stderr", workdir / f"{name}.steps"
        for path in (self.err_path, self.steps_path):
            path.unlink(missing_ok=True)
        go_reader, self._go = os.pipe()
        _warm()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into pytest
            # Frozen (a splice of lists, not a walk), the objects the child inherits are never traversed by its
            # collections, which would touch, and so copy, every page that holds one: one full collection in a
            # child cost more than the rest of its run. The parent's collector is left as it was.
            gc.freeze()
            code = 70
            try:
                os.close(self._go)
                os.read(go_reader, 1)  # wait until the parent has armed what watches this pid
                os.close(go_reader)
                _child(argv, self.err_path, self.steps_path, env or {}, fs, library)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                code = 71
            finally:
                os._exit(code)
        os.close(go_reader)

    def go(self) -> None:
        """Let the child start."""
        os.write(self._go, b"g")
        os.close(self._go)

    def wait(self) -> ChildResult:
        """Wait for the child to end (in a thread, if the caller's loop must keep serving)."""
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        err_path, steps_path = self.err_path, self.steps_path
        stderr = err_path.read_text(encoding="utf-8", errors="replace") if err_path.exists() else ""
        steps = steps_path.read_text(encoding="utf-8").splitlines() if steps_path.exists() else []
        return ChildResult(None if code == -signal.SIGKILL else code, stderr, steps)


@functools.cache
def _warm() -> None:
    """Do once in this process what every child's command would do first: build the parser, import the checks."""
    cli.parser()
    deps.require_core()


def run_child(
    argv: list[str],
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    fs: FsFaults | None = None,
    started: Callable[[int], None] | None = None,
    library: bool = False,
) -> ChildResult:
    """Fork, run ``pipeline.cli.main(argv)`` (or, with ``library``, ``run_pipeline``) in the child, wait, report."""
    child = Child(argv, workdir, env=env, fs=fs, library=library)
    if started is not None:
        started(child.pid)
    child.go()
    return child.wait()


def _child(
    argv: list[str], err_path: Path, steps_path: Path, env: dict[str, str], fs: FsFaults | None, library: bool
) -> None:
    # Forked from inside a running event loop: this process has none of its own yet.
    asyncio.events._set_running_loop(None)

    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - the child's stderr for its whole life
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    os.environ.update(env)
    if fs is not None:
        fs.install()
    code = _library_run(argv) if library else cli.main(argv)
    if fs is not None:
        steps_path.write_text("\n".join(fs.steps), encoding="utf-8")
    sys.stderr.flush()
    raise SystemExit(code)


def _library_run(argv: list[str]) -> int:
    """``run_pipeline`` of ``run --config C --date D`` as a task that SIGUSR1 cancels; the outcome on stderr."""
    import datetime as dt

    from pipeline.errors import PipelineError
    from pipeline.runner import outcome_of, run_pipeline

    config, day = argv[argv.index("--config") + 1], dt.date.fromisoformat(argv[argv.index("--date") + 1])

    async def main() -> int:
        task = asyncio.ensure_future(run_pipeline(config, trend_date=day))
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, task.cancel)
        try:
            await task
        except asyncio.CancelledError as exc:
            sys.stderr.write(f"error: cancelled; {outcome_of(exc)}\n")
            return CANCELLED_EXIT
        except PipelineError as exc:
            sys.stderr.write(f"error: {exc}; {exc.outcome}\n")
            return 1
        return 0

    return asyncio.run(main())


@contextlib.contextmanager
def proxy_for(upstream: str) -> Iterator[FaultProxy]:
    """A started ``FaultProxy`` in front of ``upstream``."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
