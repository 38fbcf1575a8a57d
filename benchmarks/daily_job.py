"""Replay the daily scheduler job on a fresh clone and print each phase's wall time. Asserts nothing.

Usage::

    python3 benchmarks/daily_job.py                 # warm uv cache (the default one, as CI restores it)
    python3 benchmarks/daily_job.py --cold          # an empty UV_CACHE_DIR
    python3 benchmarks/daily_job.py --skip-tests    # everything but ruff, mypy and pytest

What scheduler.yml does, in order, with the network swapped for the local TMDB stand-in:

1. clone: a fresh ``git clone`` of this repository's HEAD (uncommitted changes are not in it);
2. test job, install: ``make`` sets up ``.venv`` from ``requirements/test.lock``;
3. test job, tests: ``make test`` (ruff, mypy, pytest);
4. etl job, install: a separate venv from ``requirements/runtime.lock`` (``--require-hashes``),
   then the project with ``--no-deps``, as the workflow's "Install the project" step;
5. etl job, run: ``python -m pipeline run --config config/pipeline.yml`` for 20 pages against the
   stand-in (``tests/support/tmdb_standin.py``, 80 ms latency) into the clone's local lake.

uv must be on PATH, or in ``.tools/`` after any ``make`` here (the job gets it from setup-uv).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from standin_process import standin_process

ROOT = Path(__file__).resolve().parent.parent
PAGES = 20


def _uv() -> str:
    found = shutil.which("uv") or (str(ROOT / ".tools" / "bin" / "uv") if (ROOT / ".tools/bin/uv").is_file() else None)
    if found is None:
        raise SystemExit("uv is neither on PATH nor in .tools/: run `make run` once (it bootstraps uv)")
    return found


class Phases:
    """Runs commands, timing each named phase."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.times: list[tuple[str, float]] = []

    def run(self, name: str, *commands: Sequence[str | Path], extra_env: dict[str, str] | None = None) -> None:
        """Run ``commands`` one after another as one phase; stop the benchmark on a failure."""
        start = time.perf_counter()
        for argv in commands:
            done = subprocess.run(
                [str(a) for a in argv],
                cwd=self.cwd,
                env=self.env | (extra_env or {}),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
                raise SystemExit(f"{name}: {' '.join(map(str, argv))} failed ({done.returncode})")
        self.times.append((name, time.perf_counter() - start))
        print(f"{name:<32} {self.times[-1][1]:6.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Clone, install, test, run; print one line per phase and the total."""
    parser = argparse.ArgumentParser(description="the daily scheduler job, timed phase by phase")
    parser.add_argument("--cold", action="store_true", help="start from an empty uv cache")
    parser.add_argument("--skip-tests", action="store_true", help="skip ruff, mypy and pytest")
    parser.add_argument("--keep", action="store_true", help="keep the clone and print where it is")
    args = parser.parse_args(argv)

    uv = _uv()
    work = Path(tempfile.mkdtemp(prefix="daily-job-"))
    clone = work / "clone"
    env = dict(os.environ)
    env["PATH"] = f"{Path(uv).parent}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    if args.cold:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
    print(f"uv: {uv} ({'cold, empty cache' if args.cold else 'warm cache'}); clone: {clone}", flush=True)
    phases = Phases(work, env)
    try:
        phases.run("clone", ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)])
        phases.cwd = clone
        phases.run("test job: install (test.lock)", ["make", "--quiet", ".venv/.deps-test"])
        if not args.skip_tests:
            phases.run("test job: make test", ["make", "--quiet", "test"])
        etl_venv = clone / ".etl-venv"
        etl_python = etl_venv / "bin" / "python"
        phases.run(
            "etl job: install (runtime.lock)",
            [uv, "venv", "--quiet", "--python", sys.executable, etl_venv],
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                etl_python,
                "--require-hashes",
                "-r",
                "requirements/runtime.lock",
            ],
            [uv, "pip", "install", "--quiet", "--python", etl_python, "--no-deps", "."],
        )
        standin = {"latency": 0.08, "total_pages": 500}
        with standin_process(standin, python=clone / ".venv" / "bin" / "python", cwd=clone) as base_url:
            today = dt.datetime.now(dt.UTC).date().isoformat()
            phases.run(
                f"etl job: run ({PAGES} pages)",
                [
                    etl_python,
                    "-m",
                    "pipeline",
                    "run",
                    "--config",
                    "config/pipeline.yml",
                    "--date",
                    today,
                    "-q",
                    "--set",
                    f"extractor.options.pages={PAGES}",
                ],
                extra_env={"TMDB_BASE_URL": base_url, "TMDB_ACCESS_TOKEN": "benchmark-token"},
            )
        rows = sum(
            len(list(csv.reader(p.open(encoding="utf-8")))) - 1 for p in clone.glob("lake/cleaned_data/**/*.csv")
        )
        print(f"{'total':<32} {sum(t for _, t in phases.times):6.1f} s   ({rows} rows in the clone's lake)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
