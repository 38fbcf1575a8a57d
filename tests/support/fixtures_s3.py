"""Fixtures for S3 tests: a moto server on 127.0.0.1 driven by the real aioboto3 client.

``moto.mock_aws`` does not intercept aiobotocore, so every S3 test talks HTTP to one
session-wide moto server (``KeepAliveMotoServer``: moto's own threaded server, with keep-alive);
each test gets its own bucket, so tests stay apart.
"""

from __future__ import annotations

import contextlib
import functools
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAMOTOTESTKEY00001"
SECRET_ACCESS_KEY = "moto-test-secret-do-not-print-0001"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server for the whole session (port chosen by the OS).

    The S3 tests make thousands of requests, so moto's cost per request counts. Its dispatcher lists
    moto's package folder on disk for every request (``list_of_moto_modules``), which is served from one
    listing here; its serializer parses each listed object's ISO time with dateutil before formatting it
    again (76 µs each), which ``datetime.fromisoformat`` does in 0.8 µs (``parse_iso_time``); the
    server keeps connections open and logs no access line (``KeepAliveMotoServer``).
    What moto answers is unchanged.
    """
    import moto.backends
    import moto.core.serialize

    from tests.support.moto_server import KeepAliveMotoServer, parse_iso_time

    with pytest.MonkeyPatch.context() as patch:
        modules = tuple(moto.backends.list_of_moto_modules())
        patch.setattr(moto.backends, "list_of_moto_modules", lambda: modules)
        patch.setattr(moto.core.serialize, "parse_to_aware_datetime", parse_iso_time)
        server = KeepAliveMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def aws_environment(tmp_path: Path) -> dict[str, str]:
    """Dummy credentials and a region, and nothing from the developer's own AWS set-up."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Set the dummy AWS environment for this test; returns it (for subprocesses)."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    env = aws_environment(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@functools.cache
def aws_session() -> Any:
    """The process's aioboto3 session for tests' own clients, with the s3 loader's shared cache of service models.

    Parsing a service model anew costs 0.1-0.4 s (S3's, IAM's) per session; with the cache, once per process.
    The session itself is made once too: a new one cost 17 ms and its first client 13 ms more, a client on this
    one costs 7 ms, and the S3 tests open one or more per test. It resolves the dummy credentials of
    ``aws_environment`` the first time a client is opened and keeps them; the loaders under test make their own
    sessions from the environment as they find it.
    Open its clients on moto with ``verify=False``: plain http has no CA bundle to load (25 ms a client).
    """
    import aioboto3
    from aiobotocore.session import get_session

    from stages.loaders.s3_store import service_models as _service_models

    core = get_session()
    core.register_component("data_loader", _service_models())
    return aioboto3.Session(botocore_session=core, region_name=REGION)


@pytest.fixture
async def s3_client(aws_env: dict[str, str], moto_endpoint: str) -> AsyncIterator[Any]:
    """An aioboto3 S3 client on the moto server, for a test's own checks."""
    async with aws_session().client("s3", endpoint_url=moto_endpoint, verify=False) as client:
        yield client


@pytest.fixture
async def s3_bucket(s3_client: Any) -> str:
    """A new, empty bucket for this test only."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    await s3_client.create_bucket(Bucket=name)
    return name


@contextlib.contextmanager
def moto_checks_auth(endpoint: str) -> Iterator[None]:
    """moto checks signatures and IAM policies (it accepts anything by default) inside the block."""
    _set_moto_auth(endpoint, "0")
    try:
        yield
    finally:
        _set_moto_auth(endpoint, "inf")


@pytest.fixture
def moto_auth(moto_endpoint: str) -> Iterator[None]:
    """Make moto check signatures and IAM policies for one test."""
    with moto_checks_auth(moto_endpoint):
        yield


def _set_moto_auth(endpoint: str, initial_no_auth_count: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=initial_no_auth_count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        json.load(response)


def clone_bucket(source: str, target: str) -> None:
    """Create ``target`` holding a copy of every object in ``source``: the same bytes, ETags, metadata and checksums.

    The copy is made inside the session's moto server, which runs in this process. Copying object by object over
    HTTP cost a create, a list and one ``CopyObject`` per key. The fault harness copies its template lake once
    per fault point, and those ten requests were about a sixth of each S3 point's time.
    """
    import copy

    from moto.s3.models import s3_backends

    located = s3_backends.bucket_accounts.get(source)
    assert located is not None, f"{source} is not a bucket of this process's moto server"
    partition, account_id = located
    backend = s3_backends[account_id][partition]
    original = backend.get_bucket(source)
    clone = backend.create_bucket(target, original.region_name)
    for key in original.keys.values():
        copied = copy.deepcopy(key)  # FakeKey pickles its value and makes a new buffer and lock
        copied.bucket_name = target
        clone.keys[key.name] = copied


async def open_uploads(client: Any, bucket: str) -> list[str]:
    """Keys with a multipart upload still open in ``bucket``."""
    response = await client.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in response.get("Uploads", [])]


async def object_keys(client: Any, bucket: str) -> list[str]:
    """Every key in ``bucket``, sorted."""
    response = await client.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in response.get("Contents", []))


async def get_object(client: Any, bucket: str, key: str) -> bytes:
    """The bytes of one object."""
    response = await client.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
