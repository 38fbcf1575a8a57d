"""Replay the daily scheduler job on a fresh clone and print each phase's wall time. Asserts nothing.

Usage::

    python3 benchmarks/daily_job.py                 # warm uv cache (the default one, as CI restores it)
    python3 benchmarks/daily_job.py --cold          # an empty UV_CACHE_DIR
    python3 benchmarks/daily_job.py --with-suite    # also the old gate: the test job (test.lock + make test)

What scheduler.yml's one job does, in order, with the network swapped for the local TMDB stand-in:

1. clone: a fresh ``git clone`` of this repository's HEAD (uncommitted changes are not in it);
2. install: a venv from ``requirements/runtime.lock`` (``--require-hashes``; runtime deps and the
   ``notify`` extra), then the project with ``--no-deps``, as the workflow's "Install the project" step;
3. smoke check: the workflow's "Smoke check" step, run as is (``check`` of ``config/git.yml``, then the
   sample replayed into a scratch lake);
4. run: ``python -m pipeline run --config config/git.yml --skip-committed`` for 20 pages against the
   stand-in (``tests/support/tmdb_standin.py``, 80 ms latency) into the clone's ``data/lake``;
5. catch-up run: the same command again, as at 18:00 and 23:00 UTC: it finds the day committed and exits.

``--with-suite`` first times what the job used to wait for: ``make`` of ``.venv`` from
``requirements/test.lock`` and ``make test``.

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


def smoke_script() -> str:
    """The workflow's "Smoke check" step, as written in scheduler.yml."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "scheduler.yml").read_text(encoding="utf-8"))
    (step,) = [s for s in workflow["jobs"]["etl"]["steps"] if s.get("name") == "Smoke check"]
    return str(step["run"])


def main(argv: list[str] | None = None) -> int:
    """Clone, install, smoke-check, run, catch up; print one line per phase and the total."""
    parser = argparse.ArgumentParser(description="the daily scheduler job, timed phase by phase")
    parser.add_argument("--cold", action="store_true", help="start from an empty uv cache")
    parser.add_argument("--with-suite", action="store_true", help="also time the old gate: test.lock + make test")
    parser.add_argument("--keep", action="store_true", help="keep the clone and print where it is")
    args = parser.parse_args(argv)

    uv = _uv()
    smoke = smoke_script()
    work = Path(tempfile.mkdtemp(prefix="daily-job-"))
    clone = work / "clone"
    env = dict(os.environ)
    env["PATH"] = f"{Path(uv).parent}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    if args.cold:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
    print(f"uv: {uv} ({'cold, empty cache' if args.cold else 'warm cache'}); clone: {clone}", flush=True)
    phases = Phases(work, env)
    try:
        phases.run("clone", ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)])
        phases.cwd = clone
        if args.with_suite:
            phases.run("old gate: install (test.lock)", ["make", "--quiet", ".venv/.deps-test"])
            phases.run("old gate: make test", ["make", "--quiet", "test"])
        etl_venv = clone / ".etl-venv"
        etl_python = etl_venv / "bin" / "python"
        phases.run(
            "install (runtime.lock)",
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
        job_env = {"PATH": f"{etl_venv / 'bin'}{os.pathsep}{env['PATH']}", "TMDB_ACCESS_TOKEN": "benchmark-token"}
        job_env["DATA_DIR"] = str(clone / "data")
        job_env["PIPELINE_CACHE_DIR"] = str(work / "pipeline-cache")  # empty, as on a fresh runner
        phases.run(
            "smoke check",
            ["bash", "-eo", "pipefail", "-c", smoke],
            extra_env=job_env | {"CONFIG": "config/git.yml"},
        )
        standin = {"latency": 0.08, "total_pages": 500}
        with standin_process(standin, python=etl_python, cwd=clone) as base_url:
            today = dt.datetime.now(dt.UTC).date().isoformat()
            command: list[str | Path] = [etl_python, "-m", "pipeline", "run", "--config", "config/git.yml"]
            command += ["--date", today, "-q", "--skip-committed", "--set", f"extractor.options.pages={PAGES}"]
            job_env["TMDB_BASE_URL"] = base_url
            phases.run(f"run ({PAGES} pages)", command, extra_env=job_env)
            phases.run("catch-up run (skips)", command, extra_env=job_env)
        rows = sum(
            len(list(csv.reader(p.open(encoding="utf-8")))) - 1 for p in clone.glob("data/lake/cleaned_data/**/*.csv")
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
