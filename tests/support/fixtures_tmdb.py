"""Fixtures for TMDB tests: the local aiohttp TMDB stand-in, and an aioresponses shim for aiohttp 3.14."""

from __future__ import annotations

import datetime as dt
import inspect
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.stage import RunContext

if TYPE_CHECKING:
    from tests.support.tmdb_standin import TmdbStandin

StandinFactory = Callable[..., Awaitable["TmdbStandin"]]


def today_context(run_id: str = "liverun00001") -> RunContext:
    """A run context for today (UTC): a live extractor labels only today's (or yesterday's) list."""
    now = dt.datetime.now(dt.UTC)
    return RunContext(trend_date=now.date(), run_id=run_id, started_at=now)


@pytest.fixture
def live_context() -> RunContext:
    """``today_context()`` as a fixture."""
    return today_context()


@pytest.fixture
async def tmdb_standin() -> AsyncIterator[StandinFactory]:
    """A factory: ``await tmdb_standin(latency=0.01, rate_cap=20, ...)`` starts a stand-in; all stop at teardown."""
    from tests.support.tmdb_standin import StandinConfig, TmdbStandin

    started: list[TmdbStandin] = []

    async def start(**config: Any) -> TmdbStandin:
        standin = TmdbStandin(StandinConfig(**config))
        await standin.start()
        started.append(standin)
        return standin

    yield start
    for standin in started:
        await standin.stop()


@pytest.fixture
def aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make aioresponses build responses aiohttp 3.14 accepts (pnuckowski/aioresponses#289); a no-op otherwise."""
    import aiohttp
    import aioresponses.core

    class CompatClientResponse(aiohttp.ClientResponse):
        """aiohttp 3.14 made ``stream_writer`` a required argument that aioresponses 0.7.9 does not pass."""

        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            super().__init__(method, url, **kwargs)

    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses.core, "ClientResponse", CompatClientResponse)
    yield
