"""The command line: exit codes, messages, outputs.

Most cases call ``pipeline.cli.main`` in-process (the ``run_cli`` fixture); a few keep a real
``python -m pipeline`` subprocess, where the interpreter, ``__main__`` and the exit status matter.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from tests.support.cli import CliRunner, run_subprocess

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample"


def write_sample_config(path: Path, lake: Path, reporter: str = "") -> Path:
    path.write_text(
        f"extractor: {{type: replay, options: {{path: '{SAMPLE / '2026-11-25'}'}}}}\n"
        "transformer: {type: standardize}\n"
        f"loader: {{type: local, options: {{root: '{lake}'}}}}\n" + reporter,
        encoding="utf-8",
    )
    return path


def test_run_with_the_demo_config_writes_the_lake_and_says_where(tmp_path: Path, run_cli: CliRunner) -> None:
    # In-process: the scheduler's smoke step (test_workflows) runs the demo config in a real `python -m pipeline`.
    done = run_cli("run", "--config", "config/demo.yml", "--date", "2026-11-25", env={"LAKE_ROOT": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    csv = tmp_path / "cleaned_data/2026/11/2026-11-25_movies.csv"
    assert csv.exists() and (tmp_path / "LATEST_UPDATE.md").exists()
    assert "wrote 20 rows from 1 pages for 2026-11-25" in done.stdout
    assert str(csv) in done.stdout
    assert "report:html" in done.stdout


def test_the_process_entry_runs_its_start_up_without_the_collector_and_the_run_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m pipeline`` (``main()`` without argv) pauses the collector for the start-up and resumes it at the
    event loop's first turn, before the run's work; ``main(argv)``, a program's call, leaves it alone."""
    from pipeline import cli

    resumed: list[bool] = []  # whether the collector ran when the loop first turned
    resume = cli._resume_gc
    monkeypatch.setattr(cli, "_resume_gc", lambda: (resumed.append(gc.isenabled()), resume())[1])
    argv = ["run", "--config", str(write_sample_config(tmp_path / "c.yml", tmp_path / "lake")), "--date", "2026-11-25"]
    try:
        assert cli.main([*argv, "-q"]) == 0 and resumed == [True] and gc.isenabled()
        monkeypatch.setattr(sys, "argv", ["pipeline", *argv, "--force"])
        assert cli.main() == 0, capsys.readouterr().err
        assert resumed == [True, False] and gc.isenabled(), "paused during the start-up, running again after it"
    finally:
        gc.enable()


def test_dry_run_writes_nothing_and_prints_what_it_would_write(tmp_path: Path, run_cli: CliRunner) -> None:
    lake = tmp_path / "lake"
    done = run_cli(
        "run", "--config", str(write_sample_config(tmp_path / "c.yml", lake)), "--date", "2026-11-25", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert not lake.exists()
    assert "would write 57 rows" in done.stdout
    assert str(lake / "cleaned_data/2026/11/2026-11-25_movies.csv") in done.stdout


def test_check_resolves_every_stage_without_running(tmp_path: Path, run_cli: CliRunner) -> None:
    lake = tmp_path / "lake"
    done = run_cli("check", "--config", str(write_sample_config(tmp_path / "c.yml", lake)))
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout and "stages.extractors.replay.ReplayExtractor" in done.stdout
    assert not lake.exists()


def test_stages_lists_every_kind_with_its_distribution(run_cli: CliRunner) -> None:
    done = run_cli("stages")
    assert done.returncode == 0, done.stderr
    for line in ("extractors (pipeline.extractors):", "replay", "standardize", "local", "markdown", "row-count"):
        assert line in done.stdout
    assert "[pipeline-plugin-demo 0.1.0]" in done.stdout


def test_unknown_stage_exits_2_listing_the_registered_names(tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_sample_config(tmp_path / "c.yml", tmp_path / "lake", "reporter: {type: pdf}\n")
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown reporter 'pdf'; registered reporters: ")
    assert "markdown" in done.stderr and "Traceback" not in done.stderr


def test_missing_environment_variable_exits_2_naming_it(tmp_path: Path, run_cli: CliRunner) -> None:
    config = tmp_path / "c.yml"
    config.write_text(write_sample_config(config, tmp_path).read_text().replace(str(tmp_path), "${NO_SUCH_LAKE_VAR}"))
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 2
    assert "loader.options.root: environment variable NO_SUCH_LAKE_VAR is not set" in done.stderr


def test_a_third_party_plugin_reporter_runs_by_its_entry_point_name(tmp_path: Path, run_cli: CliRunner) -> None:
    out = tmp_path / "count.txt"
    config = write_sample_config(
        tmp_path / "c.yml", tmp_path / "lake", f"reporter: {{type: row-count, options: {{path: '{out}'}}}}\n"
    )
    done = run_cli("run", "--config", str(config), "--date", "2026-11-25")
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "2026-11-25 57\n"
    assert "report:row-count" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--date", "25/11/2026"], "expected a date as YYYY-MM-DD"),
        (["run", "--no-such-flag"], "unrecognized arguments"),
        (["run", "--config", "nope.yml"], "config file not found: nope.yml"),
        (["run", "--config", "config/demo.yml", "--set", "oops"], "expected KEY=VALUE"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, run_cli: CliRunner) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_run_exits_1_with_one_line_and_a_traceback_only_with_verbose(tmp_path: Path) -> None:
    config = write_sample_config(tmp_path / "c.yml", tmp_path / "lake")
    config.write_text(config.read_text().replace(str(SAMPLE / "2026-11-25"), str(tmp_path / "missing")))
    quiet = run_subprocess("run", "--config", str(config))
    assert quiet.returncode == 1
    assert "error: extractor 'replay': replay path not found" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = run_subprocess("run", "--config", str(config), "-v")
    assert loud.returncode == 1 and "Traceback" in loud.stderr


def test_invalid_option_exits_2_naming_the_key(tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_sample_config(tmp_path / "c.yml", tmp_path / "lake")
    done = run_cli("run", "--config", str(config), "--set", "transformer.options.page_size=0")
    assert done.returncode == 2
    assert "error: transformer.options.page_size: must be at least 1, got 0" in done.stderr


def test_json_reporter_on_stdout_keeps_stdout_parseable(tmp_path: Path, run_cli: CliRunner) -> None:
    import json

    config = write_sample_config(
        tmp_path / "c.yml", tmp_path / "lake", "reporter: {type: json, options: {path: '-'}}\n"
    )
    done = run_cli("run", "--config", str(config), "--date", "2026-11-25", "-q")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["run"]["rows"] == 57
    assert "wrote 57 rows" in done.stderr


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("runn", "error: unknown command 'runn' (did you mean run?)"),
        ("histroy", "error: unknown command 'histroy' (did you mean history?)"),
        ("deploy", "error: unknown command 'deploy' (commands: run, check, stages, ddl, history, repair, reprocess)"),
    ],
)
def test_an_unknown_command_exits_2_guessing_the_command(word: str, message: str, run_cli: CliRunner) -> None:
    done = run_cli(word, "--config", "config/demo.yml")
    assert done.returncode == 2
    assert done.stderr.strip() == message


def test_options_without_a_command_still_mean_run(tmp_path: Path, run_cli: CliRunner) -> None:
    lake = tmp_path / "lake"
    done = run_cli("--config", str(write_sample_config(tmp_path / "c.yml", lake)), "--date", "2026-11-25", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would write 57 rows" in done.stdout


def test_version_prints_the_installed_distribution_version(run_cli: CliRunner) -> None:
    from importlib.metadata import version

    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout == f"pipeline {version('tmdb-trending-pipeline')}\n"


@pytest.mark.parametrize("key", ["reporter[0].options.top", "reporter.0.options.top"])
def test_set_takes_the_key_path_errors_print(key: str, tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_sample_config(
        tmp_path / "c.yml", tmp_path / "lake", "reporter: [{type: json, options: {path: '-'}}]\n"
    )
    args = ("check", "--config", str(config))
    bad = run_cli(*args, "--set", f"{key}=500")
    assert bad.returncode == 2
    assert "reporter[0].options.top: must be at most 100, got 500" in bad.stdout
    assert run_cli(*args, "--set", f"{key}=20").returncode == 0
