"""The wrong Python fails at once with one line; ``check`` imports the stages' dependencies; small CLI fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli
from pipeline.commands import history
from tests.support.cli import CliRunner, run_subprocess

NOT_INSTALLED = (
    "error: the project's dependencies are not installed in this Python (No module named {name} (hidden by a "
    "test shim)); run `make run` or use `.venv/bin/python`"
)


def shim(tmp_path: Path, name: str) -> dict[str, str]:
    """A ``PYTHONPATH`` that hides the ``name`` package, as on a Python without it.

    A ``sitecustomize`` puts a finder first on ``sys.meta_path`` that refuses ``name``: both importing it and
    looking it up (``importlib.util.find_spec``, which ``require_core`` uses for pandas) fail.
    """
    folder = tmp_path / "shim"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, fullname, path=None, target=None):\n"
        f"        if fullname == {name!r}:\n"
        f"            raise ModuleNotFoundError('No module named {name} (hidden by a test shim)', name={name!r})\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Hide())\n",
        encoding="utf-8",
    )
    return {"PYTHONPATH": str(folder), "LAKE_ROOT": str(tmp_path / "lake")}


@pytest.mark.parametrize("command", ["run", "check"])
def test_without_pandas_run_and_check_fail_at_once_with_one_line(command: str, tmp_path: Path) -> None:
    done = run_subprocess(command, "--config", "config/demo.yml", env=shim(tmp_path, "pandas"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [NOT_INSTALLED.format(name="pandas")]
    assert done.stdout == "" and not (tmp_path / "lake").exists()


def test_check_names_a_stage_dependency_that_does_not_import(tmp_path: Path) -> None:
    done = run_subprocess("check", "--config", "config/demo.yml", env=shim(tmp_path, "tenacity"))
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stdout.splitlines() if " dependencies " in line and not line.startswith("✓")]
    assert len(failed) == 6  # replay, standardize, local, markdown, html and github-summary: one distribution
    assert "tenacity: ModuleNotFoundError: No module named tenacity (hidden by a test shim)" in failed[0]
    assert failed[0].endswith("run `make run` or use `.venv/bin/python`")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_dash_capital_v_works_like_version(flag: str, run_cli: CliRunner) -> None:
    done = run_cli(flag)
    assert done.returncode == 0 and done.stdout.startswith("pipeline ") and done.stderr == ""


def test_the_cli_shows_the_history_defaults_history_uses() -> None:
    assert (cli.HISTORY_DAYS, cli.HISTORY_TOP) == (history.DEFAULT_DAYS, history.DEFAULT_TOP)
    assert (cli.HISTORY_MAX_DAYS, cli.HISTORY_FORMATS) == (history.MAX_DAYS, history.FORMATS)


def test_a_changed_stage_type_names_the_old_options_that_do_not_fit(run_cli: CliRunner) -> None:
    done = run_cli("run", "--config", "config/pipeline.yml", "--set", "extractor.type=replay")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: extractor.type: --set made it 'replay', which does not take the options the section still holds "
        "(base_url, concurrency, enrich, feeds, max_attempts, pages, poster_size, rate_limit, timeout); replace the "
        "whole section instead, e.g. --set 'extractor={type: replay, options: {...}}', or clear them with "
        "--set extractor.options={} and set what 'replay' needs"
    ]


def test_the_replacements_the_hint_offers_work(tmp_path: Path, run_cli: CliRunner) -> None:
    sample = "tests/data/sample/2026-11-25"
    section = f"extractor={{type: replay, options: {{path: {sample}}}}}"
    whole = run_cli("check", "--config", "config/pipeline.yml", "--set", section)
    cleared = run_cli(
        "check", "--config", "config/pipeline.yml", "--set", "extractor.type=replay",
        "--set", "extractor.options={}", "--set", f"extractor.options.path={sample}",
    )  # fmt: skip
    for done in (whole, cleared):
        assert "✓ extractor   replay          options" in done.stdout, done.stdout


def test_a_reporter_retyped_by_index_gets_the_hint_too(run_cli: CliRunner) -> None:
    done = run_cli("check", "--config", "config/demo.yml", "--set", "reporter[0].type=github-summary")
    assert done.returncode == 2
    assert "reporter[0].type: --set made it 'github-summary', which does not take the options the section still " \
        "holds (path); replace the whole section instead, e.g. --set 'reporter[0]={type: github-summary" in done.stdout
    fits = run_cli("check", "--config", "config/demo.yml", "--set", "reporter.0.type=json")  # json takes path too
    assert fits.returncode == 0, fits.stdout
