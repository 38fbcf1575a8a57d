"""Integration: the ``tmdb-trending`` extractor against the local aiohttp TMDB stand-in.

Limits are measured on the server side (peak in flight, peak arrivals in any one-second
window) and asserted as counts with a margin, never as wall time.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.datalake import schema
from pipeline.errors import ExtractError
from pipeline.options import build_options
from pipeline.runner import run_pipeline
from pipeline.stage import Feed, RunContext
from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.tmdb import collect
from tests.support.tmdb_standin import TmdbStandin

TOKEN = "standin-token-abcdef012345"


FAST = {"backoff": 0.01, "max_backoff": 0.05, "rate_limit": 1000}
"""Short backoffs, and a rate limit far above what these runs reach, unless a test is about the rate."""


def standin_extractor(live_context: RunContext, standin: TmdbStandin, **options: Any) -> TmdbTrendingExtractor:
    raw = {"base_url": standin.base_url, **FAST, **options}
    opts = build_options(TmdbOptions, raw, "extractor.options")
    return TmdbTrendingExtractor(opts, live_context, name="tmdb-trending", env={"TMDB_ACCESS_TOKEN": TOKEN})


async def test_requests_in_flight_never_exceed_concurrency(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN, latency=0.03, total_pages=100)
    ex = standin_extractor(live_context, standin, pages=16, concurrency=4, rate_limit=400)
    batches = await collect(ex)
    assert [b.page for b in batches] == list(range(1, 17))
    # 400 req/s at 30 ms would want 12 in flight: the cap, and nothing else, holds it at 4.
    assert standin.stats.max_in_flight == 4
    assert standin.stats.requests == ex.statistics()["requests"] == 16 + 2  # + configuration and genre lookups


async def test_request_rate_stays_under_rate_limit(live_context: RunContext, tmdb_standin: StandinFactory) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=100)
    ex = standin_extractor(live_context, standin, pages=48, concurrency=8, rate_limit=192, enrich=False)
    await collect(ex)
    assert standin.stats.requests == 48
    # Evenly spaced slots allow rate * 0.125 s + 1 in any eighth of a second; after an event loop stalled by a
    # busy machine, the limiter catches up missed slots at no more than twice the rate. Unlimited, all 48 land
    # within milliseconds.
    assert standin.stats.peak_in_window(0.125) <= 2 * 24 + 1
    assert standin.stats.statuses[429] == 0


async def test_server_429s_slow_the_shared_limiter_and_the_run_completes(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    # TMDB's 10 a second, and a client asking for 40 a second, both four times faster: 10 per quarter second.
    standin = await tmdb_standin(
        token=TOKEN, total_pages=100, rate_cap=10, rate_window=0.25, retry_after="1", latency=0.0025
    )
    ex = standin_extractor(
        live_context, standin, pages=20, concurrency=6, rate_limit=160, enrich=False, max_attempts=10
    )
    batches = await collect(ex)
    assert [b.page for b in batches] == list(range(1, 21))
    counted = ex.statistics()
    assert counted["http_429"] == standin.stats.statuses[429] > 0
    assert counted["retries_429"] == counted["http_429"]
    assert ex.limiter is not None and ex.limiter.cuts >= 1 and ex.limiter.rate < 160


CAUSE_OF_FAULT = {"500": "5xx", "503": "5xx", "html502": "5xx", "reset": "connection", "truncated": "invalid_json"}


@pytest.mark.parametrize(
    "faults",
    [("500", "503", "html502"), ("500", "html502", "reset", "truncated")],
    ids=["5xx", "mixed"],
)
async def test_a_run_survives_ten_percent_faults(
    live_context: RunContext, tmdb_standin: StandinFactory, faults: tuple[str, ...]
) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=500, fault_rate=0.1, faults=faults, seed=5)
    ex = standin_extractor(live_context, standin, pages=100, concurrency=8, max_attempts=6)
    batches = await collect(ex)
    assert [b.page for b in batches] == list(range(1, 101))
    assert all(len(b.payload["results"]) == 20 for b in batches)
    injected = standin.stats.faults
    assert set(injected) == set(faults)  # every kind of fault really happened
    counted = ex.statistics()
    for cause in set(CAUSE_OF_FAULT[f] for f in faults):
        expected = sum(n for fault, n in injected.items() if CAUSE_OF_FAULT[fault] == cause)
        assert counted[f"retries_{cause}"] == expected
    assert counted["retries"] == sum(injected.values())


async def test_a_slow_server_times_out_and_is_retried(live_context: RunContext, tmdb_standin: StandinFactory) -> None:
    # Seed 13: one of the five answers is slow (each costs the test a whole timeout).
    standin = await tmdb_standin(token=TOKEN, total_pages=3, fault_rate=0.5, faults=("slow",), slow_seconds=2, seed=13)
    ex = standin_extractor(live_context, standin, pages=3, timeout=0.2, enrich=False, max_attempts=8)
    batches = await collect(ex)
    assert [b.page for b in batches] == [1, 2, 3]
    assert ex.statistics()["retries_timeout"] == standin.stats.faults["slow"] == 1


async def test_wrong_token_gets_tmdbs_401_message_and_no_retry(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token="the-right-token-000")
    ex = standin_extractor(live_context, standin, enrich=False)
    with pytest.raises(ExtractError, match=r"page 1: HTTP 401 \(TMDB status_code 7: Invalid API key"):
        await collect(ex)
    assert standin.stats.requests == 1


async def test_api_key_auth_against_the_standin(live_context: RunContext, tmdb_standin: StandinFactory) -> None:
    standin = await tmdb_standin(api_key="v3-key-0123456789", total_pages=2)
    opts = build_options(TmdbOptions, {"base_url": standin.base_url, "pages": 2, **FAST}, "extractor.options")
    ex = TmdbTrendingExtractor(opts, live_context, env={"TMDB_API_KEY": "v3-key-0123456789"})
    assert [b.page for b in await collect(ex)] == [1, 2]
    assert standin.stats.auth == {"api_key": 4}


async def test_standin_rejects_pages_above_500(tmdb_standin: StandinFactory) -> None:
    standin = await tmdb_standin()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{standin.base_url}/3/trending/movie/day", params={"page": "501"}) as response,
    ):
        body = await response.json()
    assert (response.status, body["status_code"]) == (400, 22)


async def test_progress_bar_on_a_tty(live_context: RunContext, tmdb_standin: StandinFactory) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    standin = await tmdb_standin(token=TOKEN, total_pages=5)
    stream = Tty()
    opts = build_options(TmdbOptions, {"base_url": standin.base_url, "pages": 5, **FAST}, "extractor.options")
    ex = TmdbTrendingExtractor(opts, live_context, env={"TMDB_ACCESS_TOKEN": TOKEN}, progress_stream=stream)
    await collect(ex)
    output = stream.getvalue()
    assert "\r" in output and "5/5 pages" in output and "req/s" in output and output.endswith("\n")


async def test_off_a_tty_one_summary_line(
    live_context: RunContext, tmdb_standin: StandinFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stages.extractors.tmdb.extractor")
    standin = await tmdb_standin(token=TOKEN, total_pages=5)
    ex = standin_extractor(live_context, standin, pages=5)
    ex._progress_stream = io.StringIO()  # not a TTY
    await collect(ex)
    [summary] = [r.getMessage() for r in caplog.records if ": done: " in r.getMessage()]
    assert "5/5 pages, 100 results, 7 requests, 0 retries" in summary and "req/s" in summary
    counted = ex.statistics()
    assert counted["wall_seconds"] > 0 and counted["requests_per_second"] > 0


# -- through the whole pipeline ----------------------------------------------------------
def standin_config(standin: TmdbStandin, root: Path, **extractor: Any) -> dict[str, Any]:
    return {
        "extractor": {
            "type": "tmdb-trending",
            "options": {"base_url": standin.base_url, **FAST, **extractor},
        },
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(root)}},
    }


async def test_churn_between_fetches_is_deduped_and_counted(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=100, churn=3, latency=0.01)
    result = await run_pipeline(standin_config(standin, tmp_path, pages=10, concurrency=4))
    duplicates = result.dropped.get("duplicate_id", 0)
    assert duplicates > 0
    assert result.rows + duplicates == 10 * 20
    frame = schema.read_csv_bytes(Path(result.outputs["cleaned"]).read_bytes())
    assert frame["id"].is_unique and len(frame) == result.rows


async def test_raw_zone_round_trip_through_replay(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=100, churn=2, fault_rate=0.05, seed=11)
    live = await run_pipeline(standin_config(standin, tmp_path / "live", media_type="all", pages=12, concurrency=4))
    raw = Path(live.outputs["raw"])
    replayed = await run_pipeline(
        {
            "extractor": {"type": "replay", "options": {"path": str(raw), "media_type": "all"}},
            "transformer": {"type": "standardize"},
            "loader": {"type": "local", "options": {"root": str(tmp_path / "replayed")}},
        },
        trend_date=live.trend_date,
    )
    before = schema.read_csv_bytes(Path(live.outputs["cleaned"]).read_bytes()).drop(columns="extracted_at")
    after = schema.read_csv_bytes(Path(replayed.outputs["cleaned"]).read_bytes()).drop(columns="extracted_at")
    assert len(before) > 0 and before["genres"].str.len().sum() > 0 and before["poster_url"].str.len().sum() > 0
    assert set(before["media_type"]) == {"movie", "tv"}
    assert live.dropped["person_set_aside"] > 0 and replayed.dropped == live.dropped
    assert before.equals(after)
    assert Feed("all", "day").slug == "all"
