"""The live extractor's guards: tasks always awaited, capped bodies, finite options, redaction, today's date only."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import gzip
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from pipeline.config import load_config
from pipeline.errors import ConfigError, ExtractError
from pipeline.options import OptionError, build_options
from pipeline.redact import MASK, redact, register_env_secrets, register_secret
from pipeline.runner import build_stages
from pipeline.stage import RunContext
from stages.extractors.tmdb.client import DEFAULT_MAX_BODY_BYTES, RetryPolicy, parse_retry_after
from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.cli import ROOT, CliRunner, run_subprocess
from tests.support.fixtures_tmdb import today_context
from tests.support.tmdb import CONFIGURATION, GENRES, TRENDING, Sleeps, build_extractor, collect

TOKEN = "tok-fidelity-0123456789abcdef"
PAGE = {"page": 1, "results": [{"id": 1, "title": "A", "popularity": 1.0}], "total_pages": 1, "total_results": 1}


def tmdb_extractor(
    context: RunContext | None = None,
    *,
    sleep: Sleeps | None = None,
    session: aiohttp.ClientSession | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    **options: Any,
) -> TmdbTrendingExtractor:
    raw = {"backoff": 0.5, "max_backoff": 30, **options}
    return build_extractor(
        context or today_context(), raw, token=TOKEN, sleep=sleep or Sleeps(), session=session, clock=clock
    )


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[str]]:
    """Messages of tasks whose exception nobody retrieved (asyncio reports them when the task is collected)."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(str(ctx.get("message"))))
    yield seen
    loop.set_exception_handler(previous)


def _settled(seen: list[str]) -> list[str]:
    gc.collect()
    return [m for m in seen if "never retrieved" in m]


# -- defect 5: every task is awaited -------------------------------------------------------------
@pytest.mark.usefixtures("aioresponses_compat")
async def test_a_failed_lookup_fails_the_run_at_once_while_page_one_is_still_retrying(unretrieved: list[str]) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=503, payload={"status_code": 9, "status_message": "offline"}, repeat=True)
        mocked.get(CONFIGURATION, status=401, payload={"status_code": 7, "status_message": "Invalid API key"})
        mocked.get(GENRES, payload={"genres": []}, repeat=True)
        with pytest.raises(ExtractError, match=r"configuration lookup: HTTP 401"):
            await asyncio.wait_for(collect(tmdb_extractor(sleep=Sleeps(block=True))), timeout=5)
    assert _settled(unretrieved) == []


@pytest.mark.usefixtures("aioresponses_compat")
async def test_lookup_and_page_failing_together_leave_no_unretrieved_exception(unretrieved: list[str]) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=503, payload={"status_code": 9, "status_message": "offline"}, repeat=True)
        mocked.get(CONFIGURATION, status=503, payload={"status_code": 9, "status_message": "offline"}, repeat=True)
        mocked.get(GENRES, status=404, payload={"status_code": 34, "status_message": "not found"}, repeat=True)
        # Both fail; which one is reported depends on which finished first. Neither may be left unretrieved.
        with pytest.raises(ExtractError, match=r"movie genre lookup: HTTP 404|page 1: failed after 3 attempts"):
            await collect(tmdb_extractor(max_attempts=3))
    assert _settled(unretrieved) == []


class NoDns(AbstractResolver):
    """A resolver for a machine without network: every name fails to resolve."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        raise OSError(socket.EAI_NONAME, f"Name or service not known: {host}")

    async def close(self) -> None:
        """Nothing to close."""


async def test_no_network_at_all_is_one_clear_error(unretrieved: list[str]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=NoDns())) as session:
        with pytest.raises(ExtractError, match=r"failed after 2 attempts: ClientConnectorDNSError") as caught:
            await collect(tmdb_extractor(session=session, max_attempts=2))
    assert "on GET /3/" in str(caught.value)
    assert _settled(unretrieved) == []


# -- defect 6: a page-level poison is a clear error ----------------------------------------------
@pytest.mark.usefixtures("aioresponses_compat")
@pytest.mark.parametrize("total", ["7", 7.0, None, -1, True])
async def test_total_pages_that_is_not_a_whole_number_is_a_clear_page_error(total: Any) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, payload={**PAGE, "total_pages": total}, repeat=True)
        with pytest.raises(ExtractError, match=r"page 1: 'total_pages' must be a whole number, got "):
            await collect(tmdb_extractor(enrich=False, pages=7))


# -- defect 8: bodies are capped ------------------------------------------------------------------
@pytest.fixture
async def big_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 answering trending pages with a gzip bomb, a huge body or an endless chunked one."""
    hits: list[str] = []
    bomb = gzip.compress(b'{"page": 1, "results": [' + b" " * (16 << 20) + b"]}", compresslevel=9)

    async def trending(request: web.Request) -> web.StreamResponse:
        mode = request.headers["X-Mode"]
        hits.append(mode)
        if mode == "bomb":
            return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        if mode == "large":
            return web.Response(body=b" " * (3 << 20), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b" " * (64 << 10))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/3/trending/movie/day", trending)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", hits
    await server.close()


@pytest.mark.parametrize("mode", ["bomb", "large", "chunked"])
async def test_an_oversized_body_is_a_fatal_page_error(mode: str, big_server: tuple[str, list[str]]) -> None:
    base_url, hits = big_server
    async with aiohttp.ClientSession(headers={"X-Mode": mode}) as session:
        ex = tmdb_extractor(session=session, base_url=base_url, enrich=False, max_body_bytes=1 << 20)
        with pytest.raises(ExtractError, match=r"page 1: the response body is larger than max_body_bytes \(1048576"):
            await collect(ex)
    assert hits == [mode]  # fatal: not retried


def test_the_default_cap_is_a_few_megabytes() -> None:
    assert build_options(TmdbOptions, {}, "o").max_body_bytes == DEFAULT_MAX_BODY_BYTES == 4 * 1024 * 1024
    with pytest.raises(ConfigError, match=r"max_body_bytes: must be at least 1024"):
        build_options(TmdbOptions, {"max_body_bytes": 10}, "extractor.options")


# -- defect 9: NaN and infinity never pass a bound -----------------------------------------------
@pytest.mark.parametrize("key", ["timeout", "rate_limit", "max_backoff", "backoff", "progress_interval"])
@pytest.mark.parametrize("value", [float("nan"), "nan", "NaN", float("inf"), "-inf"])
def test_non_finite_numbers_are_rejected_for_bounded_options(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^extractor\.options\.{key}: must be"):
        build_options(TmdbOptions, {key: value}, "extractor.options")


def test_nan_through_an_environment_variable_is_a_config_error() -> None:
    config = load_config(
        {
            "extractor": {"type": "tmdb-trending", "options": {"rate_limit": "${R}"}},
            "transformer": {"type": "standardize"},
            "loader": {"type": "local"},
        },
        env={"R": "nan"},
    )
    with pytest.raises(ConfigError, match=r"extractor\.options\.rate_limit: must be a finite number, got nan"):
        build_stages(config, today_context())


def test_code_built_options_and_helpers_refuse_nan_too() -> None:
    with pytest.raises(OptionError, match="must be a finite number") as caught:
        TmdbOptions(timeout=float("nan"))
    assert caught.value.key == "timeout"
    with pytest.raises(ValueError, match="rate must be a finite number"):
        AdaptiveRateLimiter(float("nan"))
    with pytest.raises(ValueError, match="max_backoff must be a finite number"):
        RetryPolicy(max_backoff=float("nan"))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("-5", None), ("nan", None), ("inf", None), ("-inf", None), ("0", 0.0), ("3", 3.0), ("1.5", 1.5)],
)
def test_retry_after_that_is_negative_or_not_finite_is_ignored(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


@pytest.mark.usefixtures("aioresponses_compat")
@pytest.mark.parametrize("header", ["-1", "nan"])
async def test_a_bad_retry_after_means_backing_off_not_retrying_at_once(header: str) -> None:
    sleeps = Sleeps()
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=429, headers={"Retry-After": header}, payload={"status_code": 25})
        mocked.get(TRENDING, payload=PAGE)
        await collect(tmdb_extractor(sleep=sleeps, enrich=False))
    assert len(sleeps.waits) == 1 and 0.25 <= sleeps.waits[0] <= 0.5  # first backoff step, with jitter


# -- defect 10: redaction ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "form",
    [
        "s3cr3t/with+plus=and space",
        "s3cr3t%2Fwith%2Bplus%3Dand%20space",  # quote(safe="")
        "s3cr3t%2fwith%2bplus%3dand%20space",  # the same, lower-case escapes
        "s3cr3t/with%2Bplus%3Dand%20space",  # quote(): "/" left as is
        "s3cr3t%2Fwith%2Bplus%3Dand+space",  # quote_plus()
    ],
)
def test_a_secret_is_masked_as_is_and_url_encoded(form: str) -> None:
    register_secret("s3cr3t/with+plus=and space")
    assert redact(f"server said: GET /x?t={form}&a=1 ({form})") == f"server said: GET /x?t={MASK}&a=1 ({MASK})"


def test_every_secret_variable_of_the_environment_is_registered() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "TMDB_API_KEY": "0123456789abcdef0123"}
    register_env_secrets(env)
    text = f"boom {env['AWS_SECRET_ACCESS_KEY']} {env['TMDB_API_KEY']} wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY"
    assert redact(text) == f"boom {MASK} {MASK} {MASK}"


def _leaky_plugin(where: Path) -> Path:
    """A third-party package whose import fails with the token in the message (a real dist-info on PYTHONPATH)."""
    (where / "leaky_plugin.py").write_text(
        "import os\nraise RuntimeError('cannot start with ' + os.environ['TMDB_ACCESS_TOKEN'])\n", encoding="utf-8"
    )
    info = where / "leaky_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leaky-plugin\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[pipeline.reporters]\nleaky = leaky_plugin:Reporter\n", encoding="utf-8")
    return where


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_a_plugin_import_error_holding_the_token_is_printed_masked(tmp_path: Path, verbose: list[str]) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.leaky-token-0123456789"
    config = tmp_path / "c.yml"
    config.write_text(
        f"extractor: {{type: replay, options: {{path: '{ROOT / 'tests/data/sample/2026-11-25'}'}}}}\n"
        "transformer: {type: standardize}\n"
        f"loader: {{type: local, options: {{root: '{tmp_path / 'lake'}'}}}}\n"
        "reporter: {type: leaky}\n",
        encoding="utf-8",
    )
    env = {"TMDB_ACCESS_TOKEN": token, "PYTHONPATH": str(_leaky_plugin(tmp_path))}
    done = run_subprocess("run", "--config", str(config), *verbose, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "leaky" in done.stderr and "cannot start with ***" in done.stderr
    assert token not in done.stderr + done.stdout


# -- defect 11: a live list is today's ------------------------------------------------------------
def _at(day: dt.date) -> RunContext:
    return RunContext(trend_date=day, run_id="datecheck001", started_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC))


JUST_AFTER_MIDNIGHT = dt.datetime(2026, 11, 26, 0, 5, tzinfo=dt.UTC)


@pytest.mark.usefixtures("aioresponses_compat")
@pytest.mark.parametrize("day", [dt.date(2026, 11, 26), dt.date(2026, 11, 25)], ids=["today", "yesterday"])
async def test_today_and_yesterday_are_allowed(day: dt.date) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, payload=PAGE)
        batches = await collect(tmdb_extractor(_at(day), enrich=False, clock=lambda: JUST_AFTER_MIDNIGHT))
    assert [b.page for b in batches] == [1]


@pytest.mark.parametrize("day", [dt.date(2026, 11, 24), dt.date(2026, 11, 27), dt.date(2025, 1, 1)])
async def test_any_other_date_is_refused_before_any_request(day: dt.date) -> None:
    with aioresponses() as mocked, pytest.raises(ConfigError) as caught:
        await collect(tmdb_extractor(_at(day), enrich=False, clock=lambda: JUST_AFTER_MIDNIGHT))
    assert not mocked.requests
    message = str(caught.value)
    assert message.startswith(f"--date {day.isoformat()}: tmdb-trending fetches the list as it is now (UTC 2026-11-26)")
    assert "'replay' extractor" in message and "'pipeline reprocess'" in message and "\n" not in message


def test_the_command_line_refuses_a_past_date_with_one_line(tmp_path: Path, run_cli: CliRunner) -> None:
    done = run_cli(
        "run",
        "--config",
        "config/pipeline.yml",
        "--date",
        "2025-01-01",
        "--set",
        f"loader.options.root={tmp_path / 'lake'}",
        "--set",
        "reporter=[]",
        "--set",
        "extractor.options.base_url=http://127.0.0.1:9",
        "-q",
        env={"TMDB_ACCESS_TOKEN": TOKEN},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --date 2025-01-01: tmdb-trending fetches the list")
    assert not (tmp_path / "lake" / "cleaned_data").exists()


# -- issue 18: an integer of any length ------------------------------------------------------------
@pytest.mark.usefixtures("aioresponses_compat")
async def test_a_5000_digit_id_is_one_dropped_record_not_an_invalid_page() -> None:
    huge = "9" * 5000
    results = f'[{{"id": {huge}, "title": "Huge", "popularity": 1.0}}, {{"id": 2, "title": "B", "popularity": 2.0}}]'
    body = f'{{"page": 1, "results": {results}, "total_pages": 1, "total_results": 2}}'
    with aioresponses() as mocked:
        mocked.get(TRENDING, body=body, content_type="application/json")
        [page] = await collect(tmdb_extractor(enrich=False, pages=1))
    assert page.body == body.encode()  # the raw zone keeps every digit
    cleaner = StandardizeTransformer(StandardizeOptions(), today_context())
    frame = await cleaner.transform(page)
    assert frame["id"].tolist() == [2] and dict(cleaner.statistics()) == {"id_out_of_range": 1}
