"""Reporters prepare beside the extraction (``Reporter.prepare``, ``pipeline.preparation``).

The fakes below make the order observable: the extractor holds its second page until the
reporter's ``prepare`` has begun (so a ``prepare`` that only ran after the extraction would
never let the run finish), and a ``prepare`` can be held open until the commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from pipeline.errors import ExtractError
from pipeline.runner import Stages, outcome_of, run_stages
from pipeline.stage import Batch, CommitInfo, Committed, Feed, RunContext
from tests.support.fakes import (
    CollectingDay,
    CollectingLoader,
    FrameTransformer,
    ListExtractor,
    RecordingReporter,
    batch,
)

ROOT = Path(__file__).resolve().parents[2]
BOUND = 10.0
"""Seconds a fake waits for the other side before the test fails (a bound, not a timing)."""


class PreparingReporter(RecordingReporter):
    """Logs its ``prepare``; ``gate`` (when given) holds it open; ``fail`` makes it raise."""

    def __init__(
        self, context: RunContext, log: list[str], *, gate: asyncio.Event | None = None, fail: str = ""
    ) -> None:
        super().__init__(context, log=log)
        self.began = asyncio.Event()
        self.gate = gate
        self.fail = fail

    async def prepare(self) -> None:
        self.log.append("reporter.prepare")
        self.began.set()
        try:
            if self.gate is not None:
                await asyncio.wait_for(self.gate.wait(), BOUND)
        except asyncio.CancelledError:
            self.log.append("reporter.prepare cancelled")
            raise
        if self.fail:
            raise RuntimeError(self.fail)
        self.log.append("reporter.prepared")


class WaitingExtractor(ListExtractor):
    """Yields its first page, then waits for the reporter's ``prepare`` to begin before the rest."""

    def __init__(
        self, context: RunContext, batches: list[Batch], reporter: PreparingReporter, **kwargs: object
    ) -> None:
        super().__init__(context, batches, log=reporter.log, **kwargs)  # type: ignore[arg-type]
        self.reporter = reporter

    async def _serve(self, batches: list[Batch]) -> AsyncGenerator[Batch, None]:
        first = True
        async for item in super()._serve(batches):
            yield item
            if first:  # the consumer asks for page 2: it comes once prepare() has begun
                await asyncio.wait_for(self.reporter.began.wait(), BOUND)
                first = False


class PausingExtractor(ListExtractor):
    """Lets every other task run a few steps after each page (a ``prepare`` started then would begin)."""

    async def _serve(self, batches: list[Batch]) -> AsyncGenerator[Batch, None]:
        async for item in super()._serve(batches):
            yield item
            for _ in range(5):
                await asyncio.sleep(0)


class GateDay(CollectingDay):
    """Opens the reporter's gate when the day commits."""

    def __init__(self, loader: CollectingLoader, gate: asyncio.Event) -> None:
        super().__init__(loader)
        self.gate = gate

    async def commit(self, info: CommitInfo) -> Committed:
        committed = await super().commit(info)
        self.gate.set()
        return committed


class GateLoader(CollectingLoader):
    def __init__(self, context: RunContext, log: list[str], gate: asyncio.Event) -> None:
        super().__init__(context, log=log)
        self.gate = gate

    async def begin(self, feed: Feed, *, reuse_raw: object = None) -> GateDay:  # type: ignore[override]
        self.log.append("loader.begin")
        return GateDay(self, self.gate)


def stages_with(context: RunContext, reporter: PreparingReporter, *, fail_after: int | None = None) -> Stages:
    batches = [batch(1, [1, 2]), batch(2, [3, 4]), batch(3, [5])]
    return Stages(
        extractor=WaitingExtractor(context, batches, reporter, fail_after=fail_after),
        transformer=FrameTransformer(context, log=reporter.log),
        loader=CollectingLoader(context, log=reporter.log),
        reporters=(reporter,),
    )


async def test_prepare_runs_beside_the_extraction_once_the_first_rows_are_clean(context: RunContext) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log)
    result = await run_stages(stages_with(context, reporter), context)
    assert result.ok
    assert log.index("transformer.page 1") < log.index("reporter.prepare") < log.index("extractor.yield 2")
    assert log.index("reporter.prepared") < log.index("reporter.report")
    assert log.count("reporter.prepare") == 1


async def test_the_report_waits_for_a_prepare_that_is_still_running_at_the_commit(context: RunContext) -> None:
    log: list[str] = []
    gate = asyncio.Event()
    reporter = PreparingReporter(context, log, gate=gate)
    stages = dataclasses.replace(stages_with(context, reporter), loader=GateLoader(context, log, gate))
    result = await run_stages(stages, context)
    assert result.ok
    assert log.index("loader.commit") < log.index("reporter.prepared") < log.index("reporter.report")
    assert "report" in result.timings


async def test_a_prepare_that_fails_is_a_warning_and_the_report_is_still_written(
    context: RunContext, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log, fail="font cache unreadable\nat line 3")
    with caplog.at_level(logging.WARNING, logger="pipeline.preparation"):
        result = await run_stages(stages_with(context, reporter), context)
    assert result.ok
    assert result.outputs["report:record"] == "memory://report"
    assert log.index("reporter.prepare") < log.index("reporter.report")
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.preparation"]
    assert warnings == [
        "reporter 'record' could not prepare, its report will do without: RuntimeError: font cache unreadable at line 3"
    ]


async def test_a_failed_run_cancels_a_prepare_still_running_and_keeps_its_own_error(context: RunContext) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log, gate=asyncio.Event())  # never opened: prepare runs until cancelled
    with pytest.raises(ExtractError, match="source went away"):
        await run_stages(stages_with(context, reporter, fail_after=2), context)
    assert log.index("reporter.prepare") < log.index("loader.abort")
    assert "reporter.prepare cancelled" in log
    assert "reporter.report" not in log
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("prepare-")]


async def test_a_run_that_fails_before_its_first_rows_never_prepares(context: RunContext) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log)
    with pytest.raises(ExtractError, match="source went away"):
        await run_stages(stages_with(context, reporter, fail_after=0), context)
    assert "reporter.prepare" not in log
    assert "loader.abort" in log


async def test_a_stopped_run_cancels_prepare_too(context: RunContext) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log, gate=asyncio.Event())
    run = asyncio.create_task(run_stages(stages_with(context, reporter), context))
    await asyncio.wait_for(reporter.began.wait(), BOUND)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert "reporter.prepare cancelled" in log
    assert "reporter.report" not in log


async def test_a_run_stopped_after_the_commit_while_prepare_runs_says_the_day_was_committed(
    context: RunContext,
) -> None:
    log: list[str] = []
    committed = asyncio.Event()
    reporter = PreparingReporter(context, log, gate=asyncio.Event())  # still preparing when the day commits
    stages = dataclasses.replace(stages_with(context, reporter), loader=GateLoader(context, log, committed))
    run = asyncio.create_task(run_stages(stages, context))
    await asyncio.wait_for(committed.wait(), BOUND)
    for _ in range(5):  # the runner moves on to wait for prepare()
        await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await run
    assert outcome_of(cancelled.value) == f"{context.trend_date} was committed; the report was not written"
    assert "reporter.prepare cancelled" in log and "reporter.report" not in log


async def test_a_dry_run_does_not_prepare(context: RunContext) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log)
    stages = stages_with(context, reporter)
    stages = dataclasses.replace(stages, extractor=PausingExtractor(context, [batch(1, [1]), batch(2, [2])], log=log))
    dry = dataclasses.replace(context, dry_run=True)
    result = await run_stages(stages, dry)
    assert result.ok
    assert "reporter.prepare" not in log
    assert "reporter.report" not in log


async def test_several_feeds_prepare_once(context: RunContext) -> None:
    log: list[str] = []
    reporter = PreparingReporter(context, log)
    tv = Feed(media_type="tv")
    batches = [batch(1, [1]), batch(2, [2]), batch(1, [3], tv), batch(2, [4], tv)]
    stages = Stages(
        extractor=ListExtractor(context, batches, log=log),
        transformer=FrameTransformer(context, log=log),
        loader=CollectingLoader(context, log=log),
        reporters=(reporter,),
        per_feed=((tv, FrameTransformer(context, log=log), CollectingLoader(context, log=log)),),
    )
    result = await run_stages(stages, context)
    assert result.ok
    assert log.count("reporter.prepare") == 1
    assert log.index("reporter.prepared") < log.index("reporter.report")


async def test_a_reporter_without_prepare_reports_as_before(context: RunContext) -> None:
    log: list[str] = []
    stages = Stages(
        extractor=ListExtractor(context, [batch(1, [1])], log=log),
        transformer=FrameTransformer(context, log=log),
        loader=CollectingLoader(context, log=log),
        reporters=(RecordingReporter(context, log=log),),
    )
    result = await run_stages(stages, context)
    assert result.ok and "reporter.report" in log


def test_the_chart_warms_matplotlib_in_a_thread_once_per_process() -> None:
    """In a fresh interpreter: after ``prepare``, drawing needs no further import; a second ``prepare`` reuses it."""
    script = """
import asyncio, json, sys, threading
from stages.reporters import chart
before = sorted(m for m in sys.modules if m.startswith("matplotlib"))
threads = []
real_start = threading.Thread.start
def start(self):
    threads.append((self.name, self.daemon))
    real_start(self)
threading.Thread.start = start
async def main():
    await asyncio.gather(chart.prepare(), chart.prepare())
    await chart.prepare()
asyncio.run(main())
print(json.dumps({
    "before": before,
    "loaded": [m for m in ("matplotlib.figure", "matplotlib.backends.backend_svg", "matplotlib.font_manager")
               if m in sys.modules],
    "backend": sys.modules["matplotlib"].get_backend(),
    "threads": threads,
}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["before"] == []
    assert seen["loaded"] == ["matplotlib.figure", "matplotlib.backends.backend_svg", "matplotlib.font_manager"]
    assert seen["backend"] == "svg"
    assert seen["threads"] == [["chart-warm-up", False]]  # not a daemon: never halted mid-write at exit
