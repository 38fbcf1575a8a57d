"""In-memory fake stages: plain classes, no mocks, recording what happened to them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from types import MappingProxyType
from typing import Any

import pandas as pd

from pipeline.options import NoOptions
from pipeline.stage import (
    Batch,
    CommitInfo,
    Committed,
    Extractor,
    Feed,
    LoadDay,
    Loader,
    Reporter,
    RunContext,
    RunLake,
    RunResult,
    Transformer,
)

TREND_DATE = dt.date(2026, 11, 25)
YESTERDAY = TREND_DATE - dt.timedelta(days=1)
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def page(number: int, ids: list[int], *, title: str = "Title {id}") -> dict[str, Any]:
    """A TMDB-shaped trending page with one movie per id."""
    return {
        "page": number,
        "results": [
            {
                "id": i,
                "title": title.format(id=i),
                "original_title": title.format(id=i),
                "original_language": "en",
                "media_type": "movie",
                "popularity": 1000.0 - i,
                "release_date": "2026-01-02",
                "vote_average": 7.5,
                "vote_count": 100,
                "genre_ids": [28],
                "poster_path": None,
            }
            for i in ids
        ],
        "total_pages": 3,
        "total_results": 60,
    }


def batch(number: int, ids: list[int], feed: Feed | None = None) -> Batch:
    """A ``Batch`` of ``feed`` (``movie/day`` without it) for ``page(number, ids)``."""
    return Batch(page=number, payload=page(number, ids), feed=feed or Feed(), extracted_at=NOW)


class ListExtractor(Extractor[NoOptions]):
    """Yields the given batches, each feed's on its own; can fail after ``fail_after`` of a feed's.

    Its feeds are its batches' (``Feed()`` without batches). It counts each feed's pages, and logs each read of
    its statistics: ``extractor.statistics movie/day`` for a feed's, ``extractor.statistics run`` for the run's.
    """

    def __init__(
        self, context: RunContext, batches: list[Batch], *, fail_after: int | None = None, log: list[str] | None = None
    ) -> None:
        super().__init__(NoOptions(), context, name="list")
        self._batches = batches
        self.fail_after = fail_after
        self.log = log if log is not None else []
        self._pages: Counter[Feed] = Counter()

    @property
    def feed(self) -> Feed:
        return self.feeds[0]

    @property
    def feeds(self) -> tuple[Feed, ...]:
        return tuple(dict.fromkeys(item.feed for item in self._batches)) or (Feed(),)

    def statistics(self, feed: Feed | None = None) -> Mapping[str, float]:
        self.log.append(f"extractor.statistics {'run' if feed is None else feed.spec}")
        return MappingProxyType({"pages": sum(self._pages.values()) if feed is None else self._pages[feed]})

    async def open(self) -> None:
        self.log.append("extractor.open")

    async def aclose(self) -> None:
        self.log.append("extractor.close")

    def batches(self) -> AsyncGenerator[Batch, None]:
        return self._serve(self._batches)

    def feed_batches(self, feed: Feed) -> AsyncGenerator[Batch, None]:
        if len(self.feeds) == 1:  # through batches(), which tests replace
            return super().feed_batches(feed)
        return self._serve([item for item in self._batches if item.feed == feed])

    async def _serve(self, batches: list[Batch]) -> AsyncGenerator[Batch, None]:
        try:
            for index, item in enumerate(batches):
                if self.fail_after is not None and index == self.fail_after:
                    raise RuntimeError("source went away")
                self.log.append(f"extractor.yield {item.page}")
                self._pages[item.feed] += 1
                yield item
            self.log.append("extractor.done")
        finally:
            self.log.append("extractor.pages closed")


class FrameTransformer(Transformer[NoOptions]):
    """Turns each batch into a tiny frame; can fail on a given page, or drop each page's first row for ``drop``.

    Logs each read of its statistics (``transformer.statistics``).
    """

    def __init__(
        self,
        context: RunContext,
        *,
        fail_on: int | None = None,
        drop: str | None = None,
        log: list[str] | None = None,
    ) -> None:
        super().__init__(NoOptions(), context, name="frame")
        self.fail_on = fail_on
        self.drop = drop
        self.log = log if log is not None else []
        self._dropped: Counter[str] = Counter()

    async def aclose(self) -> None:
        self.log.append("transformer.close")

    async def transform(self, batch: Batch) -> pd.DataFrame:
        if batch.page == self.fail_on:
            raise ValueError("cannot parse page")
        self.log.append(f"transformer.page {batch.page}")
        frame = pd.DataFrame({"id": [r["id"] for r in batch.payload["results"]]})
        if self.drop is None or frame.empty:
            return frame
        self._dropped[self.drop] += 1
        return frame.iloc[1:]

    def statistics(self) -> Mapping[str, int]:
        self.log.append("transformer.statistics")
        return MappingProxyType(dict(self._dropped))


class CollectingDay(LoadDay):
    """The day a ``CollectingLoader`` is writing: chunks kept aside until ``commit``."""

    def __init__(self, loader: CollectingLoader) -> None:
        self.loader = loader

    async def write(self, chunk: pd.DataFrame) -> None:
        loader = self.loader
        if loader.fail_on_chunk is not None and len(loader.pending) + 1 == loader.fail_on_chunk:
            raise OSError("disk full")
        loader.log.append(f"loader.write {len(loader.pending) + 1}")
        loader.pending.append(chunk)

    async def commit(self, info: CommitInfo) -> Committed:
        loader = self.loader
        loader.log.append("loader.commit")
        loader.summary = info
        loader.visible[loader.context.trend_date] = pd.concat(loader.pending, ignore_index=True)
        return Committed({"cleaned": "memory://today"}, "committed")

    async def abort(self) -> str:
        self.loader.log.append("loader.abort")
        self.loader.aborted = True
        self.loader.pending.clear()
        return "nothing was committed"


class CollectingLoader(Loader[NoOptions]):
    """Keeps chunks in memory; only ``commit`` makes them 'visible'."""

    def __init__(self, context: RunContext, *, fail_on_chunk: int | None = None, log: list[str] | None = None) -> None:
        super().__init__(NoOptions(), context, name="collect")
        self.fail_on_chunk = fail_on_chunk
        self.log = log if log is not None else []
        self.pending: list[pd.DataFrame] = []
        self.visible: dict[dt.date, pd.DataFrame] = {}
        self.aborted = False
        self.summary: CommitInfo | None = None
        self.reads = 0

    async def aclose(self) -> None:
        self.log.append("loader.close")

    async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> CollectingDay:
        self.log.append("loader.begin")
        return CollectingDay(self)

    def describe(self) -> str:
        return "memory://"

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        self.reads += 1
        return self.visible.get(day)


@dataclasses.dataclass
class SeenReport:
    """What a reporter saw."""

    rows: int
    today_rows: int | None


class RecordingReporter(Reporter[NoOptions]):
    """Remembers each result it was given and what the lake showed for that day."""

    def __init__(self, context: RunContext, *, log: list[str] | None = None) -> None:
        super().__init__(NoOptions(), context, name="record")
        self.seen: list[SeenReport] = []
        self.log = log if log is not None else []

    async def aclose(self) -> None:
        self.log.append("reporter.close")

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        self.log.append("reporter.report")
        today = await lake.read_day(result.trend_date, result.feed)
        self.seen.append(SeenReport(result.rows, None if today is None else len(today)))
        return {"report:record": "memory://report"}


def commit_info(loader: Loader[Any], **facts: Any) -> CommitInfo:
    """What the runner would hand ``loader`` at commit, for tests that drive a loader by hand."""
    return CommitInfo(loader.context.run_id, loader.context.started_at, **facts)
