"""Fixtures for TMDB tests: the local aiohttp TMDB stand-in, started on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.tmdb_standin import StandinConfig, TmdbStandin

StandinFactory = Callable[..., Awaitable[TmdbStandin]]


@pytest.fixture
async def tmdb_standin() -> AsyncIterator[StandinFactory]:
    """A factory: ``await tmdb_standin(latency=0.01, rate_cap=20, ...)`` starts a stand-in; all stop at teardown."""
    started: list[TmdbStandin] = []

    async def start(**config: Any) -> TmdbStandin:
        standin = TmdbStandin(StandinConfig(**config))
        await standin.start()
        started.append(standin)
        return standin

    yield start
    for standin in started:
        await standin.stop()
