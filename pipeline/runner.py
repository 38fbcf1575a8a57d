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
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any

from pipeline import registry
from pipeline.config import PipelineConfig, StageConfig, load_config
from pipeline.datalake.files import uninterrupted
from pipeline.errors import ConfigError, PipelineError
from pipeline.options import build_options, known_options
from pipeline.preparation import Preparation
from pipeline.redact import redact
from pipeline.stage import (
    CommitInfo,
    Extractor,
    Feed,
    FeedResult,
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
    """The stage instances of one run, built but not yet opened.

    ``transformer`` and ``loader`` serve the extractor's first feed; ``per_feed`` holds a
    transformer and a loader of their own for each further feed (each feed commits its own
    day through its own loader instance, with its own lock and manifest).
    """

    extractor: Extractor[Any]
    transformer: Transformer[Any]
    loader: Loader[Any]
    reporters: tuple[Reporter[Any], ...] = ()
    per_feed: tuple[tuple[Feed, Transformer[Any], Loader[Any]], ...] = ()

    def all(self) -> list[Stage[Any]]:
        """Every stage, in run order."""
        extra = [stage for _, transformer, loader in self.per_feed for stage in (transformer, loader)]
        return [self.extractor, self.transformer, self.loader, *extra, *self.reporters]

    def for_feed(self, feed: Feed) -> tuple[Transformer[Any], Loader[Any]]:
        """The transformer and loader that handle ``feed``."""
        for other, transformer, loader in self.per_feed:
            if other == feed:
                return transformer, loader
        if feed == self.extractor.feeds[0]:
            return self.transformer, self.loader
        raise PipelineError(f"no transformer and loader were built for feed {feed.spec}")


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
    """Resolve every stage by entry-point name and validate its options; nothing is opened.

    An extractor of several feeds gets a transformer and a loader per feed.
    """
    extractor: Extractor[Any] = build_stage("extractor", config.extractor, context)
    return Stages(
        extractor=extractor,
        transformer=build_stage("transformer", config.transformer, context),
        loader=build_stage("loader", config.loader, context),
        reporters=tuple(build_stage("reporter", r, context) for r in config.reporters),
        per_feed=tuple(
            (
                feed,
                build_stage("transformer", config.transformer, context),
                build_stage("loader", config.loader, context),
            )
            for feed in extractor.feeds[1:]
        ),
    )


async def run_pipeline(
    config: PipelineConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    trend_date: dt.date | None = None,
    dry_run: bool = False,
    force: bool = False,
    feeds: Collection[str | Feed] | None = None,
) -> RunResult:
    """Run the configured pipeline once and return what it did.

    ``config`` is a ``PipelineConfig``, a mapping shaped like the YAML, or a path to it.
    ``feeds`` (``movie/day`` or ``Feed``) runs only those of the configured feeds.

    With one feed a failure raises, as it always did. With several, each feed commits or
    fails on its own: the result lists every feed (``result.feeds``), ``result.failed`` the
    ones that failed, and nothing is raised for them (the CLI exits 1).
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    context = new_context(trend_date, dry_run=dry_run, force=force)
    stages = build_stages(config, context)
    try:
        result = await run_stages(stages, context, only=feeds)
    except Exception as exc:  # not a cancellation: a stopped run has no time left to send anything
        await notify_failure(stages.reporters, context, exc)
        raise
    reported = not context.dry_run and any(feed.ok for feed in result.feeds)  # the reporters ran, and told it
    if result.failed and not reported:  # several feeds: all failed, or some did in a dry run
        await notify_failure(stages.reporters, context, feeds_failure_line(result))
    return result


def failure_line(exc: BaseException) -> str:
    """A failed run's one-line error, redacted, ending with what it did to the lake (as the CLI prints it)."""
    message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    outcome = getattr(exc, "outcome", None)
    if outcome:
        message = f"{message}; {outcome}"
    return redact(" ".join(message.split()))


def feeds_failure_line(result: RunResult) -> str:
    """``1 of 3 feeds failed: tv/day: <error>; <outcome>``, redacted: the one line of a run whose feeds failed."""
    failures = "; ".join(feed.describe_failure() for feed in result.failed)
    return redact(f"{len(result.failed)} of {len(result.feeds)} feeds failed: {failures}")


async def notify_failure(reporters: Sequence[Reporter[Any]], context: RunContext, failure: BaseException | str) -> None:
    """Give every reporter the failure (``Reporter.on_failure``), an error or its line; a reporter that fails here
    is logged only."""
    line = failure if isinstance(failure, str) else failure_line(failure)
    for reporter in reporters:
        try:
            await reporter.on_failure(context, line)
        except Exception as failed:
            logger.warning("reporter %r could not report the failure: %s", reporter.name, redact(str(failed)))


def select_feeds(available: Sequence[Feed], only: Collection[str | Feed] | None) -> list[Feed]:
    """The configured feeds ``only`` names (all of them without it); a ``ConfigError`` for one not configured."""
    if only is None:
        return list(available)
    wanted = []
    for item in only:
        try:
            feed = item if isinstance(item, Feed) else Feed.parse(item)
        except ValueError as exc:
            raise ConfigError(f"--feed: {exc}") from None
        if feed not in available:
            configured = ", ".join(f.spec for f in available)
            raise ConfigError(f"--feed {feed.spec}: not a feed of this config; it has {configured}")
        wanted.append(feed)
    return [feed for feed in available if feed in wanted]


async def run_stages(
    stages: Stages,
    context: RunContext,
    *,
    only: Collection[str | Feed] | None = None,
    reuse_raw: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run already-built stages: per feed extract → transform → load per page and commit; then report.

    ``reuse_raw``: the manifest entry of raw pages already in the lake, which a one-feed commit names instead
    of storing the run's own (``reprocess``). A failure raises the stage's error with ``outcome`` set; a
    cancellation re-raises the ``CancelledError`` with the outcome as its message (``outcome_of``).
    """
    seen: list[RunResult] = []
    try:
        return await _run_stages(stages, context, only, reuse_raw, seen)
    except asyncio.CancelledError as exc:
        # Stopped after some feeds committed (while reporting, or while the stages close): say so, never
        # "nothing was committed".
        committed = [feed.feed.spec for result in seen for feed in result.feeds if feed.status == "committed"]
        if committed and outcome_of(exc) is None:
            _tell(exc, f"{context.trend_date} was committed for {', '.join(committed)}; the run was stopped after")
        raise


async def _run_stages(
    stages: Stages,
    context: RunContext,
    only: Collection[str | Feed] | None,
    reuse_raw: Mapping[str, Any] | None,
    seen: list[RunResult],
) -> RunResult:
    timings: dict[str, float] = defaultdict(float)
    extractor = stages.extractor
    async with contextlib.AsyncExitStack() as stack:
        for stage in stages.all():
            async with _blame(stage, timings, "open"):
                await stack.enter_async_context(stage)
        feeds = select_feeds(extractor.feeds, only)
        result = RunResult(
            run_id=context.run_id,
            trend_date=context.trend_date,
            feed=feeds[0],
            started_at=context.started_at,
            dry_run=context.dry_run,
            lake=stages.loader.describe(),
            tracked=tuple(extractor.feeds),
        )
        logger.info(
            "run %s: %s for %s into %s%s",
            context.run_id,
            "; ".join(feed.label for feed in feeds),
            context.trend_date,
            result.lake,
            " (dry run)" if context.dry_run else "",
        )
        result.feeds = [FeedResult(feed) for feed in feeds]
        seen.append(result)
        # the reporters' prepare() starts with the first cleaned rows (pipeline.preparation)
        preparation = Preparation(() if context.dry_run else stages.reporters)
        try:
            if len(feeds) == 1:
                # One feed: its failure is the run's, raised as it always was.
                await _run_feed(stages, context, result.feeds[0], timings, reuse_raw=reuse_raw, ready=preparation.start)
            else:
                await _run_feeds(stages, context, result.feeds, timings, ready=preparation.start)
            async with _blame(extractor, timings, "extract"):  # every feed's batches have ended: the run's, read once
                result.counters = dict(sorted(extractor.statistics().items()))
            _summarise(result, timings)
            committed = [feed for feed in result.feeds if feed.ok]
            if committed and not context.dry_run:
                primary_loader = stages.for_feed(result.feed)[1]
                lake = RunLake(primary_loader if isinstance(primary_loader, LakeReader) else None, result.lake)
                await _report(stages.reporters, result, lake, timings, preparation)
        finally:
            await preparation.cancel()
        _summarise(result, timings, keep_outputs=True)
    logger.info(
        "run %s done: %d rows, %d pages, %.2fs, dropped %s%s",
        context.run_id,
        sum(feed.rows for feed in result.feeds),
        sum(feed.batches for feed in result.feeds),
        result.wall_seconds,
        result.dropped or "nothing",
        "; failed: " + ", ".join(feed.feed.spec for feed in result.failed) if result.failed else "",
    )
    return result


async def _run_feeds(
    stages: Stages,
    context: RunContext,
    feeds: list[FeedResult],
    timings: dict[str, float],
    *,
    ready: Callable[[], None] | None = None,
) -> None:
    """Every feed at once; one feed's failure is recorded in its ``FeedResult`` and does not touch the others.

    A cancellation (SIGTERM, Ctrl-C) aborts every feed still writing and propagates, with each
    feed's outcome attached for the CLI's one line.
    """
    try:
        async with asyncio.TaskGroup() as group:
            for feed_result in feeds:
                group.create_task(
                    _run_feed(stages, context, feed_result, timings, contain=True, ready=ready),
                    name=f"feed-{feed_result.feed.slug}",
                )
    except BaseException as exc:
        error = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) and exc.exceptions else exc
        outcomes = [f"{feed.feed.spec}: {feed.outcome}" for feed in feeds if feed.outcome is not None]
        if outcomes and not (isinstance(error, PipelineError) and error.outcome):
            _tell(error, "; ".join(outcomes))
        raise error from None


async def _run_feed(
    stages: Stages,
    context: RunContext,
    feed_result: FeedResult,
    run_timings: dict[str, float],
    *,
    contain: bool = False,
    reuse_raw: Mapping[str, Any] | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """One feed: begin, stream its pages, commit; on failure abort its day (and raise unless ``contain``).

    ``ready`` is called once the feed's first rows are cleaned.
    """
    feed = feed_result.feed
    transformer, loader = stages.for_feed(feed)
    timings: dict[str, float] = defaultdict(float)
    days: list[LoadDay] = []  # the day, once begun
    try:
        try:
            if context.dry_run:  # a feed that fails in a dry run is contained as in a real one
                await _stream(stages.extractor, feed, transformer, loader, feed_result, timings, None, ready=ready)
                feed_result.outputs = dict(loader.planned_outputs(feed))
                feed_result.status = "dry-run"
                return
            await _stream(
                stages.extractor, feed, transformer, loader, feed_result, timings, days, reuse_raw, ready=ready
            )
            async with _blame(loader, timings, "load"):
                info = _commit_info(context, feed_result, transformer)
                committed = await days[0].commit(info)
            feed_result.outputs.update(committed.outputs)
            feed_result.status = "committed"
        except BaseException as exc:
            logger.info("run %s: %s failed; aborting its day", context.run_id, feed.spec)
            if days:
                outcome = await _abort(days[0])
            else:
                nothing = f"nothing was committed; {context.trend_date} keeps its previous data"
                outcome = getattr(exc, "outcome", None) or nothing
            _tell(exc, outcome)
            feed_result.exception = exc
            feed_result.outcome = outcome
            if not contain or not isinstance(exc, Exception):
                raise
            feed_result.error = _one_line(exc)
            logger.warning("%s failed: %s", feed.spec, feed_result.describe_failure())
    finally:
        feed_result.timings = dict(timings)
        for key, seconds in timings.items():
            run_timings[key] += seconds


async def _stream(
    extractor: Extractor[Any],
    feed: Feed,
    transformer: Transformer[Any],
    loader: Loader[Any],
    result: FeedResult,
    timings: dict[str, float],
    days: list[LoadDay] | None,
    reuse_raw: Mapping[str, Any] | None = None,
    *,
    ready: Callable[[], None] | None = None,
) -> None:
    """Stream the feed's pages through; unless a dry run (``days`` is ``None``), ``begin`` the day while the
    first page is fetched and append it to ``days``, then write every page into it. ``ready`` is called
    after the first page is cleaned."""

    async def fetch() -> Any:
        async with _blame(extractor, timings, "extract"):
            return await anext(batches, None)

    try:
        async with contextlib.aclosing(extractor.feed_batches(feed)) as batches:
            prefetch = asyncio.ensure_future(fetch())
            try:
                if days is not None:
                    async with _blame(loader, timings, "load"):
                        days.append(await loader.begin(feed, reuse_raw=reuse_raw))
            except BaseException:
                prefetch.cancel()
                await asyncio.gather(prefetch, return_exceptions=True)
                raise
            first: asyncio.Future[Any] | None = prefetch
            while True:
                batch = await first if first is not None else await fetch()
                first = None
                if batch is None:
                    break
                result.batches += 1
                if days:
                    async with _blame(loader, timings, "load"):
                        await days[0].write_raw(batch)
                async with _blame(transformer, timings, "transform"):
                    chunk = await transformer.transform(batch)
                result.rows += len(chunk)
                if ready is not None:
                    ready()
                    ready = None
                if days and len(chunk):
                    async with _blame(loader, timings, "load"):
                        await days[0].write(chunk)
    except BaseException:
        # The feed failed or was stopped: what its stages counted still goes into its result, but a plugin's
        # statistics() that fails too must not replace the error that is on its way out.
        try:
            await _read_statistics(extractor, transformer, feed, result, timings)
        except Exception as failed:
            logger.warning("%s: the stages' statistics could not be read: %s", feed.spec, redact(str(failed)))
        raise
    # the feed's batches ended (and their generator closed): what its stages counted, read once
    await _read_statistics(extractor, transformer, feed, result, timings)


async def _read_statistics(
    extractor: Extractor[Any], transformer: Transformer[Any], feed: Feed, result: FeedResult, timings: dict[str, float]
) -> None:
    async with _blame(extractor, timings, "extract"):
        result.counters = dict(sorted(extractor.statistics(feed).items()))
    async with _blame(transformer, timings, "transform"):
        result.dropped = dict(sorted(transformer.statistics().items()))


def _summarise(result: RunResult, timings: dict[str, float], *, keep_outputs: bool = False) -> None:
    """The run's single-feed fields from its primary feed: the first committed title feed, else the first."""
    result.finished_at = dt.datetime.now(dt.UTC)
    feeds = result.feeds
    primary = next(
        (f for f in feeds if f.ok and not f.feed.is_people),
        next((f for f in feeds if f.ok), feeds[0]),
    )
    result.feed, result.rows, result.batches = primary.feed, primary.rows, primary.batches
    result.dropped = dict(primary.dropped)
    result.timings = dict(timings)
    if keep_outputs:
        return
    result.outputs = dict(primary.outputs)
    for other in feeds:
        if other is not primary:  # the other feeds' objects, named by feed
            result.outputs.update({f"{kind} ({other.feed.spec})": where for kind, where in other.outputs.items()})


def _commit_info(context: RunContext, result: FeedResult, transformer: Transformer[Any]) -> CommitInfo:
    return CommitInfo(
        run_id=context.run_id,
        started_at=context.started_at,
        finished_at=dt.datetime.now(dt.UTC),
        counters=dict(result.counters),
        dropped=dict(result.dropped),
        transformer=transformer.name,
        pipeline_version=project_version(),
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))


async def _report(
    reporters: Sequence[Reporter[Any]],
    result: RunResult,
    lake: RunLake,
    timings: dict[str, float],
    preparation: Preparation | None = None,
) -> None:
    """Run every reporter after the commit (once their ``prepare`` ended); a failure says the day was committed
    and which reports were not written.

    One failing reporter does not stop the others: the first failure is raised once they all ran.
    """
    if preparation is not None:
        started = time.perf_counter()
        try:
            await preparation.finish()
        except BaseException as exc:  # stopped while a prepare() still ran: the day is committed all the same
            _tell(exc, _committed_outcome(result.trend_date, [r.name for r in reporters], len(reporters)))
            raise
        finally:
            timings["report"] += time.perf_counter() - started
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


async def _abort(day: LoadDay) -> str:
    """Undo the day and say what the lake holds; a second cancellation (another signal) waits for the abort.

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
    "feeds_failure_line",
    "new_context",
    "notify_failure",
    "outcome_of",
    "run_pipeline",
    "run_stages",
    "select_feeds",
)
