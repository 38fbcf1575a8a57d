"""Runner behaviour that mutation testing showed nothing else pins down (docs/testing.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pandas as pd
import pytest

from pipeline.errors import ExtractError, LoadError
from pipeline.options import NoOptions
from pipeline.runner import Stages, project_version, run_stages
from pipeline.stage import Batch, CommitInfo, Feed, Loader, RunContext, RunLake, RunResult
from tests.support.fakes import CollectingLoader, FrameTransformer, ListExtractor, RecordingReporter, batch


def make(context: RunContext, **parts: Any) -> Stages:
    batches = [batch(1, [1, 2]), batch(2, [3, 4]), batch(3, [5])]
    stages = Stages(
        extractor=ListExtractor(context, batches),
        transformer=FrameTransformer(context),
        loader=CollectingLoader(context),
        reporters=(RecordingReporter(context),),
    )
    return dataclasses.replace(stages, **parts)


class TimedLoader(CollectingLoader):
    """Notes when its commit ended."""

    committed_at: dt.datetime | None = None

    async def commit(self, info: CommitInfo) -> dict[str, str]:
        outputs = await super().commit(info)
        self.committed_at = dt.datetime.now(dt.UTC)
        return outputs


class SnapshotReporter(RecordingReporter):
    """Keeps a copy of the result as it was handed to the reporter."""

    snapshot: RunResult | None = None
    reported_at: dt.datetime | None = None

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        self.snapshot = dataclasses.replace(result, timings=dict(result.timings), dropped=dict(result.dropped))
        outputs = await super().report(result, lake)
        self.reported_at = dt.datetime.now(dt.UTC)
        return outputs


class DroppingTransformer(FrameTransformer):
    """Drops one row per page, and says so."""

    async def transform(self, batch: Batch) -> pd.DataFrame:
        frame = await super().transform(batch)
        self.dropped["no title"] += 1
        return frame.iloc[1:]


class WriteOnlyLoader(Loader[NoOptions]):
    """A loader that cannot read its lake back (no ``read_day``)."""

    def __init__(self, context: RunContext) -> None:
        super().__init__(NoOptions(), context, name="write-only")

    async def begin(self, feed: Feed) -> None:
        pass

    async def write(self, chunk: pd.DataFrame) -> None:
        pass

    async def commit(self, info: CommitInfo) -> dict[str, str]:
        return {"cleaned": "nowhere://"}

    async def abort(self) -> None:
        pass


async def test_reporters_see_the_result_as_of_the_commit(context: RunContext) -> None:
    loader, reporter = TimedLoader(context), SnapshotReporter(context)
    result = await run_stages(make(context, loader=loader, reporters=(reporter,)), context)
    seen = reporter.snapshot
    assert seen is not None and seen.finished_at is not None and loader.committed_at is not None
    assert seen.finished_at >= loader.committed_at, "the finish time is taken again after the commit"
    assert {"open", "extract", "transform", "load"} <= set(seen.timings)
    assert seen.counters == {"pages": 3}
    assert result.finished_at is not None and reporter.reported_at is not None
    assert result.finished_at >= reporter.reported_at, "the run finishes after its reports"
    assert "report" in result.timings


async def test_what_the_transformer_dropped_reaches_the_commit_and_the_result(context: RunContext) -> None:
    loader, reporter = CollectingLoader(context), SnapshotReporter(context)
    stages = make(context, transformer=DroppingTransformer(context), loader=loader, reporters=(reporter,))
    result = await run_stages(stages, context)
    assert result.rows == 2
    assert result.dropped == {"no title": 3}
    assert loader.summary is not None and dict(loader.summary.dropped) == {"no title": 3}
    assert reporter.snapshot is not None and reporter.snapshot.dropped == {"no title": 3}


async def test_a_loader_that_cannot_read_gives_reporters_no_day(context: RunContext) -> None:
    reporter = RecordingReporter(context)
    result = await run_stages(make(context, loader=WriteOnlyLoader(context), reporters=(reporter,)), context)
    assert [(s.rows, s.today_rows) for s in reporter.seen] == [(5, None)]
    assert result.outputs == {"cleaned": "nowhere://", "report:record": "memory://report"}


async def test_a_stages_own_pipeline_error_passes_through_unwrapped(context: RunContext) -> None:
    own = ExtractError("TMDB said no", stage="list")

    class Refusing(ListExtractor):
        async def batches(self) -> AsyncGenerator[Batch, None]:
            raise own
            yield  # pragma: no cover

    loader = CollectingLoader(context)
    with pytest.raises(ExtractError) as caught:
        await run_stages(make(context, extractor=Refusing(context, []), loader=loader), context)
    assert caught.value is own
    assert loader.aborted
    assert own.outcome == "nothing was committed"


async def test_an_outcome_the_error_already_carries_is_kept(context: RunContext) -> None:
    own = LoadError("the commit failed", stage="collect")
    own.outcome = "the old day was restored"

    class Failing(CollectingLoader):
        async def commit(self, info: CommitInfo) -> dict[str, str]:
            raise own

    with pytest.raises(LoadError) as caught:
        await run_stages(make(context, loader=Failing(context)), context)
    assert caught.value is own and own.outcome == "the old day was restored"


async def test_timings_are_durations_within_the_runs_wall_time(context: RunContext) -> None:
    started = time.perf_counter()
    result = await run_stages(make(context), context)
    elapsed = time.perf_counter() - started
    assert result.timings and all(0 < value <= elapsed for value in result.timings.values())
    assert sum(result.timings.values()) <= elapsed


@pytest.fixture
def uncached_version() -> Iterator[None]:
    """``project_version`` computed afresh in the test (it is cached for the process)."""
    project_version.cache_clear()
    yield
    project_version.cache_clear()


def test_project_version_is_the_installed_distributions(uncached_version: None) -> None:
    assert project_version() == importlib.metadata.version("tmdb-trending-pipeline")


def test_project_version_without_the_distribution_is_unknown(
    uncached_version: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert project_version() == "0+unknown"


async def test_a_dry_run_reports_where_the_loader_would_write(context: RunContext) -> None:
    class Planning(CollectingLoader):
        def planned_outputs(self, feed: Feed) -> dict[str, str]:
            return {"cleaned": f"memory://{feed.slug}"}

    dry = dataclasses.replace(context, dry_run=True)
    loader = Planning(dry)
    result = await run_stages(make(dry, loader=loader), dry)
    assert result.outputs == {"cleaned": "memory://movies"}
    assert loader.summary is None and result.rows == 5
    assert result.finished_at is not None and result.counters == {"pages": 3}
    assert set(result.timings) == {"open", "extract", "transform"}


async def test_a_loader_with_nothing_to_say_leaves_the_error_without_an_outcome(context: RunContext) -> None:
    class Failing(WriteOnlyLoader):
        async def write(self, chunk: pd.DataFrame) -> None:
            raise OSError("disk full")

    with pytest.raises(LoadError, match="disk full") as caught:
        await run_stages(make(context, loader=Failing(context)), context)
    assert caught.value.outcome is None
