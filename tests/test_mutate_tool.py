"""tools/mutate.py (``make mutation``) refuses, in one line, a path that is not a module of the project.

A test path written before ``--tests`` used to be mutated as if it were a module, and the run ended in a
``ChildProcessError`` traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mutate_tool(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """tools/mutate.py as a module (its dataclasses want to find it in ``sys.modules``), from the project's root."""
    monkeypatch.chdir(ROOT)
    spec = importlib.util.spec_from_file_location("mutate_tool", ROOT / "tools" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutate_tool", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "argv",
    [
        ["tests/pipeline/test_cli.py"],
        ["--tests", "tests/pipeline/test_redact.py", "tests/pipeline/test_cli.py", "pipeline/redact.py"],
        ["pipeline/no_such_module.py"],
        ["README.md"],
        ["/etc/hostname"],
    ],
)
def test_a_path_that_is_no_module_of_the_project_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = mutate_tool(monkeypatch)
    with pytest.raises(SystemExit) as exited:
        tool.main(argv)
    assert exited.value.code == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert "not a module of pipeline/ or stages/ (test paths go after --tests)" in line


def test_a_module_of_the_project_is_taken(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert mutate_tool(monkeypatch).main(["--list", "pipeline/redact.py"]) == 0
    assert capsys.readouterr().out.startswith("pipeline/redact.py:")


def test_a_module_no_test_runs_in_process_ends_with_every_mutant_uncovered(monkeypatch: pytest.MonkeyPatch) -> None:
    # pipeline/quick_exit.py runs only in the subprocesses its tests start, which coverage does not see: every
    # mutant is uncovered, and the tool used to end with a ChildProcessError, waiting for children it never started.
    tool = mutate_tool(monkeypatch)
    monkeypatch.setattr(tool, "baseline", lambda module, tests, timeout, work: ({}, {}, 0.0))
    monkeypatch.setattr(tool, "_report", lambda *args, **kwargs: None)
    mutants = tool.run_module("pipeline/quick_exit.py", ["tests/pipeline/test_quick_exit.py"], 2, 10.0, 60.0)
    assert mutants and {mutant.status for mutant in mutants} == {"uncovered"}
