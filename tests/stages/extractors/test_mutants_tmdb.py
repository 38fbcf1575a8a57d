"""The extractor's bounds: the reorder window caps how far workers run ahead, and a failure cancels what still runs.

A hung request here is an aioresponses callback waiting on an event nobody sets: only cancellation ends
it. The ``asyncio.timeout`` guards are reached only by a regression (the passing runs end at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import CallbackResult, aioresponses

from pipeline.config import load_config
from pipeline.errors import ConfigError, ExtractError
from pipeline.options import OptionError, build_options
from pipeline.stage import RunContext
from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor, check_base_url
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter
from tests.support.tmdb import BASE, CONFIGURATION, GENRES, TRENDING, FakeClock, collect, fast_extractor, hanging

pytestmark = pytest.mark.usefixtures("aioresponses_compat")

TOKEN = "tok-mutants-0123456789abcdef"
CONFIG_DOC = {"images": {"secure_base_url": "https://image.tmdb.org/t/p/", "poster_sizes": ["w500"]}}
GUARD = 5.0  # seconds; only a regression ever waits this long


def page_doc(page: int, total_pages: int) -> dict[str, Any]:
    """A trending page with one result."""
    results = [{"id": page, "title": f"T{page}", "media_type": "movie", "popularity": 1.0}]
    return {"page": page, "results": results, "total_pages": total_pages, "total_results": total_pages}


def extractor(context: RunContext, **options: Any) -> TmdbTrendingExtractor:
    return fast_extractor(context, TOKEN, **options)


def _tasks() -> list[str]:
    """Every task still pending besides the test's own: the extractor's, and the lookups' unnamed ones."""
    return sorted(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done())


async def _until_idle(count: Callable[[], int]) -> int:
    """Yield to the loop until ``count()`` has not moved for a while (the workers are all blocked)."""
    last, still = -1, 0
    for _ in range(20_000):
        await asyncio.sleep(0)
        current = count()
        still = still + 1 if current == last else 0
        last = current
        if still >= 200:
            break
    return last


@pytest.mark.parametrize(("concurrency", "window"), [(2, 32), (10, 40)], ids=["at least 32", "four per worker"])
async def test_a_slow_consumer_holds_the_workers_to_the_reorder_window(
    live_context: RunContext, concurrency: int, window: int
) -> None:
    clock = FakeClock(0.0)
    with aioresponses() as mocked:
        mocked.get(
            TRENDING,
            callback=lambda url, **kw: CallbackResult(payload=page_doc(int(kw["params"]["page"]), 200)),
            repeat=True,
        )
        ex = extractor(live_context, pages=200, concurrency=concurrency)  # window: max(4 * concurrency, 32)
        async with asyncio.timeout(GUARD), ex:
            limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep)
            ex.limiter = ex._client.limiter = limiter  # type: ignore[union-attr]
            stream = ex.batches()
            assert [(await anext(stream)).page, (await anext(stream)).page] == [1, 2]
            requests_while_stalled = await _until_idle(lambda: ex.counters["requests"])
            assert [(await anext(stream)).page for _ in range(3)] == [3, 4, 5]
            requests_after_three_more = await _until_idle(lambda: ex.counters["requests"])
            await stream.aclose()  # type: ignore[attr-defined]
    # page 1, the page already handed over (2) and a window of pages taken ahead: never the whole list
    assert requests_while_stalled == 1 + 1 + window
    assert requests_after_three_more == requests_while_stalled + 3  # each page handed over frees one more
    assert 1 <= ex.counters["reorder_buffer_peak"] <= window


async def test_the_window_does_not_stop_a_consumer_that_keeps_up(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(
            TRENDING,
            callback=lambda url, **kw: CallbackResult(payload=page_doc(int(kw["params"]["page"]), 80)),
            repeat=True,
        )
        batches = await collect(extractor(live_context, pages=80, concurrency=1), GUARD)
    assert [b.page for b in batches] == list(range(1, 81))


async def test_page_one_failing_cancels_the_lookups_still_running(live_context: RunContext) -> None:
    never = asyncio.Event()

    async def stuck(url: Any, **kwargs: Any) -> CallbackResult:
        await never.wait()
        raise AssertionError("unreachable")

    with aioresponses() as mocked:
        mocked.get(TRENDING, status=404, payload={"status_code": 34, "status_message": "gone"})
        mocked.get(CONFIGURATION, callback=stuck, repeat=True)
        mocked.get(GENRES, callback=stuck, repeat=True)
        with pytest.raises(ExtractError, match="page 1: HTTP 404"):
            await collect(extractor(live_context, enrich=True), GUARD)
        assert _tasks() == []


async def test_a_failed_lookup_cancels_the_other_lookup_and_page_one(live_context: RunContext) -> None:
    callback, asked = hanging(lambda page: None)  # page 1 never answers
    never = asyncio.Event()

    async def stuck(url: Any, **kwargs: Any) -> CallbackResult:
        await never.wait()
        raise AssertionError("unreachable")

    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=callback, repeat=True)
        mocked.get(CONFIGURATION, callback=stuck, repeat=True)
        mocked.get(GENRES, status=401, payload={"status_code": 7, "status_message": "Invalid API key"})
        with pytest.raises(ExtractError, match="movie genre lookup: HTTP 401"):
            await collect(extractor(live_context, enrich=True), GUARD)
        assert _tasks() == []
    assert asked == [1]


async def test_a_failing_page_stops_the_workers_waiting_on_hung_pages(live_context: RunContext) -> None:
    def answer(page: int) -> CallbackResult | None:
        if page == 1:
            return CallbackResult(payload=page_doc(page, 6))
        if page == 4:
            return CallbackResult(status=400, payload={"status_code": 22, "status_message": "Invalid page"})
        return None  # pages 2 and 3 hang

    callback, asked = hanging(answer)
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=callback, repeat=True)
        with pytest.raises(ExtractError, match="page 4: HTTP 400"):
            await collect(extractor(live_context, pages=6, concurrency=3), GUARD)
        assert _tasks() == []
    assert sorted(asked) == [1, 2, 3, 4]  # three workers took 2-4; 5 and 6 were never started


# -- options, set-up and tear-down -------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://tmdb.test/", "https://tmdb.test"), ("http://127.0.0.1:8080/proxyX/", "http://127.0.0.1:8080/proxyX")],
)
def test_a_base_url_loses_only_its_trailing_slashes(url: str, expected: str) -> None:
    assert check_base_url(url) == expected


@pytest.mark.parametrize("url", ["https://", "http:///3", "ftp://tmdb.test", "tmdb.test"])
def test_a_base_url_needs_an_http_scheme_and_a_host(url: str) -> None:
    with pytest.raises(ValueError, match=r"must be an http\(s\) URL with a host"):
        check_base_url(url)
    with pytest.raises(OptionError) as caught:
        TmdbOptions(base_url=url)
    assert caught.value.key == "base_url"


@pytest.mark.parametrize("url", ["https://tmdb.test/?api_key=x", "https://tmdb.test/#top"], ids=["query", "fragment"])
def test_a_base_url_carries_neither_a_query_nor_a_fragment(url: str) -> None:
    with pytest.raises(ValueError, match="must not carry a query or a fragment"):
        check_base_url(url)


def test_backoff_may_equal_max_backoff() -> None:
    assert TmdbOptions(backoff=2.0, max_backoff=2.0).backoff == 2.0


async def test_before_open_there_is_nothing_to_fetch_with(live_context: RunContext) -> None:
    ex = extractor(live_context)
    assert (ex.limiter, ex.base_url) == (None, "")
    with pytest.raises(ExtractError, match=r"batches\(\) called before open\(\)"):
        await anext(ex.batches())


@pytest.mark.parametrize("path", ["config/pipeline.yml", "config/aws.yml"])
async def test_the_base_url_comes_from_the_config_and_its_tmdb_base_url_interpolation(
    path: str, live_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("S3_BUCKET", "some-bucket")
    monkeypatch.setenv("TMDB_BASE_URL", "https://tmdb-proxy.test/")
    section = load_config(path).extractor
    opts = build_options(TmdbOptions, {**section.options, "enrich": False}, "extractor.options")
    ex = TmdbTrendingExtractor(opts, live_context, name="tmdb-trending")
    async with ex:
        assert ex.base_url == "https://tmdb-proxy.test"
    monkeypatch.delenv("TMDB_BASE_URL")
    assert load_config(path).extractor.options["base_url"] == "https://api.themoviedb.org"


async def test_the_environment_alone_does_not_move_the_base_url(
    live_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("TMDB_BASE_URL", "https://tmdb-proxy.test/")
    ex = TmdbTrendingExtractor(build_options(TmdbOptions, {}, "extractor.options"), live_context, name="tmdb-trending")
    async with ex:
        assert ex.base_url == "https://api.themoviedb.org", "one source: the config (and its ${...})"


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://tmdb-proxy.example.org", True),
        ("https://tmdb-proxy.example.org", False),
        ("http://127.0.0.1:9", False),
        ("http://localhost:9", False),
    ],
)
async def test_plain_http_off_this_machine_is_warned_about(
    live_context: RunContext, caplog: pytest.LogCaptureFixture, url: str, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="stages.extractors.tmdb.extractor")
    async with extractor(live_context, base_url=url):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = f"base_url {url} is plain http: the TMDB secret would cross the network unencrypted"
    assert warnings == ([expected] if warned else [])


async def test_an_owned_session_sends_json_headers_and_is_made_anew_after_closing(live_context: RunContext) -> None:
    seen: list[tuple[str, str]] = []

    async def trending(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Accept", ""), request.headers.get("User-Agent", "")))
        return web.json_response(page_doc(1, 1))

    app = web.Application()
    app.router.add_get("/3/trending/movie/day", trending)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        ex = extractor(live_context, base_url=f"http://127.0.0.1:{server.port}")
        first = await collect(ex, GUARD)
        second = await collect(ex, GUARD)  # the closed session is not reused
    finally:
        await server.close()
    assert [b.page for b in first + second] == [1, 1]
    assert seen == [("application/json", "tmdb-trending-pipeline/0.1 (+aiohttp)")] * 2


async def test_a_failed_run_is_logged_as_stopped(live_context: RunContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stages.extractors.tmdb.extractor")
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=404, payload={"status_code": 34, "status_message": "gone"})
        with pytest.raises(ExtractError):
            await collect(extractor(live_context), GUARD)
    [summary] = [r.getMessage() for r in caplog.records if "results," in r.getMessage()]
    assert summary.startswith("tmdb-trending: stopped: 0/0 pages, 0 results, 1 requests")


async def test_rate_cuts_and_the_request_rate_are_reported(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=429, headers={"Retry-After": "0"})
        mocked.get(TRENDING, callback=lambda url, **kw: CallbackResult(payload=page_doc(1, 1)), repeat=True)
        ex = extractor(live_context)
        await collect(ex, GUARD)
    counters = ex.counters
    assert (counters["requests"], counters["http_429"], counters["rate_cuts"]) == (2, 1, 1)
    wall, rate = float(counters["wall_seconds"]), float(counters["requests_per_second"])
    assert wall > 0 and wall == round(wall, 3)
    assert rate == round(rate, 2) and rate * wall == pytest.approx(2, abs=0.0005 * rate + 0.02)


async def test_lookups_ask_for_genres_in_the_configured_language(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=lambda url, **kw: CallbackResult(payload=page_doc(1, 1)), repeat=True)
        mocked.get(CONFIGURATION, payload=CONFIG_DOC)
        mocked.get(GENRES, payload={"genres": [{"id": 28, "name": "Acción"}]})
        [batch] = await collect(extractor(live_context, enrich=True, language="es-ES"), GUARD)
        asked = {
            str(url).split("?")[0]: call.kwargs["params"]
            for (_m, url), calls in mocked.requests.items()
            for call in calls
        }
    assert asked[f"{BASE}/3/genre/movie/list"] == {"language": "es-ES"}
    assert asked[f"{BASE}/3/configuration"] == {}
    assert dict(batch.lookups.genres) == {28: "Acción"}


async def test_a_finished_run_is_logged_as_done_with_its_page_count(
    live_context: RunContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stages.extractors.tmdb.extractor")
    with aioresponses() as mocked:
        mocked.get(
            TRENDING,
            callback=lambda url, **kw: CallbackResult(payload=page_doc(int(kw["params"]["page"]), 3)),
            repeat=True,
        )
        batches = await collect(extractor(live_context, pages=3), GUARD)
    assert [b.page for b in batches] == [1, 2, 3]
    messages = [r.getMessage() for r in caplog.records]
    [summary] = [m for m in messages if "results," in m]
    assert summary.startswith("tmdb-trending: done: 3/3 pages, 3 results, 3 requests")


def test_a_bad_base_url_through_the_interpolation_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_BASE_URL", "ftp://tmdb.test")
    section = load_config("config/pipeline.yml").extractor
    with pytest.raises(ConfigError, match=r"^extractor.options.base_url: must be an http"):
        build_options(TmdbOptions, section.options, "extractor.options")
