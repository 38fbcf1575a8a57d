"""The one runner: opens the stages, streams pages through them, and closes everything.

``run_pipeline(config)`` is the library entry point. It never configures logging and
never calls ``asyncio.run``, so it works inside someone else's event loop.
"""

from __future__ import annotations

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
from pipeline.errors import PipelineError
from pipeline.options import build_options
from pipeline.redact import redact
from pipeline.stage import (
    CommitInfo,
    Extractor,
    LakeReader,
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
    options = build_options(cls.Options, section.options, f"{section.path}.options")
    return cls(options, context, name=section.type)


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
    return await run_stages(build_stages(config, context), context)


async def run_stages(stages: Stages, context: RunContext) -> RunResult:
    """Run already-built stages: extract → transform → load per page, commit, then report."""
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
            await _stream(stages, result, timings, write=False)
            result.outputs = {kind: loc for kind, loc in loader.planned_outputs(feed).items()}
        else:
            try:
                async with _blame(loader, timings, "load"):
                    await loader.begin(feed)
                await _stream(stages, result, timings, write=True)
                _finish(result, extractor, transformer, timings)
                async with _blame(loader, timings, "load"):
                    result.outputs.update(await loader.commit(_commit_info(result, transformer)))
                _finish(result, extractor, transformer, timings)  # reporters see the time of the commit
            except BaseException as exc:
                logger.info("run %s failed; aborting the loader", context.run_id)
                with contextlib.suppress(Exception):
                    await loader.abort()
                _tell_outcome(exc, loader)
                raise
            lake = RunLake(loader if isinstance(loader, LakeReader) else None, result.lake)
            for reporter in stages.reporters:
                async with _blame(reporter, timings, "report"):
                    result.outputs.update(await reporter.report(result, lake))
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


async def _stream(stages: Stages, result: RunResult, timings: dict[str, float], *, write: bool) -> None:
    extractor, transformer, loader = stages.extractor, stages.transformer, stages.loader
    async with contextlib.aclosing(extractor.batches()) as batches:
        while True:
            async with _blame(extractor, timings, "extract"):
                batch = await anext(batches, None)
            if batch is None:
                break
            result.batches += 1
            if write:
                async with _blame(loader, timings, "load"):
                    await loader.write_raw(batch)
            async with _blame(transformer, timings, "transform"):
                chunk = await transformer.transform(batch)
            result.rows += len(chunk)
            if write and len(chunk):
                async with _blame(loader, timings, "load"):
                    await loader.write(chunk)


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


def _tell_outcome(exc: BaseException, loader: Loader[Any]) -> None:
    """Attach what the failure did to the lake to our error, or log it for an interruption."""
    outcome = loader.outcome()
    if outcome is None:
        return
    if isinstance(exc, PipelineError):
        if exc.outcome is None:
            exc.outcome = outcome
    else:  # cancelled or interrupted: the CLI's one line reads it from here
        exc.outcome = outcome  # type: ignore[attr-defined]


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


__all__: Sequence[str] = ("Stages", "build_stage", "build_stages", "new_context", "run_pipeline", "run_stages")
