"""The tests' moto server (``tests/support/moto_server.py``) speaks HTTP/1.1 with keep-alive.

Every S3 test relies on it, so what it changes from werkzeug's server is pinned here with
plain ``http.client``: several requests on one connection, a chunked request body, ``HEAD``
and ``204`` answers framed right.
"""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

PUBLIC = {"x-amz-acl": "public-read"}
"""An unsigned request is anonymous to moto: only a public object can be read back without signing."""


@pytest.fixture
def connection(moto_endpoint: str) -> Iterator[http.client.HTTPConnection]:
    url = urlsplit(moto_endpoint)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        yield connection
    finally:
        connection.close()


def exchange(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None, **headers: str
) -> http.client.HTTPResponse:
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response


def test_one_connection_carries_every_request_and_each_answer_is_framed(
    connection: http.client.HTTPConnection,
) -> None:
    bucket = f"keepalive-{uuid.uuid4().hex[:12]}"
    assert exchange(connection, "PUT", f"/{bucket}").status == 200
    sock = connection.sock
    assert sock is not None

    put = exchange(connection, "PUT", f"/{bucket}/key", b"0123456789", **PUBLIC)
    assert put.status == 200 and put.getheader("Connection") is None

    connection.request("GET", f"/{bucket}/key")
    got = connection.getresponse()
    assert (got.status, got.read(), got.getheader("Content-Length")) == (200, b"0123456789", "10")

    head = exchange(connection, "HEAD", f"/{bucket}/key")
    assert (head.status, head.getheader("Content-Length")) == (200, "10")  # the object's size; no body

    deleted = exchange(connection, "DELETE", f"/{bucket}/key")
    assert deleted.status == 204 and deleted.getheader("Content-Length") is None

    missing = exchange(connection, "GET", f"/{bucket}/key")
    assert missing.status == 404
    assert connection.sock is sock, "the server closed the connection between requests"


def test_a_chunked_body_is_read_whole_and_the_next_request_follows_it(
    connection: http.client.HTTPConnection,
) -> None:
    bucket = f"keepalive-{uuid.uuid4().hex[:12]}"
    exchange(connection, "PUT", f"/{bucket}")
    parts = iter([b"abc", b"defgh", b"ij"])
    connection.request("PUT", f"/{bucket}/chunked", body=parts, headers=PUBLIC, encode_chunked=True)
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    connection.request("GET", f"/{bucket}/chunked")
    got = connection.getresponse()
    assert got.read() == b"abcdefghij"
