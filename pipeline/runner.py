"""The one runner: opens the stages, streams pages through them, and closes everything.

``run_pipeline(config)`` is the library entry point. It never configures logging and
never calls ``asyncio.run``, so it works inside someone else's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pipeline import registry
from pipeline.config import PipelineConfig, StageConfig, load_config
from pipeline.datalake.files import uninterrupted
from pipeline.errors import ConfigError, PipelineError
from pipeline.options import build_options, known_options
from pipeline.redact import redact
from pipeline.stage import (
    CommitInfo,
    Extractor,
    LakeReader,
    LoadDay,
    Loader,
    Reporter,
    RunContext,
    RunLake,
    RunResult,
    Stage,
    Transformer,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Stages:
    """The stage instances of one run, built but not yet opened."""

    extractor: Extractor[Any]
    transformer: Transformer[Any]
    loader: Loader[Any]
    reporters: tuple[Reporter[Any], ...] = ()

    def all(self) -> list[Stage[Any]]:
        """Every stage, in run order."""
        return [self.extractor, self.transformer, self.loader, *self.reporters]


def new_context(trend_date: dt.date | None = None, *, dry_run: bool = False, force: bool = False) -> RunContext:
    """A run context for today (UTC) or the given partition date."""
    now = dt.datetime.now(dt.UTC)
    return RunContext(
        trend_date=trend_date or now.date(),
        run_id=uuid.uuid4().hex[:12],
        started_at=now,
        dry_run=dry_run,
        force=force,
    )


def build_stage(kind: str, section: StageConfig, context: RunContext | None = None) -> Any:
    """The stage a config section names, options validated, not opened; ``context`` is ``None`` outside a run."""
    cls = registry.load(kind, section.type)
    if section.retyped:
        _refuse_stale_options(cls, section)
    options = build_options(cls.Options, section.options, f"{section.path}.options")
    return cls(options, context, name=section.type)


def _refuse_stale_options(cls: type[Stage[Any]], section: StageConfig) -> None:
    """After ``--set <path>.type=...``: name the old section's options the new stage does not take."""
    stale = sorted(set(section.options) - set(known_options(cls.Options)))
    if not stale:
        return
    path, names = section.path, ", ".join(stale)
    raise ConfigError(
        f"{path}.type: --set made it {section.type!r}, which does not take the options the section still holds "
        f"({names}); replace the whole section instead, e.g. "
        f"--set '{path}={{type: {section.type}, options: {{...}}}}', "
        f"or clear them with --set {path}.options={{}} and set what {section.type!r} needs"
    )


def build_stages(config: PipelineConfig, context: RunContext) -> Stages:
    """Resolve every stage by entry-point name and validate its options; nothing is opened."""
    return Stages(
        extractor=build_stage("extractor", config.extractor, context),
        transformer=build_stage("transformer", config.transformer, context),
        loader=build_stage("loader", config.loader, context),
        reporters=tuple(build_stage("reporter", r, context) for r in config.reporters),
    )


async def run_pipeline(
    config: PipelineConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    trend_date: dt.date | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> RunResult:
    """Run the configured pipeline once and return what it did.

    ``config`` is a ``PipelineConfig``, a mapping shaped like the YAML, or a path to it.
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    context = new_context(trend_date, dry_run=dry_run, force=force)
    stages = build_stages(config, context)
    try:
        return await run_stages(stages, context)
    except Exception as exc:  # not a cancellation: a stopped run has no time left to send anything
        await notify_failure(stages.reporters, context, exc)
        raise


def failure_line(exc: BaseException) -> str:
    """A failed run's one-line error, redacted, ending with what it did to the lake (as the CLI prints it)."""
    message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    outcome = getattr(exc, "outcome", None)
    if outcome:
        message = f"{message}; {outcome}"
    return redact(" ".join(message.split()))


async def notify_failure(reporters: Sequence[Reporter[Any]], context: RunContext, exc: BaseException) -> None:
    """Give every reporter the failure (``Reporter.on_failure``); a reporter that fails here is logged only."""
    line = failure_line(exc)
    for reporter in reporters:
        try:
            await reporter.on_failure(context, line)
        except Exception as failed:
            logger.warning("reporter %r could not report the failure: %s", reporter.name, redact(str(failed)))


async def run_stages(
    stages: Stages, context: RunContext, *, reuse_raw: Mapping[str, Any] | None = None
) -> RunResult:
    """Run already-built stages: extract → transform → load per page, commit, then report.

    ``reuse_raw``: the manifest entry of raw pages already in the lake, which the commit names instead of
    storing the run's own (``reprocess``). A failure raises the stage's error with ``outcome`` set; a
    cancellation re-raises the ``CancelledError`` with the outcome as its message (``outcome_of``).
    """
    timings: dict[str, float] = defaultdict(float)
    extractor, transformer, loader = stages.extractor, stages.transformer, stages.loader
    async with contextlib.AsyncExitStack() as stack:
        for stage in stages.all():
            async with _blame(stage, timings, "open"):
                await stack.enter_async_context(stage)
        feed = extractor.feed
        result = RunResult(
            run_id=context.run_id,
            trend_date=context.trend_date,
            feed=feed,
            started_at=context.started_at,
            dry_run=context.dry_run,
            lake=loader.describe(),
        )
        logger.info(
            "run %s: %s for %s into %s%s",
            context.run_id,
            feed.label,
            context.trend_date,
            result.lake,
            " (dry run)" if context.dry_run else "",
        )
        if context.dry_run:
            await _stream(stages, result, timings, None)
            result.outputs = {kind: loc for kind, loc in loader.planned_outputs(feed).items()}
        else:
            try:
                async with _blame(loader, timings, "load"):
                    day = await loader.begin(feed, reuse_raw=reuse_raw)
            except BaseException as exc:
                _tell(exc, f"nothing was committed; {context.trend_date} keeps its previous data")
                raise
            try:
                await _stream(stages, result, timings, day)
                _finish(result, extractor, transformer, timings)
                async with _blame(loader, timings, "load"):
                    committed = await day.commit(_commit_info(result, transformer))
                result.outputs.update(committed.outputs)
                _finish(result, extractor, transformer, timings)  # reporters see the time of the commit
            except BaseException as exc:
                logger.info("run %s failed; aborting the loader", context.run_id)
                _tell(exc, await _abort(day))
                raise
            lake = RunLake(loader if isinstance(loader, LakeReader) else None, result.lake)
            await _report(stages.reporters, result, lake, timings)
        _finish(result, extractor, transformer, timings)
    logger.info(
        "run %s done: %d rows, %d pages, %.2fs, dropped %s",
        context.run_id,
        result.rows,
        result.batches,
        result.wall_seconds,
        result.dropped or "nothing",
    )
    return result


async def _report(
    reporters: Sequence[Reporter[Any]], result: RunResult, lake: RunLake, timings: dict[str, float]
) -> None:
    """Run every reporter after the commit; a failure says the day was committed and which reports were not written.

    One failing reporter does not stop the others: the first failure is raised once they all ran.
    """
    failures: list[tuple[str, PipelineError]] = []
    for number, reporter in enumerate(reporters):
        try:
            async with _blame(reporter, timings, "report"):
                result.outputs.update(await reporter.report(result, lake))
        except PipelineError as exc:
            failures.append((reporter.name, exc))
        except BaseException as exc:  # cancelled or interrupted while reporting: the day is committed all the same
            unwritten = [name for name, _ in failures] + [r.name for r in reporters[number:]]
            _tell(exc, _committed_outcome(result.trend_date, unwritten, len(reporters)))
            raise
    if failures:
        error = failures[0][1]
        error.outcome = _committed_outcome(result.trend_date, [name for name, _ in failures], len(reporters))
        raise error


def _committed_outcome(day: dt.date, unwritten: Sequence[str], reporters: int) -> str:
    """``2026-12-03 was committed; the report was not written`` (or which of several reports were not)."""
    if reporters == 1:
        return f"{day} was committed; the report was not written"
    names = ", ".join(repr(name) for name in unwritten)
    verb = "was" if len(unwritten) == 1 else "were"
    return f"{day} was committed; {len(unwritten)} of {reporters} reports ({names}) {verb} not written"


async def _stream(stages: Stages, result: RunResult, timings: dict[str, float], day: LoadDay | None) -> None:
    """Every page through the transformer and, unless a dry run (``day`` is ``None``), into the day."""
    extractor, transformer, loader = stages.extractor, stages.transformer, stages.loader
    async with contextlib.aclosing(extractor.batches()) as batches:
        while True:
            async with _blame(extractor, timings, "extract"):
                batch = await anext(batches, None)
            if batch is None:
                break
            result.batches += 1
            if day is not None:
                async with _blame(loader, timings, "load"):
                    await day.write_raw(batch)
            async with _blame(transformer, timings, "transform"):
                chunk = await transformer.transform(batch)
            result.rows += len(chunk)
            if day is not None and len(chunk):
                async with _blame(loader, timings, "load"):
                    await day.write(chunk)


def _finish(
    result: RunResult, extractor: Extractor[Any], transformer: Transformer[Any], timings: dict[str, float]
) -> None:
    result.finished_at = dt.datetime.now(dt.UTC)
    result.counters = dict(sorted(extractor.counters.items()))
    result.dropped = dict(sorted(transformer.dropped.items()))
    result.timings = dict(timings)


def _commit_info(result: RunResult, transformer: Transformer[Any]) -> CommitInfo:
    return CommitInfo(
        run_id=result.run_id,
        started_at=result.started_at,
        finished_at=result.finished_at,
        counters=dict(result.counters),
        dropped=dict(result.dropped),
        transformer=transformer.name,
        pipeline_version=project_version(),
    )


async def _abort(day: LoadDay) -> str:
    """Undo the run and say what the lake holds; a second cancellation (another signal) waits for the abort.

    Cut short, an abort would leave its message behind what it did; finished, the lake and the one line the
    run ends with agree.
    """
    aborting = asyncio.ensure_future(day.abort())
    try:
        return await uninterrupted(aborting)
    except asyncio.CancelledError:  # cancelled again: the abort finished all the same
        if not aborting.cancelled() and aborting.exception() is None:
            return aborting.result()
        return "the abort failed; the next run (or `python -m pipeline repair`) removes what this one left"
    except Exception as exc:
        logger.warning("the abort failed: %s", exc)
        return "the abort failed; the next run (or `python -m pipeline repair`) removes what this one left"


def _tell(exc: BaseException, outcome: str) -> None:
    """Attach what the failure did to the lake: to our error, or to a cancellation (read by the CLI)."""
    if isinstance(exc, PipelineError):
        if exc.outcome is None:
            exc.outcome = outcome
    elif isinstance(exc, asyncio.CancelledError):
        exc.args = (outcome,)  # what a cancelled run's caller reads: ``outcome_of(exc)``


def outcome_of(cancelled: asyncio.CancelledError) -> str | None:
    """What a cancelled run did to the lake (the message of the ``CancelledError`` ``run_stages`` raised)."""
    return str(cancelled.args[0]) if cancelled.args and isinstance(cancelled.args[0], str) else None


@functools.cache
def project_version() -> str:
    """This distribution's version, as installed."""
    import importlib.metadata  # ~20 ms: only runs that write a manifest pay for it

    try:
        return importlib.metadata.version("tmdb-trending-pipeline")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@contextlib.asynccontextmanager
async def _blame(stage: Stage[Any], timings: dict[str, float], key: str) -> AsyncIterator[None]:
    """Time a stage call and turn a surprise into that stage kind's error, naming the stage."""
    started = time.perf_counter()
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:
        text = str(exc)
        safe = redact(text)
        error = stage.error(f"{type(exc).__name__}: {safe}", stage=stage.name)
        if safe != text:  # the original carries a secret: do not keep it reachable through __cause__
            raise error from None
        raise error from exc
    finally:
        timings[key] += time.perf_counter() - started


__all__: Sequence[str] = (
    "Stages",
    "build_stage",
    "build_stages",
    "failure_line",
    "new_context",
    "notify_failure",
    "outcome_of",
    "run_pipeline",
    "run_stages",
)
