"""A third-party loader (``tests/plugin_pkg``, about 50 lines) runs through the CLI and feeds the built-in report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.registry import describe
from tests.support.sample import replay_config, write_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests/data/sample"


def plugin_config(tmp_path: Path, day: str, pages: Path | None = None) -> Path:
    """A config file: replay ``day`` (or ``pages``) into the plugin's ``jsonl`` loader, with a Markdown report."""
    loader = {"type": "jsonl", "options": {"folder": str(tmp_path / "days")}}
    # no rank chart (~0.15 s of matplotlib a report): the test is about what the report reads back
    report = {"path": str(tmp_path / "LATEST_UPDATE.md"), "top": 5, "chart": False}
    reporters = [{"type": "markdown", "options": report}]
    return write_config(tmp_path / f"{day}.yml", replay_config(loader, pages or SAMPLE / day, reporters))


def test_the_plugin_loader_is_registered_from_its_own_distribution() -> None:
    [info] = [i for i in describe() if i.kind == "loader" and i.name == "jsonl"]
    assert (info.target, info.distribution) == ("pipeline_plugin_loader:JsonLinesLoader", "pipeline-plugin-demo 0.1.0")


def test_a_plugin_loader_commits_days_that_the_built_in_report_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for day in ("2026-11-24", "2026-11-25"):
        assert main(["run", "--config", str(plugin_config(tmp_path, day)), "--date", day, "-q"]) == 0
    days = tmp_path / "days"
    assert sorted(p.name for p in days.iterdir()) == ["2026-11-24_movies.jsonl", "2026-11-25_movies.jsonl"]
    rows = [json.loads(line) for line in (days / "2026-11-25_movies.jsonl").read_text().splitlines()]
    assert len(rows) == 57 and rows[0]["rank"] == 1
    report = (tmp_path / "LATEST_UPDATE.md").read_text(encoding="utf-8")
    assert "2026-11-25" in report and "2026-11-24" in report, "movement against the day the plugin read back"
    assert f"- **Lake:** `{days}`" in report


def test_a_failed_run_leaves_the_plugins_previous_day_and_no_temp_file(tmp_path: Path) -> None:
    assert main(["run", "--config", str(plugin_config(tmp_path, "2026-11-25")), "--date", "2026-11-25", "-q"]) == 0
    before = (tmp_path / "days" / "2026-11-25_movies.jsonl").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "page-001.json").write_text("{not json", encoding="utf-8")
    bad = plugin_config(tmp_path, "2026-11-25", broken)
    assert main(["run", "--config", str(bad), "--date", "2026-11-25", "-q"]) == 1
    assert sorted(p.name for p in (tmp_path / "days").iterdir()) == ["2026-11-25_movies.jsonl"]
    assert (tmp_path / "days" / "2026-11-25_movies.jsonl").read_bytes() == before


def test_the_worked_example_in_the_docs_is_the_plugin_as_it_is() -> None:
    page = (ROOT / "docs/writing-a-stage.md").read_text(encoding="utf-8")
    code = (ROOT / "tests/plugin_pkg/pipeline_plugin_loader.py").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in page
    assert len([line for line in code.splitlines() if line.strip() and not line.strip().startswith(('"', "#"))]) <= 60
