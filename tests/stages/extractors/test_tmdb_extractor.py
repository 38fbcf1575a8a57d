"""Unit tests of the ``tmdb-trending`` extractor against aioresponses (no network, no real sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import CallbackResult, aioresponses

from pipeline.config import load_config
from pipeline.errors import ConfigError, ExtractError, TransientError
from pipeline.options import OptionError, build_options
from pipeline.stage import RunContext
from stages.extractors.tmdb.client import parse_retry_after
from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor, check_base_url
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter
from tests.support.tmdb import (
    BASE,
    CONFIGURATION,
    GENRES,
    TRENDING,
    FakeClock,
    Sleeps,
    build_extractor,
    collect,
    fast_extractor,
    hanging,
)

TOKEN = "tok-unit-0123456789abcdef"
pytestmark = pytest.mark.usefixtures("aioresponses_compat")
KEY = "key-unit-fedcba9876543210"


def page_doc(page: int, total_pages: int = 3, count: int = 20) -> dict[str, Any]:
    """A TMDB trending page with ``count`` movie results."""
    results = [
        {"id": page * 100 + i, "title": f"T{page}-{i}", "media_type": "movie", "popularity": 1.0, "genre_ids": [28]}
        for i in range(count)
    ]
    return {"page": page, "results": results, "total_pages": total_pages, "total_results": total_pages * 20}


def paged(total_pages: int = 3) -> Callable[..., CallbackResult]:
    """An aioresponses callback answering each page number with its own page."""

    def answer(url: Any, **kwargs: Any) -> CallbackResult:
        page = int(kwargs["params"]["page"])
        return CallbackResult(payload=page_doc(page, total_pages))

    return answer


def extractor(
    live_context: RunContext,
    *,
    env: dict[str, str] | None = None,
    sleep: Sleeps | None = None,
    **options: Any,
) -> TmdbTrendingExtractor:
    raw = {"enrich": False, "backoff": 0.5, "max_backoff": 30, **options}
    return build_extractor(live_context, raw, token=TOKEN, sleep=sleep or Sleeps(), env=env)


def sent(mocked: aioresponses) -> list[tuple[str, dict[str, Any]]]:
    """Every request made: (URL with query, kwargs)."""
    return [(str(url), call.kwargs) for (_method, url), calls in mocked.requests.items() for call in calls]


# -- options -------------------------------------------------------------------------
def test_defaults_are_the_documented_ones() -> None:
    opts = build_options(TmdbOptions, {}, "extractor.options")
    assert (opts.media_type, opts.time_window, opts.pages, opts.rate_limit) == ("movie", "day", 20, 35.0)
    assert (opts.enrich, opts.poster_size, opts.base_url, opts.language) == (
        True,
        "w500",
        "https://api.themoviedb.org",
        None,
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pages": 0}, "extractor.options.pages: must be at least 1"),
        ({"pages": 501}, "extractor.options.pages: must be at most 500"),
        ({"media_type": "people"}, "extractor.options.media_type: must be one of"),
        ({"feeds": ["movie/month"]}, "extractor.options.feeds[0]: expected media/window"),
        ({"feeds": []}, "extractor.options.feeds: must name at least one feed"),
        ({"feeds": ["tv/day", "movie/day", "tv/day"]}, "extractor.options.feeds[2]: tv/day is listed twice"),
        ({"feeds": ["tv/day"], "media_type": "tv"}, "extractor.options.feeds: give either feeds or media_type"),
        ({"feeds": [{"feed": "tv/day", "pages": 501}]}, "extractor.options.feeds[0]: must be at most 500"),
        ({"feeds": [{"feed": "tv/day", "page": 5}]}, "extractor.options.feeds[0]: unknown option; allowed: feed"),
        ({"profile_size": "huge"}, "extractor.options.profile_size: expected a TMDB size"),
        ({"time_window": "month"}, "extractor.options.time_window: must be one of"),
        ({"rate_limit": 0}, "extractor.options.rate_limit: must be at least 0.1, got 0"),
        ({"rate_limit": 1e-300}, "extractor.options.rate_limit: must be at least 0.1, got 1e-300"),
        ({"rate_limit": 0.09}, "extractor.options.rate_limit: must be at least 0.1, got 0.09"),
        ({"concurrency": 0}, "extractor.options.concurrency: must be at least 1"),
        ({"language": "english"}, "extractor.options.language: expected an ISO 639-1 code"),
        ({"base_url": "ftp://example.org"}, "extractor.options.base_url: must be an http(s) URL"),
        ({"poster_size": "huge"}, "extractor.options.poster_size: expected a TMDB size"),
        ({"backoff": 10, "max_backoff": 1}, "extractor.options.backoff: must not exceed max_backoff"),
        ({"page": 3}, "extractor.options.page: unknown option"),
    ],
)
def test_bad_options_are_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_options(TmdbOptions, raw, "extractor.options")


# -- auth ----------------------------------------------------------------------------
async def test_bearer_token_is_sent_as_header_and_preferred_over_key(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        await collect(extractor(live_context, env={"TMDB_ACCESS_TOKEN": TOKEN, "TMDB_API_KEY": KEY}))
        [(url, kwargs)] = sent(mocked)
    assert kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert "api_key" not in url and KEY not in url


async def test_api_key_is_sent_as_query_parameter_without_token(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        await collect(extractor(live_context, env={"TMDB_API_KEY": KEY}))
        [(url, kwargs)] = sent(mocked)
    assert f"api_key={KEY}" in url
    assert "Authorization" not in kwargs["headers"]


async def test_no_credentials_is_a_config_error_before_any_request(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        with pytest.raises(ConfigError, match="TMDB_ACCESS_TOKEN"):
            await collect(extractor(live_context, env={"TMDB_API_KEY": "  "}))
        assert sent(mocked) == []


# -- pages ---------------------------------------------------------------------------
async def test_page_one_reporting_fewer_pages_caps_the_run(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(3), repeat=True)
        ex = extractor(live_context, pages=20)
        batches = await collect(ex)
        pages_asked = sorted(int(kwargs["params"]["page"]) for _url, kwargs in sent(mocked))
    assert [b.page for b in batches] == [1, 2, 3]
    assert pages_asked == [1, 2, 3]
    counted = ex.statistics()
    assert counted["pages"] == 3 and counted["total_pages_reported"] == 3


async def test_statistics_are_a_snapshot_taken_when_asked(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(3), repeat=True)
        ex = extractor(live_context, pages=3)
        async with ex, contextlib.aclosing(ex.batches()) as pages:
            await anext(pages)
            during = ex.statistics()
            assert [batch.page async for batch in pages] == [2, 3]
            after = ex.statistics()
    assert "wall_seconds" not in during and during["pages"] >= 1  # the run's timing is added when it ends
    assert after["pages"] == 3 and after["wall_seconds"] >= 0
    assert after == ex.statistics(ex.feed), "with one feed, the feed's statistics are the run's"
    with pytest.raises(TypeError):
        during["pages"] = 0  # type: ignore[index]


async def test_empty_results_yield_one_empty_page(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, payload={"page": 1, "results": [], "total_pages": 0, "total_results": 0})
        ex = extractor(live_context, pages=5)
        batches = await collect(ex)
    assert [(b.page, b.payload["results"]) for b in batches] == [(1, [])]
    counted = ex.statistics()
    assert counted["requests"] == 1 and counted["results"] == 0


async def test_batches_come_in_page_order_when_answers_arrive_out_of_order(live_context: RunContext) -> None:
    async def answer(url: Any, **kwargs: Any) -> CallbackResult:
        page = int(kwargs["params"]["page"])
        await asyncio.sleep(0.002 * (12 - page))  # later pages answer first
        return CallbackResult(payload=page_doc(page, 12))

    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=answer, repeat=True)
        ex = extractor(live_context, pages=12, concurrency=6)
        batches = await collect(ex)
    assert [b.page for b in batches] == list(range(1, 13))
    assert ex.statistics()["reorder_buffer_peak"] > 1  # out-of-order answers really were buffered
    assert all(b.payload["page"] == b.page for b in batches)


async def test_language_is_passed_on(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        await collect(extractor(live_context, language="de-DE"))
        [(_url, kwargs)] = sent(mocked)
    assert kwargs["params"]["language"] == "de-DE"


# -- retries -------------------------------------------------------------------------
def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:07 GMT", now) == 7.0
    assert parse_retry_after("Wed, 25 Nov 2026 11:59:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_429_waits_for_retry_after_and_slows_the_shared_limiter(live_context: RunContext) -> None:
    sleeps = Sleeps()
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=429, payload={"status_code": 25}, headers={"Retry-After": "7"})
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        ex = extractor(live_context, sleep=sleeps)
        batches = await collect(ex)
    assert [b.page for b in batches] == [1]
    assert sleeps.waits == [7.0]
    counted = ex.statistics()
    assert counted["http_429"] == 1 and counted["retries_429"] == 1
    assert ex.limiter is not None and ex.limiter.cuts == 1 and ex.limiter.rate < 1000


async def test_retry_after_is_capped_by_max_backoff(live_context: RunContext) -> None:
    sleeps = Sleeps()
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=429, headers={"Retry-After": "3600"})
        mocked.get(TRENDING, status=429, headers={"Retry-After": when})
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        await collect(extractor(live_context, sleep=sleeps, max_backoff=2))
    assert sleeps.waits == [2.0, 2.0]


async def test_429_without_retry_after_backs_off_exponentially_with_jitter(live_context: RunContext) -> None:
    sleeps = Sleeps()
    with aioresponses() as mocked:
        for _ in range(3):
            mocked.get(TRENDING, status=429)
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        await collect(extractor(live_context, sleep=sleeps, backoff=0.5))
    assert len(sleeps.waits) == 3
    for attempt, wait in enumerate(sleeps.waits):
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= wait <= ceiling


TRANSIENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("500", {"status": 500, "payload": {"status_code": 11, "status_message": "Internal error"}}, "retries_5xx"),
    ("503", {"status": 503, "payload": {"status_code": 46, "status_message": "Maintenance"}}, "retries_5xx"),
    ("504", {"status": 504, "payload": {"status_code": 24, "status_message": "Timed out"}}, "retries_5xx"),
    (
        "html 502",
        {"status": 502, "body": "<html><h1>502 Bad Gateway</h1></html>", "content_type": "text/html"},
        "retries_5xx",
    ),
    ("reset", {"exception": aiohttp.ClientOSError(104, "Connection reset by peer")}, "retries_connection"),
    ("disconnect", {"exception": aiohttp.ServerDisconnectedError()}, "retries_connection"),
    ("timeout", {"exception": TimeoutError()}, "retries_timeout"),
    (
        "truncated json",
        {"status": 200, "body": '{"page": 1, "results": [{"id": 1', "content_type": "application/json"},
        "retries_invalid_json",
    ),
    ("not json", {"status": 200, "body": "<html>hi</html>", "content_type": "text/html"}, "retries_invalid_json"),
    ("wrong shape", {"status": 200, "payload": {"page": 1}}, "retries_invalid_json"),
]


@pytest.mark.parametrize(("label", "failure", "counter"), TRANSIENT_CASES, ids=[c[0] for c in TRANSIENT_CASES])
async def test_transient_failures_are_retried_and_counted(
    live_context: RunContext, label: str, failure: dict[str, Any], counter: str
) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, **failure)
        mocked.get(TRENDING, **failure)
        mocked.get(TRENDING, callback=paged(2), repeat=True)
        ex = extractor(live_context, pages=2)
        batches = await collect(ex)
    assert [b.page for b in batches] == [1, 2]
    counted = ex.statistics()
    assert counted[counter] == 2 and counted["retries"] == 2
    assert counted["requests"] == 4


async def test_giving_up_names_the_page_and_the_reason(live_context: RunContext) -> None:
    async def answer(url: Any, **kwargs: Any) -> CallbackResult:
        if kwargs["params"]["page"] == "2":
            return CallbackResult(
                status=502, body="<html><title>502 Bad Gateway</title></html>", content_type="text/html"
            )
        return CallbackResult(payload=page_doc(int(kwargs["params"]["page"]), 3))

    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=answer, repeat=True)
        ex = extractor(live_context, pages=3, max_attempts=3)
        with pytest.raises(ExtractError) as caught:
            await collect(ex)
    message = str(caught.value)
    assert not isinstance(caught.value, TransientError)
    assert "page 2: failed after 3 attempts: HTTP 502" in message
    assert "502 Bad Gateway" in message and "<html>" not in message


FATAL_CASES: list[tuple[int, int, str]] = [
    (401, 7, "Invalid API key: You must be granted a valid key."),
    (404, 34, "The resource you requested could not be found."),
    (400, 22, "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer."),
]


@pytest.mark.parametrize(("status", "code", "text"), FATAL_CASES, ids=[str(c[0]) for c in FATAL_CASES])
async def test_fatal_statuses_fail_at_once_with_tmdb_message(
    live_context: RunContext, status: int, code: int, text: str
) -> None:
    with aioresponses() as mocked:
        body = {"success": False, "status_code": code, "status_message": text}
        mocked.get(TRENDING, status=status, payload=body, repeat=True)
        ex = extractor(live_context)
        with pytest.raises(ExtractError) as caught:
            await collect(ex)
    assert f"page 1: HTTP {status} (TMDB status_code {code}: {text})" in str(caught.value)
    assert not isinstance(caught.value, TransientError)
    counted = ex.statistics()
    assert counted["requests"] == 1 and "retries" not in counted


# -- lookups -------------------------------------------------------------------------
CONFIGURATION_BODY = {"images": {"secure_base_url": "https://image.tmdb.org/t/p/", "poster_sizes": ["w92", "w500"]}}


async def test_all_feed_merges_both_genre_lists_and_builds_the_poster_base(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(re.compile(r"^https://tmdb\.test/3/trending/all/week.*"), callback=paged(1), repeat=True)
        mocked.get(f"{BASE}/3/configuration", payload=CONFIGURATION_BODY)
        mocked.get(f"{BASE}/3/genre/movie/list", payload={"genres": [{"id": 28, "name": "Action"}]})
        mocked.get(f"{BASE}/3/genre/tv/list", payload={"genres": [{"id": 10759, "name": "Action & Adventure"}]})
        batches = await collect(extractor(live_context, media_type="all", time_window="week", enrich=True))
    [batch] = batches
    assert dict(batch.lookups.genres) == {28: "Action", 10759: "Action & Adventure"}
    assert batch.lookups.poster_base_url == "https://image.tmdb.org/t/p/w500"


async def test_a_failed_lookup_fails_the_run(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        mocked.get(f"{BASE}/3/configuration", payload=CONFIGURATION_BODY)
        mocked.get(f"{BASE}/3/genre/movie/list", status=404, payload={"status_code": 34, "status_message": "nope"})
        with pytest.raises(ExtractError, match="movie genre lookup: HTTP 404"):
            await collect(extractor(live_context, enrich=True))


async def test_enrich_false_skips_lookups(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        [batch] = await collect(extractor(live_context, enrich=False))
        urls = [url for url, _kwargs in sent(mocked)]
    assert all("/3/trending/" in url for url in urls)
    assert batch.lookups.genres == {} and batch.lookups.poster_base_url is None


# -- cancellation and sessions ---------------------------------------------------------
def _workers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "-worker-" in t.get_name() and not t.done()]


async def test_stopping_early_cancels_and_awaits_the_workers(live_context: RunContext) -> None:
    callback, _ = hanging(lambda page: CallbackResult(payload=page_doc(page, 50)) if page <= 2 else None)

    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=callback, repeat=True)
        ex = extractor(live_context, pages=50, concurrency=4)
        async with ex:
            stream = ex.batches()
            seen = [(await stream.__anext__()).page, (await stream.__anext__()).page]
            assert len(_workers()) == 4
            await stream.aclose()  # type: ignore[attr-defined]
            assert _workers() == []
    assert seen == [1, 2]


async def test_a_failing_page_cancels_the_other_workers(live_context: RunContext) -> None:
    def answer(page: int) -> CallbackResult | None:
        if page == 3:
            return CallbackResult(status=404, payload={"status_code": 34, "status_message": "gone"})
        return None if page > 3 else CallbackResult(payload=page_doc(page, 50))

    callback, _ = hanging(answer)
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=callback, repeat=True)
        ex = extractor(live_context, pages=50, concurrency=4)
        with pytest.raises(ExtractError, match="page 3: HTTP 404"):
            await collect(ex)
    assert _workers() == []


async def test_an_injected_session_is_used_and_left_open(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        async with aiohttp.ClientSession() as session:
            opts = build_options(TmdbOptions, {"base_url": BASE, "enrich": False}, "extractor.options")
            ex = TmdbTrendingExtractor(opts, live_context, session=session, env={"TMDB_ACCESS_TOKEN": TOKEN})
            batches = await collect(ex)
            assert not session.closed
    assert [b.page for b in batches] == [1]


async def test_an_owned_session_is_closed(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=paged(1), repeat=True)
        ex = extractor(live_context)
        async with ex:
            session = ex._session
            assert session is not None
            _ = [b async for b in ex.batches()]
    assert session.closed


# == the reorder window bounds the workers, and a failure cancels what still runs ===============================
# A hung request here is an aioresponses callback waiting on an event nobody sets: only cancellation ends
# it. The ``asyncio.timeout`` guards are reached only by a regression (the passing runs end at once).

CONFIG_DOC = {"images": {"secure_base_url": "https://image.tmdb.org/t/p/", "poster_sizes": ["w500"]}}
GUARD = 5.0  # seconds; only a regression ever waits this long


def one_result_page(page: int, total_pages: int) -> dict[str, Any]:
    """A trending page with one result."""
    results = [{"id": page, "title": f"T{page}", "media_type": "movie", "popularity": 1.0}]
    return {"page": page, "results": results, "total_pages": total_pages, "total_results": total_pages}


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
            callback=lambda url, **kw: CallbackResult(payload=one_result_page(int(kw["params"]["page"]), 200)),
            repeat=True,
        )
        ex = fast_extractor(live_context, TOKEN, pages=200, concurrency=concurrency)  # window: max(4 * concurrency, 32)
        async with asyncio.timeout(GUARD), ex:
            limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep)
            ex.limiter = ex._client.limiter = limiter  # type: ignore[union-attr]
            stream = ex.batches()
            assert [(await anext(stream)).page, (await anext(stream)).page] == [1, 2]
            requests_while_stalled = await _until_idle(lambda: ex.statistics()["requests"])
            assert [(await anext(stream)).page for _ in range(3)] == [3, 4, 5]
            requests_after_three_more = await _until_idle(lambda: ex.statistics()["requests"])
            await stream.aclose()  # type: ignore[attr-defined]
    # page 1, the page already handed over (2) and a window of pages taken ahead: never the whole list
    assert requests_while_stalled == 1 + 1 + window
    assert requests_after_three_more == requests_while_stalled + 3  # each page handed over frees one more
    assert 1 <= ex.statistics()["reorder_buffer_peak"] <= window


async def test_the_window_does_not_stop_a_consumer_that_keeps_up(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(
            TRENDING,
            callback=lambda url, **kw: CallbackResult(payload=one_result_page(int(kw["params"]["page"]), 80)),
            repeat=True,
        )
        batches = await collect(fast_extractor(live_context, TOKEN, pages=80, concurrency=1), GUARD)
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
            await collect(fast_extractor(live_context, TOKEN, enrich=True), GUARD)
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
            await collect(fast_extractor(live_context, TOKEN, enrich=True), GUARD)
        assert _tasks() == []
    assert asked == [1]


async def test_a_failing_page_stops_the_workers_waiting_on_hung_pages(live_context: RunContext) -> None:
    def answer(page: int) -> CallbackResult | None:
        if page == 1:
            return CallbackResult(payload=one_result_page(page, 6))
        if page == 4:
            return CallbackResult(status=400, payload={"status_code": 22, "status_message": "Invalid page"})
        return None  # pages 2 and 3 hang

    callback, asked = hanging(answer)
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=callback, repeat=True)
        with pytest.raises(ExtractError, match="page 4: HTTP 400"):
            await collect(fast_extractor(live_context, TOKEN, pages=6, concurrency=3), GUARD)
        assert _tasks() == []
    # Three workers took pages 2-4; 5 and 6 were never started. (Under load the failure of page 4 can cancel
    # page 3's worker before it sends its request, so 3 may be missing: what matters is that nothing past 4 went.)
    assert {1, 4} <= set(asked) <= {1, 2, 3, 4}


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
    ex = fast_extractor(live_context, TOKEN)
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
    async with fast_extractor(live_context, TOKEN, base_url=url):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = f"base_url {url} is plain http: the TMDB secret would cross the network unencrypted"
    assert warnings == ([expected] if warned else [])


async def test_an_owned_session_sends_json_headers_and_is_made_anew_after_closing(live_context: RunContext) -> None:
    seen: list[tuple[str, str]] = []

    async def trending(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Accept", ""), request.headers.get("User-Agent", "")))
        return web.json_response(one_result_page(1, 1))

    app = web.Application()
    app.router.add_get("/3/trending/movie/day", trending)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        ex = fast_extractor(live_context, TOKEN, base_url=f"http://127.0.0.1:{server.port}")
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
            await collect(fast_extractor(live_context, TOKEN), GUARD)
    [summary] = [r.getMessage() for r in caplog.records if "results," in r.getMessage()]
    assert summary.startswith("tmdb-trending: stopped: 0/0 pages, 0 results, 1 requests")


async def test_rate_cuts_and_the_request_rate_are_reported(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=429, headers={"Retry-After": "0"})
        mocked.get(TRENDING, callback=lambda url, **kw: CallbackResult(payload=one_result_page(1, 1)), repeat=True)
        ex = fast_extractor(live_context, TOKEN)
        await collect(ex, GUARD)
    counters = ex.statistics()
    assert (counters["requests"], counters["http_429"], counters["rate_cuts"]) == (2, 1, 1)
    wall, rate = float(counters["wall_seconds"]), float(counters["requests_per_second"])
    assert wall > 0 and wall == round(wall, 3)
    assert rate == round(rate, 2) and rate * wall == pytest.approx(2, abs=0.0005 * rate + 0.02)


async def test_lookups_ask_for_genres_in_the_configured_language(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, callback=lambda url, **kw: CallbackResult(payload=one_result_page(1, 1)), repeat=True)
        mocked.get(CONFIGURATION, payload=CONFIG_DOC)
        mocked.get(GENRES, payload={"genres": [{"id": 28, "name": "Acción"}]})
        [batch] = await collect(fast_extractor(live_context, TOKEN, enrich=True, language="es-ES"), GUARD)
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
            callback=lambda url, **kw: CallbackResult(payload=one_result_page(int(kw["params"]["page"]), 3)),
            repeat=True,
        )
        batches = await collect(fast_extractor(live_context, TOKEN, pages=3), GUARD)
    assert [b.page for b in batches] == [1, 2, 3]
    messages = [r.getMessage() for r in caplog.records]
    [summary] = [m for m in messages if "results," in m]
    assert summary.startswith("tmdb-trending: done: 3/3 pages, 3 results, 3 requests")


def test_a_bad_base_url_through_the_interpolation_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_BASE_URL", "ftp://tmdb.test")
    section = load_config("config/pipeline.yml").extractor
    with pytest.raises(ConfigError, match=r"^extractor.options.base_url: must be an http"):
        build_options(TmdbOptions, section.options, "extractor.options")
