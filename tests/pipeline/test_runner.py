"""The runner: order, streaming, abort on failure, closing, and error attribution."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib.metadata
import json
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.errors import ExtractError, LoadError, TransformError
from pipeline.options import NoOptions
from pipeline.runner import Stages, outcome_of, project_version, run_pipeline, run_stages
from pipeline.stage import Batch, CommitInfo, Committed, Feed, LoadDay, Loader, RunContext, RunLake, RunResult
from tests.support.fakes import (
    CollectingDay,
    CollectingLoader,
    FrameTransformer,
    ListExtractor,
    RecordingReporter,
    SeenReport,
    batch,
)


def logged_stages(context: RunContext, log: list[str], **fail: int) -> Stages:
    batches = [batch(1, [1, 2]), batch(2, [3, 4]), batch(3, [5])]
    return Stages(
        extractor=ListExtractor(context, batches, fail_after=fail.get("extract"), log=log),
        transformer=FrameTransformer(context, fail_on=fail.get("transform"), log=log),
        loader=CollectingLoader(context, fail_on_chunk=fail.get("load"), log=log),
        reporters=(RecordingReporter(context, log=log),),
    )


async def test_success_runs_stages_in_order_and_reports_what_was_committed(context: RunContext) -> None:
    log: list[str] = []
    stages = logged_stages(context, log)
    result = await run_stages(stages, context)
    assert result.rows == 5
    assert result.batches == 3
    assert result.outputs == {"cleaned": "memory://today", "report:record": "memory://report"}
    assert result.counters == {"pages": 3}
    assert set(result.timings) >= {"extract", "transform", "load", "report"}
    assert log.index("loader.begin") < log.index("extractor.yield 1")
    assert log.index("loader.commit") < log.index("reporter.report")
    reporter = stages.reporters[0]
    assert isinstance(reporter, RecordingReporter)
    assert [(s.rows, s.today_rows) for s in reporter.seen] == [(5, 5)]
    # closed in reverse order of opening, like nested ``async with`` blocks
    assert log[-4:] == ["reporter.close", "loader.close", "transformer.close", "extractor.close"]


async def test_chunks_stream_to_the_loader_before_extraction_ends(context: RunContext) -> None:
    log: list[str] = []
    await run_stages(logged_stages(context, log), context)
    assert log.index("loader.write 1") < log.index("extractor.yield 3")
    assert log.index("loader.write 2") < log.index("extractor.yield 3")
    assert log.index("extractor.yield 3") < log.index("extractor.done")


@pytest.mark.parametrize(
    ("failure", "error", "stage_name"),
    [
        ({"extract": 2}, ExtractError, "list"),
        ({"transform": 2}, TransformError, "frame"),
        ({"load": 2}, LoadError, "collect"),
    ],
)
async def test_a_failing_stage_aborts_the_loader_and_closes_everything(
    context: RunContext, failure: dict[str, int], error: type[Exception], stage_name: str
) -> None:
    log: list[str] = []
    stages = logged_stages(context, log, **failure)
    with pytest.raises(error) as caught:
        await run_stages(stages, context)
    assert getattr(caught.value, "stage", None) == stage_name
    assert stage_name in str(caught.value)
    loader = stages.loader
    assert isinstance(loader, CollectingLoader)
    assert loader.aborted
    assert loader.visible == {}
    assert "loader.commit" not in log
    assert "reporter.report" not in log
    assert {"extractor.close", "transformer.close", "loader.close", "reporter.close"} <= set(log)


async def test_dry_run_extracts_and_transforms_but_never_touches_the_loader(context: RunContext) -> None:
    log: list[str] = []
    dry = RunContext(context.trend_date, context.run_id, context.started_at, dry_run=True)
    stages = logged_stages(dry, log)
    result = await run_stages(stages, dry)
    assert result.rows == 5
    assert result.dry_run
    assert not [entry for entry in log if entry.startswith(("loader.begin", "loader.write", "loader.commit"))]
    assert "reporter.report" not in log


async def test_a_surprise_carrying_a_secret_is_redacted_and_not_chained(context: RunContext) -> None:
    from pipeline.redact import register_secret

    secret = "s3cr3t-token-value-0123456789"
    register_secret(secret)

    class LeakyExtractor(ListExtractor):
        async def batches(self):  # type: ignore[no-untyped-def, override]
            raise RuntimeError(f"GET https://api.example/3/x?api_key={secret} failed")
            yield  # pragma: no cover

    log: list[str] = []
    stages = logged_stages(context, log)
    stages = Stages(LeakyExtractor(context, []), stages.transformer, stages.loader)
    with pytest.raises(ExtractError) as caught:
        await run_stages(stages, context)
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_later_stage_failing_closes_the_extractors_pages_before_the_abort(context: RunContext) -> None:
    log: list[str] = []
    with pytest.raises(LoadError):
        await run_stages(logged_stages(context, log, load=2), context)
    assert "extractor.done" not in log
    assert log.index("extractor.pages closed") < log.index("loader.abort")


async def test_reporters_share_one_read_of_each_day_and_a_run_without_readers_reads_nothing(
    context: RunContext,
) -> None:
    log: list[str] = []
    stages = logged_stages(context, log)
    two = dataclasses.replace(stages, reporters=(RecordingReporter(context), RecordingReporter(context)))
    await run_stages(two, context)
    loader = stages.loader
    assert isinstance(loader, CollectingLoader)
    assert loader.reads == 1, "two reporters, one read of the day"
    assert [r.seen for r in two.reporters if isinstance(r, RecordingReporter)] == [[SeenReport(5, 5)]] * 2

    quiet = logged_stages(context, [])
    await run_stages(dataclasses.replace(quiet, reporters=()), context)
    assert isinstance(quiet.loader, CollectingLoader) and quiet.loader.reads == 0


async def test_the_loader_gets_the_runs_facts_typed_at_commit(context: RunContext) -> None:
    stages = logged_stages(context, [])
    result = await run_stages(stages, context)
    loader = stages.loader
    assert isinstance(loader, CollectingLoader) and loader.summary is not None
    info = loader.summary
    assert (info.run_id, info.started_at) == (context.run_id, context.started_at)
    assert info.finished_at is not None and info.finished_at <= (result.finished_at or info.finished_at)
    assert dict(info.counters) == {"pages": 3} and dict(info.dropped) == {}
    assert (info.transformer, info.pipeline_version) == ("frame", project_version())
    assert project_version() == importlib.metadata.version("tmdb-trending-pipeline")


async def test_timings_name_every_phase_and_are_rounded_only_for_output(context: RunContext) -> None:
    result = await run_stages(logged_stages(context, []), context)
    assert set(result.timings) == {"open", "extract", "transform", "load", "report"}
    assert all(value > 0 for value in result.timings.values())
    assert result.to_dict()["timings"] == {k: round(v, 3) for k, v in result.timings.items()}


async def test_a_failure_or_a_cancellation_carries_what_it_did_to_the_lake(context: RunContext) -> None:
    with pytest.raises(LoadError) as failed:
        await run_stages(logged_stages(context, [], load=2), context)
    assert failed.value.outcome == "nothing was committed"

    hanging_now = asyncio.Event()

    class Hanging(ListExtractor):
        async def batches(self) -> AsyncGenerator[Batch, None]:
            yield batch(1, [1])
            hanging_now.set()
            await asyncio.Event().wait()

    stages = logged_stages(context, [])
    run = asyncio.ensure_future(run_stages(dataclasses.replace(stages, extractor=Hanging(context, [])), context))
    await hanging_now.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await run
    assert outcome_of(cancelled.value) == "nothing was committed"


async def test_run_pipeline_takes_a_mapping_or_a_path(tmp_path: Path) -> None:
    config = {
        "extractor": {"type": "replay", "options": {"path": "tests/data/sample/2026-11-25"}},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(tmp_path / "lake")}},
    }
    path = tmp_path / "c.yml"
    path.write_text(json.dumps(config))
    day = dt.date(2026, 11, 25)
    first = await run_pipeline(config, trend_date=day)
    second = await run_pipeline(str(path), trend_date=day)
    assert (first.rows, second.rows) == (57, 57) and first.run_id != second.run_id
    assert len(first.run_id) == 12


async def test_a_second_cancellation_waits_for_the_abort_and_the_outcome_is_still_told(context: RunContext) -> None:
    """GitHub Actions sends SIGINT, then SIGTERM: the second must not cut the abort short and leave no outcome."""
    hanging_now, aborting, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class Hanging(ListExtractor):
        async def batches(self) -> AsyncGenerator[Batch, None]:
            yield batch(1, [1])
            hanging_now.set()
            await asyncio.Event().wait()

    class SlowDay(CollectingDay):
        async def abort(self) -> str:
            aborting.set()
            await release.wait()
            return await super().abort()

    class SlowAbort(CollectingLoader):
        async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> CollectingDay:
            await super().begin(feed)
            return SlowDay(self)

    stages = logged_stages(context, [])
    stages = dataclasses.replace(stages, extractor=Hanging(context, []), loader=SlowAbort(context))
    run = asyncio.ensure_future(run_stages(stages, context))
    await hanging_now.wait()
    run.cancel()
    await aborting.wait()
    run.cancel()  # the second signal, while the abort is under way
    await asyncio.sleep(0)
    assert not run.done()
    release.set()
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await run
    assert stages.loader.aborted
    assert outcome_of(cancelled.value) == "nothing was committed"


# == what reaches the result, the commit and the reporters; errors and timings =============================
def make_with(context: RunContext, **parts: Any) -> Stages:
    """The usual stages with ``parts`` in place of theirs."""
    return dataclasses.replace(logged_stages(context, []), **parts)


class TimedDay(CollectingDay):
    """Notes when its commit ended."""

    async def commit(self, info: CommitInfo) -> Committed:
        committed = await super().commit(info)
        assert isinstance(self.loader, TimedLoader)
        self.loader.committed_at = dt.datetime.now(dt.UTC)
        return committed


class TimedLoader(CollectingLoader):
    """Its days note when their commit ended."""

    committed_at: dt.datetime | None = None

    async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> CollectingDay:
        await super().begin(feed)
        return TimedDay(self)


class SnapshotReporter(RecordingReporter):
    """Keeps a copy of the result as it was handed to the reporter."""

    snapshot: RunResult | None = None
    reported_at: dt.datetime | None = None

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        self.snapshot = dataclasses.replace(result, timings=dict(result.timings), dropped=dict(result.dropped))
        outputs = await super().report(result, lake)
        self.reported_at = dt.datetime.now(dt.UTC)
        return outputs


class WriteOnlyDay(LoadDay):
    """A day written nowhere."""

    async def write(self, chunk: pd.DataFrame) -> None:
        pass

    async def commit(self, info: CommitInfo) -> Committed:
        return Committed({"cleaned": "nowhere://"}, "committed nowhere")

    async def abort(self) -> str:
        return "nothing was committed"


class WriteOnlyLoader(Loader[NoOptions]):
    """A loader that cannot read its lake back (no ``read_day``)."""

    day = WriteOnlyDay

    def __init__(self, context: RunContext) -> None:
        super().__init__(NoOptions(), context, name="write-only")

    async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> LoadDay:
        return self.day()


async def test_reporters_see_the_result_as_of_the_commit(context: RunContext) -> None:
    loader, reporter = TimedLoader(context), SnapshotReporter(context)
    result = await run_stages(make_with(context, loader=loader, reporters=(reporter,)), context)
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
    stages = make_with(
        context, transformer=FrameTransformer(context, drop="no title"), loader=loader, reporters=(reporter,)
    )
    result = await run_stages(stages, context)
    assert result.rows == 2
    assert result.dropped == {"no title": 3}
    assert loader.summary is not None and dict(loader.summary.dropped) == {"no title": 3}
    assert reporter.snapshot is not None and reporter.snapshot.dropped == {"no title": 3}


async def test_the_stages_statistics_are_read_once_when_the_pages_end_before_the_commit(context: RunContext) -> None:
    log: list[str] = []
    stages = dataclasses.replace(
        logged_stages(context, log), transformer=FrameTransformer(context, drop="no title", log=log)
    )
    result = await run_stages(stages, context)
    reads = [entry for entry in log if "statistics" in entry]
    assert sorted(reads) == ["extractor.statistics movie/day", "extractor.statistics run", "transformer.statistics"]
    assert (
        log.index("extractor.pages closed") < log.index("extractor.statistics movie/day") < log.index("loader.commit")
    )
    assert log.index("extractor.pages closed") < log.index("transformer.statistics") < log.index("loader.commit")
    assert log.index("extractor.statistics run") < log.index("reporter.report")
    assert (result.counters, result.dropped) == ({"pages": 3}, {"no title": 3})


async def test_each_feed_committed_or_failed_carries_its_own_statistics_and_the_run_the_total(
    context: RunContext,
) -> None:
    movies, shows = Feed("movie", "day"), Feed("tv", "day")
    log: list[str] = []
    shows_log: list[str] = []
    batches = [batch(1, [1, 2], movies), batch(1, [7, 8], shows), batch(2, [3, 4], movies), batch(2, [9], shows)]
    stages = Stages(
        extractor=ListExtractor(context, batches, log=log),
        transformer=FrameTransformer(context, drop="no title", log=log),
        loader=CollectingLoader(context),
        per_feed=(
            (shows, FrameTransformer(context, drop="no poster", fail_on=2, log=shows_log), CollectingLoader(context)),
        ),
    )
    result = await run_stages(stages, context)
    assert [(f.feed, f.status, f.counters, f.dropped) for f in result.feeds] == [
        (movies, "committed", {"pages": 2}, {"no title": 2}),
        (shows, "failed", {"pages": 2}, {"no poster": 1}),
    ]
    assert (result.counters, result.dropped) == ({"pages": 4}, {"no title": 2})  # the run's pages; the primary's drops
    assert [e for e in log if e.startswith("extractor.statistics")][-1] == "extractor.statistics run"
    assert sorted(e for e in log if e.startswith("extractor.statistics")) == [
        "extractor.statistics movie/day",
        "extractor.statistics run",
        "extractor.statistics tv/day",
    ]
    assert log.count("transformer.statistics") == shows_log.count("transformer.statistics") == 1


class MiscountingTransformer(FrameTransformer):
    """A plugin whose statistics() raises."""

    def statistics(self) -> Mapping[str, int]:
        raise KeyError("no tally")


async def test_statistics_that_fail_on_a_failing_feed_leave_the_feeds_own_error(
    context: RunContext, caplog: pytest.LogCaptureFixture
) -> None:
    """The extractor fails after a page; the transformer's statistics() fails too: the run raises the extractor's
    error, with what happened to the lake, and the statistics' failure is a warning. On a feed that succeeds the
    same statistics() is the transformer's own one-line error."""
    stages = dataclasses.replace(logged_stages(context, [], extract=1), transformer=MiscountingTransformer(context))
    with pytest.raises(ExtractError) as caught:
        await run_stages(stages, context)
    assert "source went away" in str(caught.value) and caught.value.outcome == "nothing was committed"
    warnings = [r.getMessage() for r in caplog.records if "statistics could not be read" in r.getMessage()]
    assert len(warnings) == 1 and "no tally" in warnings[0]

    good = dataclasses.replace(logged_stages(context, []), transformer=MiscountingTransformer(context))
    with pytest.raises(TransformError, match="KeyError: 'no tally'"):
        await run_stages(good, context)


async def test_a_loader_that_cannot_read_gives_reporters_no_day(context: RunContext) -> None:
    reporter = RecordingReporter(context)
    result = await run_stages(make_with(context, loader=WriteOnlyLoader(context), reporters=(reporter,)), context)
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
        await run_stages(make_with(context, extractor=Refusing(context, []), loader=loader), context)
    assert caught.value is own
    assert loader.aborted
    assert own.outcome == "nothing was committed"


async def test_an_outcome_the_error_already_carries_is_kept(context: RunContext) -> None:
    own = LoadError("the commit failed", stage="collect")
    own.outcome = "the old day was restored"

    class FailingDay(CollectingDay):
        async def commit(self, info: CommitInfo) -> Committed:
            raise own

    class Failing(CollectingLoader):
        async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> CollectingDay:
            return FailingDay(self)

    with pytest.raises(LoadError) as caught:
        await run_stages(make_with(context, loader=Failing(context)), context)
    assert caught.value is own and own.outcome == "the old day was restored"


async def test_timings_are_durations_within_the_runs_wall_time(context: RunContext) -> None:
    started = time.perf_counter()
    result = await run_stages(make_with(context), context)
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
    result = await run_stages(make_with(dry, loader=loader), dry)
    assert result.outputs == {"cleaned": "memory://movies"}
    assert loader.summary is None and result.rows == 5
    assert result.finished_at is not None and result.counters == {"pages": 3}
    assert set(result.timings) == {"open", "extract", "transform"}


async def test_a_failed_write_carries_what_the_abort_says_of_the_lake(context: RunContext) -> None:
    class FailingDay(WriteOnlyDay):
        async def write(self, chunk: pd.DataFrame) -> None:
            raise OSError("disk full")

        async def abort(self) -> str:
            return "nothing was committed; the old day stays"

    class Failing(WriteOnlyLoader):
        day = FailingDay

    with pytest.raises(LoadError, match="disk full") as caught:
        await run_stages(make_with(context, loader=Failing(context)), context)
    assert caught.value.outcome == "nothing was committed; the old day stays"


async def test_a_run_stopped_after_its_commit_says_the_day_was_committed(context: RunContext) -> None:
    """A signal while the stages close, after the commit: the one line must not say nothing was committed."""
    closing = asyncio.Event()

    class SlowClose(CollectingLoader):
        async def aclose(self) -> None:
            closing.set()
            await asyncio.Event().wait()

    stages = dataclasses.replace(logged_stages(context, []), loader=SlowClose(context))
    run = asyncio.ensure_future(run_stages(stages, context))
    await closing.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError) as stopped:
        await run
    assert outcome_of(stopped.value) == f"{context.trend_date} was committed for movie/day; the run was stopped after"
