"""Every failure after the commit says what happened to the lake; the stdout summary is redacted like stderr."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.errors import ReportError
from pipeline.runner import Stages, outcome_of, run_stages
from pipeline.stage import LakeReader, RunContext, RunResult
from tests.support.cli import CliRunner, error_lines
from tests.support.fakes import CollectingLoader, FrameTransformer, ListExtractor, RecordingReporter, batch

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample" / "2026-11-25"


class BrokenReporter(RecordingReporter):
    """Fails the way a full disk does."""

    def __init__(self, context: RunContext, *, name: str = "broken", log: list[str] | None = None) -> None:
        super().__init__(context, log=log)
        self.name = name

    async def report(self, result: RunResult, lake: LakeReader) -> dict[str, str]:
        raise OSError(28, "No space left on device")


def stages(context: RunContext, *reporters: RecordingReporter) -> Stages:
    return Stages(
        extractor=ListExtractor(context, [batch(1, [1, 2])]),
        transformer=FrameTransformer(context),
        loader=CollectingLoader(context),
        reporters=reporters,
    )


async def test_a_failing_reporter_says_the_day_was_committed(context: RunContext) -> None:
    built = stages(context, BrokenReporter(context))
    with pytest.raises(ReportError) as failed:
        await run_stages(built, context)
    assert str(failed.value) == "reporter 'broken': OSError: [Errno 28] No space left on device"
    assert failed.value.outcome == f"{context.trend_date} was committed; the report was not written"
    loader = built.loader
    assert isinstance(loader, CollectingLoader) and not loader.aborted and context.trend_date in loader.visible


async def test_one_failing_reporter_does_not_stop_the_others_and_is_named(context: RunContext) -> None:
    log: list[str] = []
    good = RecordingReporter(context, log=log)
    built = stages(context, BrokenReporter(context, name="markdown"), good, BrokenReporter(context, name="json"))
    with pytest.raises(ReportError) as failed:
        await run_stages(built, context)
    assert str(failed.value).startswith("reporter 'markdown': ")
    assert failed.value.outcome == (
        f"{context.trend_date} was committed; 2 of 3 reports ('markdown', 'json') were not written"
    )
    assert log.count("reporter.report") == 1 and len(good.seen) == 1


async def test_a_cancellation_while_reporting_says_the_day_was_committed(context: RunContext) -> None:
    reporting = asyncio.Event()

    class Hanging(RecordingReporter):
        async def report(self, result: RunResult, lake: LakeReader) -> dict[str, str]:
            reporting.set()
            await asyncio.Event().wait()
            raise AssertionError("never reached")

    built = stages(context, Hanging(context), RecordingReporter(context))
    run = asyncio.ensure_future(run_stages(built, context))
    await reporting.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await run
    assert outcome_of(cancelled.value) == (
        f"{context.trend_date} was committed; 2 of 2 reports ('record', 'record') were not written"
    )


def write_config(path: Path, root: str, report: str) -> Path:
    """Replay the sample into a local lake, with a Markdown report (no rank chart: these tests are about messages)."""
    path.write_text(
        f"extractor: {{type: replay, options: {{path: '{SAMPLE}'}}}}\n"
        "transformer: {type: standardize}\n"
        f"loader: {{type: local, options: {{root: '{root}'}}}}\n"
        f"reporter: {{type: markdown, options: {{path: '{report}', chart: false}}}}\n",
        encoding="utf-8",
    )
    return path


def test_the_cli_line_of_a_reporter_failure_ends_with_the_commit(tmp_path: Path, run_cli: CliRunner) -> None:
    (tmp_path / "report.md").mkdir()  # the report's path is a folder: the reporter fails after the commit
    config = write_config(tmp_path / "c.yml", str(tmp_path / "lake"), str(tmp_path / "report.md"))
    done = run_cli("run", "--config", str(config), "--date", "2026-11-25", "-q")
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert line.startswith("error: reporter 'markdown': ")
    assert line.endswith("; 2026-11-25 was committed; the report was not written")
    assert (tmp_path / "lake/_manifests/2026/11/2026-11-25_movies.json").exists()


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1969-12-31"])
@pytest.mark.parametrize("command", ["run", "history"])
def test_a_date_at_the_end_of_the_calendar_is_bad_input(day: str, command: str, run_cli: CliRunner) -> None:
    done = run_cli(command, "--config", "config/demo.yml", "--date", day)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: python -m pipeline {command}: argument --date: expected a date from 1970-01-01 to 9998-12-31, "
        f"got '{day}'"
    ]


def test_the_stdout_summary_is_redacted_like_stderr(tmp_path: Path, run_cli: CliRunner) -> None:
    secret = "k3y-0f-tmdb-9f8e7d6c"
    config = write_config(tmp_path / "c.yml", f"{tmp_path}/${{TMDB_API_KEY}}/lake", f"{tmp_path}/report.md")
    done = run_cli("run", "--config", str(config), "--date", "2026-11-25", env={"TMDB_API_KEY": secret})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / secret / "lake").is_dir()  # the key really is in the lake's path
    assert secret not in done.stdout and secret not in done.stderr
    assert f"{tmp_path}/***/lake/cleaned_data/2026/11/2026-11-25_movies.csv" in done.stdout
