"""The TMDB client's small contracts: credentials and their registration, error attributes, messages, retry waits."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from pipeline.errors import ConfigError, ExtractError
from pipeline.redact import MASK, redact
from pipeline.stage import RunContext
from stages.extractors.tmdb.client import (
    DEFAULT_MAX_BODY_BYTES,
    Credentials,
    Fetched,
    RetryPolicy,
    TmdbApiError,
    TmdbClient,
    parse_retry_after,
)
from stages.extractors.tmdb.progress import Progress
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter
from tests.support.tmdb import BASE, TRENDING, FakeClock, Sleeps, fast_extractor, request_info

pytestmark = pytest.mark.usefixtures("aioresponses_compat", "no_secrets")

TOKEN = "tok-client-0123456789abcdef"
KEY = "key-client-fedcba9876543210"


async def failure(context: RunContext, **response: Any) -> ExtractError:
    """The error a run ends with when every trending request gets ``response``."""
    with aioresponses() as mocked:
        mocked.get(TRENDING, repeat=True, **response)
        ex = fast_extractor(context, TOKEN)
        with pytest.raises(ExtractError) as caught:
            async with ex:
                _ = [batch async for batch in ex.batches()]
    return caught.value


# -- credentials ------------------------------------------------------------------------
def test_both_secrets_are_registered_even_though_only_the_token_is_sent() -> None:
    credentials = Credentials.from_env({"TMDB_ACCESS_TOKEN": f" {TOKEN} ", "TMDB_API_KEY": KEY})
    assert (credentials.bearer, credentials.api_key) == (TOKEN, None)
    assert redact(f"{TOKEN} {KEY}") == f"{MASK} {MASK}"


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    assert Credentials.from_env().api_key == KEY


@pytest.mark.parametrize("env", [{}, {"TMDB_ACCESS_TOKEN": "", "TMDB_API_KEY": " "}], ids=["unset", "blank"])
def test_no_secret_at_all_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="no TMDB credentials: set TMDB_ACCESS_TOKEN"):
        Credentials.from_env(env)


@pytest.mark.parametrize(
    ("credentials", "scheme", "headers", "params"),
    [
        (Credentials(bearer=TOKEN), "v4 token in the Authorization header", {"Authorization": f"Bearer {TOKEN}"}, {}),
        (Credentials(api_key=KEY), "v3 key in the api_key query parameter", {}, {"api_key": KEY}),
        (
            Credentials(bearer=TOKEN, api_key=KEY),
            "v4 token in the Authorization header",
            {"Authorization": f"Bearer {TOKEN}"},
            {},  # the token wins: the key is never sent along with it
        ),
    ],
    ids=["token", "key", "both"],
)
def test_how_each_secret_is_sent(
    credentials: Credentials, scheme: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    assert credentials.scheme == scheme
    assert (credentials.headers(), credentials.params()) == (headers, params)
    assert repr(credentials) == f"Credentials(<{scheme}>)"


# -- fatal errors -----------------------------------------------------------------------
async def test_a_fatal_error_carries_the_http_status_and_tmdb_code(live_context: RunContext) -> None:
    error = await failure(live_context, status=404, payload={"status_code": 34, "status_message": "not found"})
    assert isinstance(error, TmdbApiError)
    assert (error.http_status, error.tmdb_code) == (404, 34)


# -- retry policy ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1, got 0"),
        ({"backoff": -0.5}, "backoff must be a finite number of seconds, at least 0, got -0.5"),
        ({"max_backoff": math.inf}, "max_backoff must be a finite number of seconds, at least 0, got inf"),
        ({"backoff": math.nan}, "backoff must be a finite number of seconds, at least 0, got nan"),
    ],
)
def test_a_bad_retry_policy_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_one_attempt_and_no_backoff_are_a_valid_policy() -> None:
    assert RetryPolicy(max_attempts=1, backoff=0, max_backoff=0) == RetryPolicy(1, 0.0, 0.0)


async def test_a_single_attempt_gives_up_at_once_and_says_attempt(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=503, payload={"status_code": 9, "status_message": "offline"}, repeat=True)
        ex = fast_extractor(live_context, TOKEN, max_attempts=1)
        with pytest.raises(ExtractError) as caught:
            async with ex:
                _ = [batch async for batch in ex.batches()]
    assert str(caught.value) == (
        "extractor 'tmdb-trending': page 1: failed after 1 attempt: "
        "HTTP 503 (TMDB status_code 9: offline) from GET /3/trending/movie/day?page=1"
    )
    counted = ex.statistics()
    assert counted["requests"] == 1 and "retries" not in counted


# -- the client on its own ----------------------------------------------------------------
PAGE_PATH = "/3/trending/movie/day"


def make_client(
    session: aiohttp.ClientSession,
    *,
    base_url: str = BASE,
    policy: RetryPolicy | None = None,
    limiter: AdaptiveRateLimiter | None = None,
    progress: Progress | None = None,
    sleep: Sleeps | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    timeout: float = 30.0,
) -> TmdbClient:
    clock = FakeClock()
    return TmdbClient(
        session,
        base_url=base_url,
        credentials=Credentials(bearer=TOKEN),
        limiter=limiter or AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep),
        concurrency=2,
        timeout=timeout,
        policy=policy or RetryPolicy(2, 0.0, 0.0),
        stage="tmdb-trending",
        counters=Counter(),
        progress=progress,
        sleep=sleep or Sleeps(),
        max_body_bytes=max_body_bytes,
    )


async def fetch_error(client: TmdbClient, path: str = PAGE_PATH, params: dict[str, str] | None = None) -> str:
    """The message of the error a GET ends with."""
    with pytest.raises(ExtractError) as caught:
        async with asyncio.timeout(GUARD):
            await client.get(path, {"page": "1"} if params is None else params, what="page 1", valid=_is_page)
    return str(caught.value.args[0])


def _is_page(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("results"), list)


PAGE_BODY = {"page": 1, "results": [], "total_pages": 1, "total_results": 0}
GUARD = 5.0  # seconds; only a regression waits this long


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("Wed, 25 Nov 2026 12:00:07 -0000", 7.0),  # no zone: read as UTC
        ("Wed, 25 Nov 2026 13:00:07 +0100", 7.0),  # a zone of its own: kept
    ],
)
def test_retry_after_dates_without_and_with_a_zone(header: str, seconds: float) -> None:
    assert parse_retry_after(header, dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)) == seconds


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf])
async def test_a_timeout_that_is_not_a_positive_number_is_refused(seconds: float) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds above 0"):
            make_client(session, timeout=seconds)


async def test_a_short_timeout_and_a_trailing_slash_are_fine() -> None:
    async with aiohttp.ClientSession() as session:
        client = make_client(session, timeout=0.5, base_url="https://tmdb.test/proxyX/")
    assert client.base_url == "https://tmdb.test/proxyX"


async def test_every_request_waits_for_its_rate_limiter_slot_and_counts_towards_the_rate() -> None:
    clock = FakeClock()
    progress = Progress("tmdb", stream=io.StringIO(), clock=clock)
    async with aiohttp.ClientSession() as session:
        client = make_client(
            session, limiter=AdaptiveRateLimiter(10, clock=clock, sleep=clock.sleep), progress=progress
        )
        with aioresponses() as mocked:
            mocked.get(TRENDING, payload=PAGE_BODY, repeat=True)
            for page in ("1", "2", "3"):
                await client.get(PAGE_PATH, {"page": page}, what=f"page {page}", valid=_is_page)
    assert clock.sleeps == [pytest.approx(0.1), pytest.approx(0.1)]
    assert progress.current_rate == 3.0 and client.counters["requests"] == 3


async def test_a_retry_is_logged_with_its_reason_and_wait_and_shown_in_the_progress(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="stages.extractors.tmdb.client")
    progress = Progress("tmdb", stream=io.StringIO(), clock=FakeClock())
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        client = make_client(session, progress=progress, sleep=sleeps, policy=RetryPolicy(3, 5.0, 30.0))
        with aioresponses() as mocked:
            body = {"status_code": 9, "status_message": "offline"}
            mocked.get(TRENDING, status=503, payload=body, headers={"Retry-After": "2"})
            mocked.get(TRENDING, status=503, payload=body, headers={"Retry-After": "0"})
            mocked.get(TRENDING, payload=PAGE_BODY)
            await client.get(PAGE_PATH, {"page": "1"}, what="page 1", valid=_is_page)
    assert sleeps.waits == [2.0, 0.0]  # the server's word, even when it says "now"
    reason = "HTTP 503 (TMDB status_code 9: offline) from GET /3/trending/movie/day?page=1"
    assert [r.getMessage() for r in caplog.records] == [
        f"page 1: {reason}; retry 1 of 2 in 2.00s",
        f"page 1: {reason}; retry 2 of 2 in 0.00s",
    ]
    assert progress.retries == 2 and client.counters["retries_5xx"] == 2


@pytest.mark.parametrize(
    ("path", "params", "display"),
    [
        ("/3/configuration", {}, "/3/configuration"),
        ("/3/genre/movie/list", {"language": "de"}, "/3/genre/movie/list?language=de"),
        (PAGE_PATH, {"page": "1", "api_key": "caller-key-123"}, "/3/trending/movie/day?page=1"),
    ],
    ids=["no query: no '?'", "a query", "a key passed by the caller is never shown"],
)
async def test_messages_show_the_request_without_any_key(path: str, params: dict[str, str], display: str) -> None:
    async with aiohttp.ClientSession() as session:
        client = make_client(session)
        with aioresponses() as mocked:
            mocked.get(re.compile(r"^https://tmdb\.test/.*"), status=404, payload={"status_code": 34}, repeat=True)
            message = await fetch_error(client, path, params)
    assert message == f"page 1: HTTP 404 (TMDB status_code 34: None) from GET {display}"


@pytest.mark.parametrize(
    ("exception", "message"),
    [
        (
            aiohttp.ClientResponseError(request_info(f"{BASE}{PAGE_PATH}?page=1"), (), status=418, message="teapot"),
            "page 1: ClientResponseError: 418 teapot on GET /3/trending/movie/day?page=1",
        ),
        (
            aiohttp.InvalidURL("https://tmdb.test/x"),
            "page 1: InvalidURL: invalid URL on GET /3/trending/movie/day?page=1",
        ),
        (
            aiohttp.ClientConnectionError(),
            "page 1: failed after 2 attempts: ClientConnectionError on GET /3/trending/movie/day?page=1",
        ),
        (
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            "page 1: failed after 2 attempts: ClientOSError: [Errno 104] Connection reset by peer "
            "on GET /3/trending/movie/day?page=1",
        ),
    ],
    ids=["response error", "invalid URL", "no text", "with text"],
)
async def test_http_layer_errors_are_summarised(exception: Exception, message: str) -> None:
    async with aiohttp.ClientSession() as session:
        client = make_client(session)
        with aioresponses() as mocked:
            mocked.get(TRENDING, exception=exception, repeat=True)
            assert await fetch_error(client) == message


@pytest.mark.parametrize(
    ("response", "detail", "code"),
    [
        ({"payload": {"status_code": 34, "status_message": "gone"}}, "TMDB status_code 34: gone", 34),
        ({"payload": {"status_message": "gone"}}, "TMDB status_code None: gone", None),
        ({"payload": {"status_code": 34}}, "TMDB status_code 34: None", 34),
        ({"payload": {"status_code": "34"}}, "TMDB status_code 34: None", None),
        ({"payload": {"status_code": True}}, "TMDB status_code True: None", None),
        ({"payload": [34]}, "non-JSON application/json body: '[34]'", None),
        ({"payload": {"error": "gone"}}, 'non-JSON application/json body: \'{"error": "gone"}\'', None),
        ({"body": "", "content_type": "text/plain"}, "empty text/plain body", None),
        ({"body": "  not\n\n  found  ", "content_type": "text/plain"}, "non-JSON text/plain body: 'not found'", None),
        ({"body": "Not <b>here</b>", "content_type": "text/html"}, "non-JSON text/html body: 'Not here'", None),
        ({"body": "<p>Not here</p>", "content_type": "text/plain"}, "non-JSON text/plain body: 'Not here'", None),
        ({"body": "a <b> c", "content_type": "text/plain"}, "non-JSON text/plain body: 'a <b> c'", None),
        ({"body": b"caf\xe9", "content_type": "text/plain"}, "non-JSON text/plain body: 'caf\ufffd'", None),
        ({"body": "x" * 120, "content_type": "text/plain"}, f"non-JSON text/plain body: '{'x' * 120}'", None),
        ({"body": "y" * 200, "content_type": "text/plain"}, f"non-JSON text/plain body: '{'y' * 119}…'", None),
    ],
    ids=[
        "both TMDB fields",
        "message only",
        "code only",
        "code as a string",
        "code as a boolean",
        "a JSON list",
        "JSON without TMDB fields",
        "empty",
        "whitespace collapsed",
        "html tags dropped by type",
        "tags dropped by shape",
        "no tags in plain text",
        "invalid UTF-8",
        "120 characters: whole",
        "longer: cut",
    ],
)
async def test_a_fatal_answer_is_described_by_what_it_holds(
    response: dict[str, Any], detail: str, code: int | None
) -> None:
    async with aiohttp.ClientSession() as session:
        client = make_client(session)
        with aioresponses() as mocked:
            mocked.get(TRENDING, status=404, repeat=True, **response)
            with pytest.raises(TmdbApiError) as caught:
                await client.get(PAGE_PATH, {"page": "1"}, what="page 1", valid=_is_page)
    assert caught.value.args[0] == f"page 1: HTTP 404 ({detail}) from GET /3/trending/movie/day?page=1"
    assert (caught.value.http_status, caught.value.tmdb_code) == (404, code)


# -- a real server on 127.0.0.1: redirects and body caps ------------------------------------------
LIMIT = 1024
EXACT = json.dumps(PAGE_BODY).encode().ljust(LIMIT)  # valid JSON, exactly the cap


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    """Trending answers chosen by the ``X-Mode`` header; records the paths asked for."""
    hits: list[str] = []
    stalled = asyncio.Event()

    async def trending(request: web.Request) -> web.StreamResponse:
        mode = request.headers["X-Mode"]
        hits.append(request.path)
        if mode == "redirect":
            raise web.HTTPFound("/3/elsewhere")
        if mode == "exact":
            return web.Response(body=EXACT, content_type="application/json")
        if mode == "stored-gzip":  # compressed larger than the cap, inflated under it
            body = gzip.compress(json.dumps(PAGE_BODY).encode().ljust(LIMIT - 10), compresslevel=0)
            assert len(body) > LIMIT
            return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 4 * LIMIT  # declared too large, and the body never comes
        await response.prepare(request)
        await stalled.wait()
        return response

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(PAGE_BODY)

    app = web.Application()
    app.router.add_get(PAGE_PATH, trending)
    app.router.add_get("/3/elsewhere", elsewhere)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield f"http://127.0.0.1:{test_server.port}", hits
    stalled.set()
    await test_server.close()


async def _get(base_url: str, mode: str) -> Fetched:
    async with aiohttp.ClientSession(headers={"X-Mode": mode}) as session:
        client = make_client(session, base_url=base_url, max_body_bytes=LIMIT)
        async with asyncio.timeout(GUARD):
            return await client.get(PAGE_PATH, {"page": "1"}, what="page 1", valid=_is_page)


async def test_a_redirect_is_not_followed(server: tuple[str, list[str]]) -> None:
    base_url, hits = server
    with pytest.raises(TmdbApiError) as caught:
        await _get(base_url, "redirect")
    assert caught.value.args[0] == (
        "page 1: HTTP 302 (non-JSON text/plain body: '302: Found') from GET /3/trending/movie/day?page=1"
    )
    assert hits == [PAGE_PATH]  # the token never went to the other address


@pytest.mark.parametrize("mode", ["exact", "stored-gzip"])
async def test_a_body_at_the_cap_is_accepted(server: tuple[str, list[str]], mode: str) -> None:
    base_url, _ = server
    fetched = await _get(base_url, mode)
    assert fetched.document == PAGE_BODY and len(fetched.body) <= LIMIT


async def test_a_body_declared_too_large_is_refused_before_it_is_read(server: tuple[str, list[str]]) -> None:
    base_url, _ = server
    with pytest.raises(TmdbApiError, match=r"larger than max_body_bytes \(1024 bytes"):
        await _get(base_url, "declared")
