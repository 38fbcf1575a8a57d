"""The ``json`` reporter: its output validates against the schema documented in docs/stages.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline import trends
from stages.reporters import json_report
from tests.support.report_schema import SCHEMAS, validate
from tests.support.report_support import DAY1, DAY2, GOLDEN, normalise, run_day, section, split_row
from tests.support.sample import SAMPLE

LAKE = {"type": "local", "options": {"root": "lake"}}


def test_the_readme_documents_every_field_the_code_writes() -> None:
    assert list(SCHEMAS["top level"]) == list(json_report.FIELDS)
    assert list(SCHEMAS["entries"]) == list(json_report.ENTRY_FIELDS)
    assert list(SCHEMAS["dropped"]) == list(json_report.DROPPED_FIELDS)
    assert list(SCHEMAS["sections"]) == list(json_report.SECTION_FIELDS)
    assert list(SCHEMAS["people"]) == list(json_report.PERSON_FIELDS)
    assert list(SCHEMAS["dropped people"]) == list(json_report.DROPPED_PERSON_FIELDS)
    assert list(SCHEMAS["trend"]) == list(trends.TREND_FIELDS)
    assert list(SCHEMAS["trend titles"]) == list(trends.TITLE_FIELDS)
    assert list(SCHEMAS["trend people"]) == list(trends.PERSON_FIELDS)
    assert all(SCHEMAS.values())


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path`` so the lake is ``lake``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_file_output_validates_against_the_documented_schema(in_tmp: Path) -> None:
    reporter = {"type": "json", "options": {"path": "out/report.json"}}
    await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [reporter])
    first = json.loads((in_tmp / "out" / "report.json").read_text(encoding="utf-8"))
    validate(first, "top level")
    assert first["compared_with"] is None and first["dropped"] == []

    result = await run_day(DAY2, SAMPLE / DAY2.isoformat(), LAKE, [reporter])
    document = json.loads((in_tmp / "out" / "report.json").read_text(encoding="utf-8"))
    validate(document, "top level")
    assert result.outputs["report:json"] == "out/report.json"
    assert document["compared_with"] == "2026-11-24"
    assert document["total"] == result.rows == 57
    assert document["top_n"] == len(document["top"]) == 10
    assert document["run"]["run_id"] == result.run_id
    assert {e["movement"] for e in document["top"]} >= {"up", "down", "new"}
    assert document["new_in_top"] and document["climbers"] and document["dropped"]


async def test_titles_are_raw_and_agree_with_the_markdown_report(in_tmp: Path) -> None:
    reporters = [{"type": "json", "options": {"path": "r.json", "top": 100}}]
    await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [])
    await run_day(DAY2, SAMPLE / DAY2.isoformat(), LAKE, reporters)
    document = json.loads((in_tmp / "r.json").read_text(encoding="utf-8"))
    titles = [e["title"] for e in document["top"]]
    assert "Line\nBreak Story" in titles and "<script>alert('x')</script>" in titles
    # the golden Markdown report shows the same top 10, rank for rank
    golden = normalise((GOLDEN / "LATEST_UPDATE.md").read_text(encoding="utf-8"))
    ranks = [split_row(line)[0] for line in section(golden, "## Top 10").splitlines() if re.match(r"\| \d", line)]
    assert ranks == [str(e["rank"]) for e in document["top"][:10]]


async def test_stdout_is_the_default(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [{"type": "json", "options": {"top": 3}}])
    document = json.loads(capsys.readouterr().out)
    validate(document, "top level")
    assert [e["rank"] for e in document["top"]] == [1, 2, 3]
    assert result.outputs["report:json"] == "stdout"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["lake"]
    assert result.wrote_to_stdout


async def test_a_report_file_named_stdout_is_a_file_not_standard_output(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await run_day(DAY1, SAMPLE / DAY1.isoformat(), LAKE, [{"type": "json", "options": {"path": "stdout"}}])
    assert capsys.readouterr().out == ""
    assert result.outputs["report:json"] == "stdout"
    assert not result.wrote_to_stdout
    validate(json.loads((in_tmp / "stdout").read_text(encoding="utf-8")), "top level")
