"""The s3 loader against answers moto never gives by itself.

A proxy in front of moto answers chosen requests itself, the way S3 or an S3-compatible store
does: a bare status without an error body, a 503, an answer that is not HTTP, an upload part
without its checksum header. Everything else reaches moto unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import http.client
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.datalake import LockClaim, ObjectSink
from pipeline.errors import LoadError, TransientLoadError
from stages.loaders.s3 import MIN_PART_SIZE, S3Loader, _credential_source
from tests.support.fakes import TREND_DATE
from tests.support.faults import FaultProxy
from tests.support.fixtures_s3 import get_object, open_uploads
from tests.support.lake import context_for
from tests.support.s3 import s3_loader

Answer = tuple[int, list[tuple[str, str]], bytes]
Reply = Callable[[Callable[[], Answer]], Answer]

LOCK = "_locks/2026-11-25_movie_day.json"


def status(code: int, body: bytes = b"") -> Reply:
    """Answer ``code`` with ``body`` (S3 answers HEAD, and some stores any 404, without a body)."""
    return lambda forward: (code, [], body)


def error(code: int, error_code: str | None, message: str) -> Reply:
    """An S3 error document; ``error_code=None`` leaves out ``<Code>``."""
    code_element = f"<Code>{error_code}</Code>" if error_code else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{code_element}<Message>{message}</Message></Error>'
    return status(code, body.encode())


def garbled(forward: Callable[[], Answer]) -> Answer:
    """An answer that is not HTTP (a header name with spaces), as from a broken middlebox."""
    return 200, [("Not A Header", "injected")], b""


def without_header(name: str) -> Reply:
    """Forward, then leave ``name`` out of moto's answer."""

    def reply(forward: Callable[[], Answer]) -> Answer:
        code, headers, body = forward()
        return code, [(key, value) for key, value in headers if key.lower() != name], body

    return reply


def rewritten(old: bytes, new: bytes) -> Reply:
    """Forward, then put ``new`` for the first ``old`` in moto's answer."""

    def reply(forward: Callable[[], Answer]) -> Answer:
        code, headers, body = forward()
        return code, headers, body.replace(old, new, 1)

    return reply


class S3Front(FaultProxy):
    """A proxy to moto that gives queued replies to matching requests, in order, and forwards the rest."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.queued: list[tuple[str, str, Reply | None]] = []

    def answer(self, method: str, marker: str, *replies: Reply | None) -> None:
        """The next requests of ``method`` whose path holds ``marker`` get ``replies`` (``None``: forward it)."""
        with self.lock:
            self.queued.extend((method, marker, reply) for reply in replies)

    def forward(
        self, connection: http.client.HTTPConnection, method: str, path: str, headers: Any, body: bytes
    ) -> Answer:
        """The queued reply for this request, or moto's."""
        with self.lock:
            match = next((q for q in self.queued if q[0] == method and q[1] in path), None)
            if match is not None:
                self.queued.remove(match)

        def upstream() -> Answer:
            return super(S3Front, self).forward(connection, method, path, headers, body)

        return upstream() if match is None or match[2] is None else match[2](upstream)


@pytest.fixture
def front(moto_endpoint: str) -> Iterator[S3Front]:
    """A proxy to the moto server for this test."""
    proxy = S3Front(moto_endpoint)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
async def through(front: S3Front, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3Loader]:
    """An open s3 loader on the test's bucket through the proxy, with 5 MiB parts and no retries."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    loader = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, front.url, part_size=MIN_PART_SIZE)
    async with loader:
        yield loader


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler (an unretrieved task error, an unclosed session)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


async def _open_upload(loader: S3Loader, key: str = "v/big.csv") -> ObjectSink:
    sink = await loader.store.open_sink(key, "text/csv")
    await sink.write(b"x" * (loader.options.part_size + 1))
    return sink


# -- error codes ------------------------------------------------------------------------------
async def test_an_error_without_a_code_is_named_by_its_http_status(through: S3Loader, front: S3Front) -> None:
    front.answer("GET", "/a.json", error(400, None, "refused (injected)"))
    with pytest.raises(LoadError, match=r"cannot read s3://[^/]+/a\.json: 400: refused \(injected\)$"):
        await through.store.get_object("a.json")


async def test_a_503_is_a_transient_error(through: S3Loader, front: S3Front) -> None:
    front.answer("PUT", "/a.json", error(503, "ServiceUnavailable", "injected outage"))
    with pytest.raises(TransientLoadError, match=r"cannot upload s3://[^/]+/a\.json: ServiceUnavailable"):
        await through.store.put_object("a.json", b"{}", "application/json")


async def test_a_bare_404_on_read_is_a_missing_key(through: S3Loader, front: S3Front) -> None:
    front.answer("GET", "/a.json", status(404))
    assert await through.store.get_object("a.json") is None


async def test_a_bare_404_on_releasing_the_lock_means_it_is_gone(through: S3Loader, front: S3Front) -> None:
    front.answer("DELETE", LOCK, status(404))
    await through.store.release_lock(LockClaim(LOCK, '"some-etag"'))
    assert through.store.requests["delete_object"] == 0


async def test_a_denied_read_that_cannot_be_listed_either_is_an_error(through: S3Loader, front: S3Front) -> None:
    front.answer("GET", "/a.json", error(403, "AccessDenied", "Access Denied"))
    front.answer("GET", "list-type=2", error(403, "AccessDenied", "Access Denied"))
    with pytest.raises(LoadError, match=r"cannot read s3://[^/]+/a\.json: AccessDenied"):
        await through.store.get_object("a.json")


async def test_a_connected_preflight_explains_a_403_from_head_bucket(
    front: S3Front, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    front.answer("HEAD", f"/{s3_bucket}", status(403))
    checks = await s3_loader(context_for(TREND_DATE), s3_bucket, front.url).preflight(True)
    assert [(check.what, check.ok) for check in checks][-1] == ("HeadBucket", False)
    assert checks[-1].detail.startswith(f"s3://{s3_bucket}: access denied (403;")


# -- the multipart sink ------------------------------------------------------------------------
async def test_parts_without_a_checksum_in_the_answer_are_completed_with_our_own(
    through: S3Loader, front: S3Front, s3_client: Any, s3_bucket: str
) -> None:
    front.answer("PUT", "partNumber=", without_header("x-amz-checksum-sha256"), without_header("x-amz-checksum-sha256"))
    sink = await _open_upload(through)
    await sink.commit()
    assert await get_object(s3_client, s3_bucket, "v/big.csv") == b"x" * (MIN_PART_SIZE + 1)
    assert through.store.requests["complete_multipart_upload"] == 1


async def test_aborting_a_committed_upload_sends_nothing(through: S3Loader, front: S3Front) -> None:
    sink = await _open_upload(through)
    await sink.commit()
    front.arm()
    await sink.abort()
    assert front.log == []


async def test_a_failed_part_is_retrieved_when_the_sink_is_aborted(
    through: S3Loader, front: S3Front, s3_client: Any, s3_bucket: str, loop_errors: list[dict[str, Any]]
) -> None:
    front.answer("PUT", "partNumber=", error(403, "AccessDenied", "Access Denied"))
    sink = await _open_upload(through)
    await sink.abort()
    del sink
    gc.collect()
    assert [context["message"] for context in loop_errors] == []
    assert await open_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize(
    ("first", "logged", "not_logged"),
    [
        (error(403, "AccessDenied", "Access Denied"), "failed (AccessDenied); retrying", "landed after"),
        (garbled, "failed; retrying", "landed after"),
        (status(204), "landed after the abort; aborting again", "retrying"),
        (error(400, None, "refused (injected)"), "failed; retrying", "failed ("),  # no code to name
    ],
    ids=["denied", "garbled", "parts-landed", "no-code"],
)
async def test_an_abort_is_tried_once_more_and_then_succeeds(
    through: S3Loader,
    front: S3Front,
    s3_client: Any,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
    first: Reply,
    logged: str,
    not_logged: str,
) -> None:
    sink = await _open_upload(through)
    front.answer("DELETE", "uploadId=", first)
    with caplog.at_level(logging.INFO, logger="stages.loaders.s3_multipart"):
        await sink.abort()
    assert logged in caplog.text and not_logged not in caplog.text
    assert "aborted the upload of" in caplog.text
    assert await open_uploads(s3_client, s3_bucket) == []


async def test_an_abort_whose_parts_cannot_be_listed_is_sent_once_more(
    through: S3Loader, front: S3Front, s3_client: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await _open_upload(through)
    # S3 answers the abort, yet a part lands after it (moto still holds the upload); the policy has no ListParts.
    front.answer("DELETE", "uploadId=", status(204))
    front.answer("GET", "uploadId=", error(403, "AccessDenied", "Access Denied"))
    with caplog.at_level(logging.INFO, logger="stages.loaders.s3_multipart"):
        await sink.abort()
    assert "landed after the abort; aborting again" in caplog.text
    assert "aborted the upload of" in caplog.text
    assert await open_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize(
    ("reply", "failure"),
    [
        (garbled, (LoadError, r"cannot abort the upload of s3://[^/]+/v/big\.csv: HTTPClientError")),
        (status(204), (LoadError, r"the multipart upload \S+ of s3://[^/]+/v/big\.csv is still open after two aborts")),
    ],
    ids=["garbled-twice", "still-listed-twice"],
)
async def test_an_abort_that_fails_twice_is_an_error(
    through: S3Loader, front: S3Front, s3_client: Any, s3_bucket: str, reply: Reply, failure: tuple[type, str]
) -> None:
    sink = await _open_upload(through)
    front.answer("DELETE", "uploadId=", reply, reply)
    with pytest.raises(failure[0], match=failure[1]):
        await sink.abort()
    (upload,) = (await s3_client.list_multipart_uploads(Bucket=s3_bucket))["Uploads"]
    await s3_client.abort_multipart_upload(Bucket=s3_bucket, Key="v/big.csv", UploadId=upload["UploadId"])


async def test_aborting_an_upload_that_is_gone_already_is_quiet(
    through: S3Loader, front: S3Front, s3_client: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await _open_upload(through)
    front.answer("DELETE", "uploadId=", error(404, "NoSuchUpload", "The specified upload does not exist."))
    with caplog.at_level(logging.INFO, logger="stages.loaders.s3_multipart"):
        await sink.abort()
    assert [record for record in caplog.records if record.name == "stages.loaders.s3_multipart"] == []
    assert through.store.requests["abort_multipart_upload"] == 0
    (upload,) = (await s3_client.list_multipart_uploads(Bucket=s3_bucket))["Uploads"]
    await s3_client.abort_multipart_upload(Bucket=s3_bucket, Key="v/big.csv", UploadId=upload["UploadId"])


# -- leftovers ---------------------------------------------------------------------------------
async def test_only_uploads_older_than_abort_uploads_after_are_old(
    through: S3Loader, front: S3Front, s3_client: Any, s3_bucket: str
) -> None:
    for key in ("_versions/a.run-r1.csv", "_versions/b.run-r2.csv"):
        await s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    # moto dates every upload 2010-11-10; S3 gives the real time, here a minute ago for one of them.
    recent = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    front.answer("GET", "?uploads", rewritten(b"2010-11-10T20:48:33.000Z", recent.encode()))
    found = await through.store.leftovers()
    assert through.options.abort_uploads_after == 86400
    assert sorted(leftover.old for leftover in found) == [False, True]


# -- the client and the credential chain ------------------------------------------------------
async def test_aclose_closes_the_client_the_loader_opened(
    aws_env: dict[str, str], s3_bucket: str, moto_endpoint: str, loop_errors: list[dict[str, Any]]
) -> None:
    loader = s3_loader(context_for(TREND_DATE), s3_bucket, moto_endpoint)
    await loader.open()
    assert await loader.store.list_keys("") == []  # the client's HTTP session exists from the first request on
    await loader.aclose()
    del loader
    gc.collect()
    assert [context["message"] for context in loop_errors] == []


async def test_a_connected_preflight_closes_the_client_it_opened(
    aws_env: dict[str, str], s3_bucket: str, moto_endpoint: str, loop_errors: list[dict[str, Any]]
) -> None:
    checks = await s3_loader(context_for(TREND_DATE), s3_bucket, moto_endpoint).preflight(True)
    assert [(check.what, check.ok) for check in checks][-1] == ("write probe", True)
    gc.collect()
    assert [context["message"] for context in loop_errors] == []


class _CredentialsHandler(BaseHTTPRequestHandler):
    """The EC2 instance metadata service (IMDSv2) and the ECS container endpoint, with one role."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_PUT(self) -> None:
        self._send(b"a-token")  # the IMDSv2 session token

    def do_GET(self) -> None:
        expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        keys = {"AccessKeyId": "AKIAROLE", "SecretAccessKey": "role-secret", "Token": "t", "Expiration": expiry}
        if self.path.endswith("/security-credentials/"):
            self._send(b"the-role")
        else:
            self._send(json.dumps({"Code": "Success", **keys}).encode())

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def role_endpoint() -> Iterator[str]:
    """A local stand-in for the instance metadata service and the container credentials endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CredentialsHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("role", "variables"),
    [
        ("container-role", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "{endpoint}/v2/credentials"}),
        ("iam-role", {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "{endpoint}/", "AWS_EC2_METADATA_DISABLED": "false"}),
    ],
)
async def test_an_offline_check_does_not_ask_the_instance_or_container_role(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    role_endpoint: str,
    s3_bucket: str,
    role: str,
    variables: dict[str, str],
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(endpoint=role_endpoint))
    assert _credential_source(None, network=True) == role  # the stand-in answers when asked
    checks = await s3_loader(context_for(TREND_DATE), s3_bucket, None).preflight(False)
    assert (checks[-1].what, checks[-1].ok) == ("credentials", False)
    assert checks[-1].detail.endswith("(an EC2 instance or container role is only looked for with --connect)")
