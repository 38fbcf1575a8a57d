"""TMDB extractor and client tests against a mocked host: its URLs, fake clocks and sleeps, an extractor builder."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import yarl
from aioresponses import CallbackResult
from multidict import CIMultiDict, CIMultiDictProxy

from pipeline.options import build_options
from pipeline.stage import Batch, RunContext
from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor

BASE = "https://tmdb.test"
TRENDING = re.compile(r"^https://tmdb\.test/3/trending/movie/day(\?.*)?$")
CONFIGURATION = re.compile(r"^https://tmdb\.test/3/configuration(\?.*)?$")
GENRES = re.compile(r"^https://tmdb\.test/3/genre/movie/list(\?.*)?$")


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it; records every sleep."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Sleeps:
    """Injected retry sleep: records the waits; ``block`` makes every wait last until cancelled."""

    def __init__(self, block: bool = False) -> None:
        self.waits: list[float] = []
        self.block = block

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.block:
            await asyncio.Event().wait()


async def no_sleep(seconds: float) -> None:
    """Retry waits return at once."""


def hanging(answer: Callable[[int], CallbackResult | None]) -> tuple[Callable[..., Any], list[int]]:
    """A trending callback: ``answer(page)`` or, where it returns None, a request that never ends. Records pages."""
    never = asyncio.Event()
    asked: list[int] = []

    async def callback(url: Any, **kwargs: Any) -> CallbackResult:
        page = int(kwargs["params"]["page"])
        asked.append(page)
        result = answer(page)
        if result is None:
            await never.wait()
        assert result is not None
        return result

    return callback, asked


def build_extractor(
    context: RunContext,
    options: Mapping[str, Any],
    *,
    token: str,
    sleep: Callable[[float], Awaitable[None]],
    env: dict[str, str] | None = None,
    session: aiohttp.ClientSession | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> TmdbTrendingExtractor:
    """A ``tmdb-trending`` extractor on ``BASE`` built from a YAML-like mapping, as the runner builds it.

    ``env`` defaults to one holding ``token`` as ``TMDB_ACCESS_TOKEN``.
    """
    raw = {"base_url": BASE, "rate_limit": 1000, **options}
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return TmdbTrendingExtractor(
        build_options(TmdbOptions, raw, "extractor.options"),
        context,
        name="tmdb-trending",
        sleep=sleep,
        session=session,
        env={"TMDB_ACCESS_TOKEN": token} if env is None else env,
        **kwargs,
    )


def fast_extractor(context: RunContext, token: str, **options: Any) -> TmdbTrendingExtractor:
    """An extractor that does not enrich, tries twice and never waits between tries; ``options`` override."""
    raw = {"enrich": False, "max_attempts": 2, "backoff": 0, **options}
    return build_extractor(context, raw, token=token, sleep=no_sleep)


async def collect(ex: TmdbTrendingExtractor, guard: float | None = None) -> list[Batch]:
    """Every batch the extractor yields, inside its ``async with``; ``guard`` seconds stop a hang."""
    async with asyncio.timeout(guard), ex:
        return [batch async for batch in ex.batches()]


def request_info(url: str) -> aiohttp.RequestInfo:
    """What aiohttp says a GET of ``url`` was, for errors built by hand."""
    parsed = yarl.URL(url)
    return aiohttp.RequestInfo(parsed, "GET", CIMultiDictProxy(CIMultiDict()), parsed)
