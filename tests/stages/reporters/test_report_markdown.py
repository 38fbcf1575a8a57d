"""The two Markdown reports on the bundled sample: golden files, escaping, the chart, stability."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.datalake import Layout, schema
from pipeline.stage import Feed, RunResult
from stages.reporters import report_model as rm
from stages.reporters.github_summary import ENV_VAR
from tests.support.report_support import (
    DAY1,
    DAY2,
    GOLDEN,
    check_golden,
    normalise,
    run_day,
    split_row,
    tables,
)
from tests.support.sample import SAMPLE

LAKE = {"type": "local", "options": {"root": "lake"}}
MARKDOWN = {"type": "markdown", "options": {"path": "LATEST_UPDATE.md"}}
# Every title of the day in one table, so the golden file covers every hostile sample title.
FULL = {"type": "markdown", "options": {"path": "FULL_LIST.md", "top": 100}}
SUMMARY = {"type": "github-summary"}


@dataclass
class SampleRun:
    """The reports of the second sample day, after the first."""

    report: str
    summary: str
    full: str
    result: RunResult
    folder: Path
    """Where the lake of the two runs is (its ``lake`` folder), for a test that runs again on it."""
    titles: list[str]


def lake_titles(day: dt.date) -> list[str]:
    """Every title of ``day`` as the local lake under the current folder holds it."""
    data = Path("lake", Layout().key("cleaned", day, Feed())).read_bytes()
    return [str(t) for t in schema.read_csv_bytes(data)["title"]]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """Replay both sample days into a local lake at ``lake`` (relative, so the report is path-independent).

    Once for the module: every test only reads what the two runs wrote (each run draws the report's chart).
    """
    folder = tmp_path_factory.mktemp("sample-run")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)
        env.delenv(ENV_VAR, raising=False)

        async def both_days() -> RunResult:
            await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [MARKDOWN, SUMMARY])
            env.setenv(ENV_VAR, str(folder / "step-summary.md"))
            return await run_day(DAY2, SAMPLE / DAY2.isoformat(), LAKE, [MARKDOWN, FULL, SUMMARY])

        result = asyncio.run(both_days())
        return SampleRun(
            report=(folder / "LATEST_UPDATE.md").read_text(encoding="utf-8"),
            summary=(folder / "step-summary.md").read_text(encoding="utf-8"),
            full=(folder / "FULL_LIST.md").read_text(encoding="utf-8"),
            result=result,
            titles=lake_titles(DAY2),
            folder=folder,
        )


def test_report_matches_its_golden_file(sample_run: SampleRun) -> None:
    check_golden("LATEST_UPDATE.md", sample_run.report)


def test_summary_matches_its_golden_file(sample_run: SampleRun) -> None:
    check_golden("github_summary.md", sample_run.summary)


def test_full_list_with_every_hostile_title_matches_its_golden_file(sample_run: SampleRun) -> None:
    check_golden("full_list.md", sample_run.full)
    rows = tables(sample_run.full)[0][1:]
    assert len(rows) == sample_run.result.rows == len(sample_run.titles)
    expected = [rm.escape_markdown(t) or rm.NO_VALUE for t in sample_run.titles]
    # a title that shares its name with another of the window is told apart by year: "The Velvet Paper (2010)"
    pairs = list(zip(rows, expected, strict=True))
    assert all(row[1] == e or re.fullmatch(re.escape(e) + r" \(\d{4}\)", row[1]) for row, e in pairs)
    assert sum(row[1] != e for row, e in zip(rows, expected, strict=True)) == 8  # four names, two titles each


def test_the_sample_shows_every_kind_of_movement(sample_run: SampleRun) -> None:
    top, new, climbers, dropped = tables(sample_run.report)
    movements = {row[top[0].index("Movement")] for row in top[1:]}
    assert "new" in movements
    assert any(m.startswith("▲") for m in movements) and any(m.startswith("▼") for m in movements)
    assert any(row[-1] == "not in the list" for row in new[1:])  # new to the list
    assert any(row[-1].isdigit() and int(row[-1]) > 10 for row in new[1:])  # climbed in from below
    assert len(climbers) > 1
    assert any(row[-1] == "not in the list" for row in dropped[1:])  # left the list
    assert any(row[-1].isdigit() for row in dropped[1:])  # fell below the top 10


def test_header_names_the_run(sample_run: SampleRun) -> None:
    head = sample_run.report.split("## Top", 1)[0]
    assert head.startswith("# TMDB trending movies, today: 2026-11-25\n")
    assert re.search(r"^- \*\*Run:\*\* \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$", head, re.M)
    assert "- **Feed:** trending movies, today" in head
    assert f"- **Rows:** {sample_run.result.rows}" in head
    assert "- **Lake:** `lake`" in head
    assert sample_run.report.rstrip().endswith(f"_{rm.ATTRIBUTION}_")
    assert rm.ATTRIBUTION in sample_run.summary


@pytest.mark.parametrize("which", ["report", "summary", "full"])
def test_every_table_row_has_the_header_column_count(sample_run: SampleRun, which: str) -> None:
    found = tables(getattr(sample_run, which))
    assert found, "no tables parsed"
    for table in found:
        width = len(table[0])
        assert [len(row) for row in table] == [width] * len(table), table


@pytest.mark.parametrize("which", ["report", "summary", "full"])
def test_nothing_from_a_title_becomes_live(sample_run: SampleRun, which: str) -> None:
    text = getattr(sample_run, which)
    # The chart and the lake's code span are ours; everything else must hold no live syntax.
    prose = re.sub(r"\n!\[[^\]\n]*\]\([\w.]+\.svg\)\n", "\n", text).replace(rm.code_span("lake"), "")
    for char in "<>[]!`":
        unescaped = [m.start() for m in re.finditer(re.escape(char), prose) if not _escaped(prose, m.start())]
        assert unescaped == [], f"unescaped {char!r} at {unescaped[:3]}"
    assert "http://" not in prose and "@everyone" not in prose
    assert "\nBreak Story" not in prose  # the newline became a space
    if which == "full":
        hostile = [t for t in sample_run.titles if set(t) & set("|\n*<>[]!#`_\\@")]
        for char in "|\n<[!@*_`\\":  # the sample really carries each kind of hostile text
            assert any(char in t for t in hostile), char
        assert all(rm.escape_markdown(t) in prose for t in hostile)


def _escaped(text: str, index: int) -> bool:
    backslashes = len(text[:index]) - len(text[:index].rstrip("\\"))
    return backslashes % 2 == 1


async def test_same_day_and_data_give_the_same_report_but_the_run_time(
    sample_run: SampleRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sample_run.folder)
    await run_day(DAY2, SAMPLE / DAY2.isoformat(), LAKE, [MARKDOWN])
    again = Path("LATEST_UPDATE.md").read_text(encoding="utf-8")
    first, second = sample_run.report.splitlines(), again.splitlines()
    assert len(first) == len(second)
    differing = [a for a, b in zip(first, second, strict=True) if a != b]
    assert all(line.startswith("- **Run:** ") for line in differing)
    assert normalise(again) == normalise(sample_run.report)


async def test_summary_is_appended_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "summary.md"
    target.write_text("## An earlier step\n", encoding="utf-8")
    monkeypatch.setenv(ENV_VAR, str(target))
    result = await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [SUMMARY])
    text = target.read_text(encoding="utf-8")
    assert text.startswith("## An earlier step\n### TMDB trending movies, today: 2026-11-24\n")
    assert "This is the first day in the lake" in text
    assert result.outputs["report:github-summary"] == str(target)
    counters = tables(text)[0]
    assert counters[0] == ["Pages", "Requests", "Retries", "Wall time"]
    assert counters[1][:3] == ["3", "0", "0"]


async def test_summary_does_nothing_outside_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    caplog.set_level(logging.DEBUG, logger="stages.reporters.github_summary")
    result = await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [SUMMARY])
    assert "report:github-summary" not in result.outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "stages.reporters.github_summary"] == [
        (logging.DEBUG, f"${ENV_VAR} is not set: no job summary to write")
    ]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Pipes | Between", "Pipes \\| Between"),
        ("Line\nBreak\r\nStory", "Line Break Story"),
        ("**Bold** _it_", "\\*\\*Bold\\*\\* \\_it\\_"),
        ("<b>x</b>", "\\<b\\>x\\</b\\>"),
        ("[a](http://e.x) ![i](y)", "\\[a\\](http:\u200b//e.x) \\!\\[i\\](y)"),
        ("# Heading", "\\# Heading"),
        ("Back\\slash `code`", "Back\\\\slash \\`code\\`"),
        ("@everyone hi", "@\u200beveryone hi"),
        ("visit WWW.evil.example", "visit WWW\u200b.evil.example"),
        ("tab\there\u202eevil", "tab here evil"),
        ("Amélie — 東京物語", "Amélie — 東京物語"),
    ],
)
def test_escape_markdown(title: str, expected: str) -> None:
    assert rm.escape_markdown(title) == expected


@pytest.mark.parametrize(
    ("line", "cells"),
    [
        ("| a | b |", ["a", "b"]),
        ("| a \\| b | c |", ["a \\| b", "c"]),
        ("| a \\\\| b |", ["a \\\\", "b"]),
    ],
)
def test_the_row_parser_splits_on_unescaped_pipes_only(line: str, cells: list[str]) -> None:
    assert split_row(line) == cells


def test_lake_location_never_shows_credentials() -> None:
    assert rm.safe_location("s3://AKIAX:secret@host/bucket") == "s3://host/bucket"
    assert rm.code_span("a`b") == "``a`b``"


def test_readme_excerpt_is_the_real_demo_report() -> None:
    readme = (Path(__file__).resolve().parents[3] / "docs" / "stages.md").read_text(encoding="utf-8")
    part = readme.split("<!-- section: report -->", 1)[1].split("<!-- /section: report -->", 1)[0]
    excerpt = re.search(r"```markdown\n(.*?)```\n", part, re.S)
    assert excerpt is not None
    golden = (GOLDEN / "LATEST_UPDATE.md").read_text(encoding="utf-8")
    assert golden.startswith(normalise(excerpt.group(1)))
