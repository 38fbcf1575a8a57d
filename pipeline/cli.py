"""Command line: ``python -m pipeline [run|check|stages|ddl|history|repair|reprocess] ...``.

``main`` is the only place that calls ``asyncio.run`` and the only place that sets up
logging. Exit codes: 0 success, 1 failed run, 2 usage or config error, 130 on SIGINT and
143 on SIGTERM (both abort the run and clean up first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from pipeline.commands.ddl import DEFAULT_PEOPLE_TABLE, DEFAULT_TABLE, ENGINES, FIRST_YEAR, LAST_YEAR
from pipeline.errors import PipelineError
from pipeline.redact import RedactingFilter, redact, register_env_secrets

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.stage import RunResult

# Only what --help needs is imported above: configs, stages, pydantic and asyncio (with ssl and
# socket, ~60 ms) load with the command that uses them, so `python -m pipeline --help` starts at
# once (test_cli_startup, benchmarks/startup.py).

DEFAULT_CONFIG = "config/pipeline.yml"
COMMANDS = ("run", "check", "stages", "ddl", "history", "repair", "reprocess")
CONFIG_COMMANDS = frozenset(COMMANDS) - {"stages"}
DISTRIBUTION = "tmdb-trending-pipeline"
T = TypeVar("T")
HISTORY_DAYS = 30
HISTORY_TOP = 10
HISTORY_MAX_DAYS = 366
HISTORY_FORMATS = ("table", "json", "csv")
"""``history``'s defaults, here because pipeline.commands.history imports asyncio (a test keeps them equal)."""


class _UsageError(Exception):
    """argparse wants to exit with a usage error."""


class _Stopped(Exception):
    """SIGINT or SIGTERM cancelled the command; the run aborted and cleaned up."""

    def __init__(self, signum: int, outcome: str | None) -> None:
        self.signum = signum
        self.outcome = outcome
        super().__init__(signal.Signals(signum).name)


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` where SIGINT and SIGTERM cancel the work, so it aborts and cleans up, then stop."""

    import asyncio

    async def supervised() -> T:
        loop = asyncio.get_running_loop()
        # At the loop's first turn: the command's set-up (for a run, its stages' imports) is done.
        loop.call_soon(_resume_gc)
        task = asyncio.current_task()
        assert task is not None
        received: list[int] = []

        def stop(signum: int) -> None:
            received.append(signum)
            task.cancel()

        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                pass
        try:
            return await coro
        except asyncio.CancelledError as exc:
            if received:
                from pipeline.runner import outcome_of

                raise _Stopped(received[0], outcome_of(exc)) from None
            raise
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    return asyncio.run(supervised())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


class _Version(argparse.Action):
    """``--version``: reads the installed distribution's metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"pipeline {version(DISTRIBUTION)}")
        except PackageNotFoundError:
            print(f"pipeline (version unknown: {DISTRIBUTION} is not installed)")
        parser.exit()


FIRST_DATE = dt.date(1970, 1, 1)
LAST_DATE = dt.date(9998, 12, 31)
"""The dates a command takes: a report's previous day and a history window must stay inside Python's dates."""


def _date(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    if not FIRST_DATE <= day <= LAST_DATE:
        raise argparse.ArgumentTypeError(f"expected a date from {FIRST_DATE} to {LAST_DATE}, got {text!r}")
    return day


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-parser per command."""
    parser = _Parser(prog="python -m pipeline", description="TMDB trending ETL into a data lake and a report.")
    parser.add_argument("-V", "--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
        p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. extractor.options.pages=50 (value parsed as YAML)",
        )

    run = sub.add_parser("run", help="run the pipeline (the default command)")
    with_config(run)
    run.add_argument("--date", type=_date, help="partition date YYYY-MM-DD (default: today, UTC)")
    run.add_argument("--dry-run", action="store_true", help="extract and transform, write nothing")
    run.add_argument("--force", action="store_true", help="commit even if the regression guard refuses")
    run.add_argument(
        "--skip-committed",
        action="store_true",
        help="exit 0 at once when the day is already committed (a catch-up run: reads the manifest, calls no API)",
    )
    run.add_argument(
        "--feed",
        dest="feeds",
        action="append",
        metavar="MEDIA/WINDOW",
        help="run only this configured feed, e.g. movie/day (repeatable; default: every configured feed)",
    )
    common(run)
    check = sub.add_parser("check", help="preflight: config, stages, credentials, paths; --connect calls each service")
    with_config(check)
    check.add_argument(
        "--connect",
        action="store_true",
        help="also make one cheap authenticated call per service (TMDB /3/configuration; S3 HeadBucket and a "
        "write-and-delete probe of one small object under <prefix>/_preflight/)",
    )
    common(check)
    stages = sub.add_parser("stages", help="list the registered stages")
    common(stages)
    ddl = sub.add_parser("ddl", help="print a CREATE EXTERNAL TABLE for the configured lake")
    with_config(ddl)
    ddl.add_argument("--engine", choices=ENGINES, default=ENGINES[0], help=f"query engine (default: {ENGINES[0]})")
    ddl.add_argument("--table", help=f"table name (default: {DEFAULT_TABLE}; with --people {DEFAULT_PEOPLE_TABLE})")
    ddl.add_argument("--people", action="store_true", help="the people table (person feeds) instead of the titles")
    ddl.add_argument("--location", help="s3://bucket/prefix of the lake, instead of the configured loader's")
    ddl.add_argument("--first-year", type=int, default=FIRST_YEAR, help=f"partition projection start ({FIRST_YEAR})")
    ddl.add_argument("--last-year", type=int, default=LAST_YEAR, help=f"partition projection end ({LAST_YEAR})")
    common(ddl)
    hist = sub.add_parser("history", help="the trend over the last days (the report's model), or a title's ranks")
    with_config(hist)
    hist.add_argument(
        "--days",
        type=_positive,
        default=HISTORY_DAYS,
        help=f"days up to --date, at most {HISTORY_MAX_DAYS} ({HISTORY_DAYS})",
    )
    hist.add_argument("--date", type=_date, help="last day of the window, YYYY-MM-DD (default: today, UTC)")
    hist.add_argument(
        "--title", help="show this title or person (exact, ignoring case; else every one whose name contains it)"
    )
    hist.add_argument("--top", type=_positive, default=HISTORY_TOP, help=f"size of the top list ({HISTORY_TOP})")
    hist.add_argument(
        "--format", choices=HISTORY_FORMATS, default="table", help="output (default: table; csv: one feed)"
    )
    hist.add_argument(
        "--feed",
        dest="feeds",
        action="append",
        metavar="MEDIA/WINDOW",
        help="show only this configured feed, e.g. person/day (repeatable; default: every configured feed)",
    )
    common(hist)
    repair = sub.add_parser("repair", help="heal the lake: finish or undo dead runs' commits, remove leftovers")
    with_config(repair)
    repair.add_argument("--check", action="store_true", help="only report; exit 1 if anything needs healing")
    common(repair)
    reprocess = sub.add_parser("reprocess", help="rebuild cleaned days from the raw zone with today's transformer")
    with_config(reprocess)
    reprocess.add_argument("--from", dest="start", type=_date, required=True, help="first day, YYYY-MM-DD")
    reprocess.add_argument("--to", dest="end", type=_date, help="last day, YYYY-MM-DD (default: --from)")
    reprocess.add_argument("--force", action="store_true", help="commit even if the regression guard refuses")
    reprocess.add_argument(
        "--feed",
        dest="feeds",
        action="append",
        metavar="MEDIA/WINDOW",
        help="rebuild only this configured feed, e.g. tv/day (repeatable; default: every configured feed)",
    )
    common(reprocess)
    return parser


@functools.cache
def parser() -> argparse.ArgumentParser:
    """``build_parser()``, built once per process: a program that calls ``main`` again parses with the same one."""
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse ``argv`` (``sys.argv`` without it), run the command, return the exit code.

    ``python -m pipeline`` calls it through ``program``, which then ends the process.
    """
    if argv is None:
        # Start-up (the CLI, yaml, pydantic, the config, the stages and their libraries) allocates some
        # 100,000 objects that live as long as the process: the collector walked them about 100 times
        # before a run's first request (25-45 ms). It resumes at the event loop's first turn
        # (``_run_async``), with them frozen out of its walks.
        gc.disable()
        _startup_gc_paused[0] = True
    code = _main(argv)
    if argv is None:
        # The process ends now, every file and session closed. ``program`` skips the interpreter's
        # teardown; where it cannot (a stream that will not flush, or a script that calls ``main``
        # itself), frozen objects skip the final garbage collection (0.3 s with pandas loaded, 0.05 s frozen).
        gc.freeze()
    return code


def program() -> int:
    """``python -m pipeline`` and the ``tmdb-pipeline`` script: ``main()``, then the process ends without the
    interpreter's teardown (``pipeline.quick_exit``); returns the exit code when Python's own exit is needed."""
    from pipeline.quick_exit import exit_now

    code = main()
    exit_now(code)
    return code


_startup_gc_paused = [False]
"""Whether ``main`` paused the collector for the process's start-up (``_run_async`` resumes it)."""


def _resume_gc() -> None:
    """End the start-up pause of the collector, if ``main`` began one."""
    if _startup_gc_paused[0]:
        _startup_gc_paused[0] = False
        gc.freeze()
        gc.enable()


def _main(argv: Sequence[str] | None) -> int:
    # First, so that no message (a plugin's import error, a config error) can print a secret raw.
    register_env_secrets()
    try:
        args = parser().parse_args(_with_command(list(sys.argv[1:] if argv is None else argv)))
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version print and stop
        return exc.code if isinstance(exc.code, int) else 0
    _configure_logging(args.verbose, args.quiet)
    try:
        if args.command in CONFIG_COMMANDS:
            from pipeline.deps import require_core

            require_core()  # the wrong Python fails here, at once, with one line
    except PipelineError as exc:
        _report_error(exc, args.verbose)
        return exc.exit_code
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "check": _cmd_check,
        "stages": _cmd_stages,
        "ddl": _cmd_ddl,
        "history": _cmd_history,
        "repair": _cmd_repair,
        "reprocess": _cmd_reprocess,
    }
    try:
        return handlers[args.command](args)
    except PipelineError as exc:
        _report_error(exc, args.verbose)
        return exc.exit_code
    except _Stopped as stopped:
        what = stopped.outcome or "the run was aborted; nothing partial was committed"
        print(f"error: stopped by {stopped}; {what}", file=sys.stderr)
        return 128 + stopped.signum
    except KeyboardInterrupt as exc:
        what = getattr(exc, "outcome", None) or "nothing partial was committed"
        print(f"error: interrupted; {what}", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not an input problem: say so, and keep the details behind -v
        _report_error(exc, args.verbose, prefix="unexpected error")
        return 1


def _with_command(argv: list[str]) -> list[str]:
    """``argv`` led by its command: none means ``run``; an unknown word is a usage error that guesses the command."""
    first = argv[0] if argv else "-"
    if first in (*COMMANDS, "-h", "--help", "-V", "--version"):
        return argv
    if not first.startswith("-"):
        import difflib

        guess = difflib.get_close_matches(first, COMMANDS, n=1)
        hint = f"did you mean {guess[0]}?" if guess else f"commands: {', '.join(COMMANDS)}"
        raise _UsageError(f"unknown command {first!r} ({hint})")
    return ["run", *argv]


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.runner import feeds_failure_line, run_pipeline

    config = _config(args)
    if args.skip_committed and not args.dry_run:
        from pipeline.commands.committed import find_committed

        day = args.date or dt.datetime.now(dt.UTC).date()
        catch_up = _run_async(find_committed(config, day, args.feeds))
        if not catch_up.missing:
            print(catch_up.describe())
            return 0
        if catch_up.committed:
            print(catch_up.describe(), file=sys.stderr)
            args.feeds = [feed.spec for feed in catch_up.missing]
    result = _run_async(
        run_pipeline(config, trend_date=args.date, dry_run=args.dry_run, force=args.force, feeds=args.feeds)
    )
    # a reporter that wrote its document to stdout keeps stdout parseable: the summary goes to stderr
    _print_result(result, sys.stderr if result.wrote_to_stdout else sys.stdout)
    if result.failed:
        print(f"error: {feeds_failure_line(result)}", file=sys.stderr)
        return 1
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    """Preflight like ``dbt debug``: one line per check, exit 2 if a stage cannot be built, 1 on any other failure."""
    from pipeline import registry
    from pipeline.deps import dependency_check
    from pipeline.runner import build_stage, new_context
    from pipeline.stage import Check

    config = _config(args)
    context = new_context()
    sections = config.stages()
    built: list[Any] = []
    checks: list[Check] = []
    dependencies: list[Check] = []
    unbuilt = False
    for kind, section in sections:
        try:
            built.append(build_stage(kind, section, context))
        except PipelineError as exc:
            unbuilt = True
            checks.append(Check(kind, section.type, "options", False, str(exc)))
        if section.type in registry.find(kind):
            dependencies.append(dependency_check(kind, section.type, registry.distribution_name(kind, section.type)))

    async def preflight() -> None:
        for stage in built:
            try:
                checks.extend(await stage.preflight(args.connect))
            except Exception as exc:  # a plugin's preflight that raises is one failed check, not a crash
                checks.append(Check(stage.kind, stage.name, "preflight", False, f"{type(exc).__name__}: {exc}"))

    if args.connect:
        print(
            "--connect: one authenticated call per service; an s3 loader also writes and deletes one small object "
            "under <prefix>/_preflight/",
            file=sys.stderr,
        )
    _run_async(preflight())
    checks += dependencies
    order: dict[tuple[str, str], int] = {}
    for number, (kind, section) in enumerate(sections):
        order.setdefault((kind, section.type), number)
    # stable: each stage's own checks keep their order, its dependencies last
    checks.sort(key=lambda c: order.get((c.kind, c.stage), len(order)))
    passed, failed = _marks()
    for check in checks:
        mark = passed if check.ok else failed
        print(redact(f"{mark} {check.kind:<11} {check.stage:<15} {check.what:<12} {check.detail}".rstrip()))
    bad = sum(not check.ok for check in checks)
    if bad:
        print(f"{args.config}: {bad} of {len(checks)} checks failed")
        return 2 if unbuilt else 1
    offline = "" if args.connect else " (offline; --connect for more)"
    print(f"{args.config}: valid, {len(checks)} checks passed{offline}")
    return 0


def _marks() -> tuple[str, str]:
    """``✓``/``✗``, or ``ok``/``FAIL`` where stdout cannot encode them."""
    try:
        "✓✗".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "ok  ", "FAIL"
    return "✓", "✗"


def _cmd_stages(args: argparse.Namespace) -> int:
    from pipeline import registry

    infos = registry.describe()
    width = max((len(info.target) for info in infos), default=0)
    for kind in registry.GROUPS:
        print(f"{kind}s ({registry.GROUPS[kind]}):")
        for info in (i for i in infos if i.kind == kind):
            print(f"  {info.name:<16} {info.target:<{width}} [{info.distribution}]")
    return 0


def _cmd_ddl(args: argparse.Namespace) -> int:
    # Imported by the command that needs it, so --help and `stages` never load pandas (test_cli_startup).
    from pipeline.commands.ddl import ddl_for_config

    config = _config(args)
    sys.stdout.write(
        ddl_for_config(
            config,
            engine=args.engine,
            table=args.table,
            location=args.location,
            first_year=args.first_year,
            last_year=args.last_year,
            people=args.people,
        )
    )
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from pipeline.commands.history import history, render_csv, render_json, render_table  # pandas: see _cmd_ddl

    config = _config(args)
    found = _run_async(
        history(
            config,
            end=args.date,
            days=args.days,
            title=args.title,
            top=args.top,
            feeds=args.feeds,
            one_feed=args.format == "csv",
        )
    )
    render = {"json": render_json, "csv": render_csv}.get(args.format, render_table)
    sys.stdout.write(render(found))
    return 0


def _cmd_repair(args: argparse.Namespace) -> int:
    from pipeline.commands.repair import repair  # pandas: see _cmd_ddl

    config = _config(args)
    report = _run_async(repair(config, check=args.check))
    where = redact(report.lake)
    for line in report.actions:
        print(redact(f"healed   {line}"))
    for line in report.problems:
        print(redact(f"{'found' if args.check else 'cannot'}    {line}"))
    if report.healthy:
        print(f"{where}: healthy ({report.days} days checked)")
        return 0
    if args.check:
        print(f"{where}: {len(report.problems)} problem(s); `python -m pipeline repair` heals them")
        return 1
    print(f"{where}: {len(report.actions)} repair(s), {len(report.problems)} problem(s) left ({report.days} days)")
    return 1 if report.problems else 0


def _cmd_reprocess(args: argparse.Namespace) -> int:
    from pipeline.commands.reprocess import reprocess  # pandas: see _cmd_ddl

    config = _config(args)
    summary = _run_async(reprocess(config, args.start, args.end or args.start, force=args.force, feeds=args.feeds))
    print(redact(summary.describe()))
    return 1 if summary.failed else 0


def _config(args: argparse.Namespace) -> PipelineConfig:
    """The ``--config`` file with its ``--set`` overrides."""
    from pipeline.config import load_config

    return load_config(args.config, args.overrides)


def _print_result(result: RunResult, out: TextIO) -> None:
    """The run summary, redacted as stderr is: a lake root or report path may hold a secret's value."""
    verb = "would write" if result.dry_run else "wrote"
    lines = [
        f"{verb} {result.rows} rows from {result.batches} pages for {result.trend_date} "
        f"({result.feed.label}) in {result.wall_seconds:.2f}s"
    ]
    for other in result.feeds:
        if other.feed != result.feed and other.ok:
            lines.append(f"{verb} {other.rows} rows from {other.batches} pages ({other.feed.label})")
    if result.dropped:
        lines.append("dropped: " + ", ".join(f"{reason}: {count}" for reason, count in result.dropped.items()))
    width = max([18, *map(len, result.outputs)])  # one column, after the longest name (`cleaned (person/day)`)
    lines += [f"  {kind:<{width}} {location}" for kind, location in result.outputs.items()]
    out.write(redact("\n".join(lines)) + "\n")


def _report_error(exc: BaseException, verbose: bool, prefix: str = "error") -> None:
    if verbose:
        import traceback

        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    outcome = exc.outcome if isinstance(exc, PipelineError) else None
    if outcome:
        message = f"{message}; {outcome}"
    print(f"{prefix}: {redact(message)}", file=sys.stderr)
    if not verbose and not isinstance(exc, PipelineError):
        print("(run again with -v for the traceback)", file=sys.stderr)


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("pipeline", "stages"):
        logging.getLogger(name).setLevel(level)
