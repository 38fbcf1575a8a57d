"""The command line in a fresh interpreter, and the shape of what a CLI run printed."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Variables a developer's shell may hold that would change what the CLI does.
ENV_PREFIXES = ("TMDB_", "AWS_", "S3_")


@dataclasses.dataclass(frozen=True)
class CliResult:
    """What ``pipeline.cli.main`` returned and printed (the shape of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``TMDB_``/``AWS_``/``S3_`` variable, then ``env``."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)} | dict(env or {})


def run_python(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a fresh interpreter with :func:`clean_env`; output captured as text."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_subprocess(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline *args`` in a fresh interpreter, for tests where the process itself matters.

    Prefer the in-process ``run_cli`` fixture; use this where the interpreter, ``__main__``, the exit
    status, what a fresh process imports or a ``PYTHONPATH`` plugin is what the test is about.
    """
    return run_python("-m", "pipeline", *args, env=env, cwd=cwd, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """The lines the CLI printed as its error (log lines have a timestamp first)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]
