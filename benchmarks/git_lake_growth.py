"""How fast the git-backed lake (LAKE_STORAGE=git) grows: bytes per day at 20 pages, and per year. Asserts nothing.

Usage::

    .venv/bin/python benchmarks/git_lake_growth.py

Runs ``config/git.yml`` for yesterday and today (the only days the live extractor accepts) against the
local TMDB stand-in (20 pages, with churn so the two days differ as real days do), publishes each day with
``tools/publish_lake.sh`` to a bare repository, and prints the files each day adds and what the bare
repository grows by once packed (``git gc``): what a clone downloads.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from standin_process import standin_process

ROOT = Path(__file__).resolve().parent.parent
PAGES = 20


def git(cwd: Path, *args: str) -> str:
    """git with a throwaway identity, no user config."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    argv = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "init.defaultBranch=main"]
    return subprocess.run([*argv, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def packed_bytes(bare: Path) -> int:
    """The bare repository's size once packed."""
    git(bare, "gc", "--quiet")
    stats = dict(line.split(": ") for line in git(bare, "count-objects", "-v").splitlines())
    return (int(stats["size-pack"]) + int(stats["size"])) * 1024


def tree_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``, ``.git`` excluded."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)


def main() -> int:
    """Two days published; one line per day, then the yearly estimate."""
    with tempfile.TemporaryDirectory(prefix="git-lake-") as scratch:
        work = Path(scratch)
        bare, main_clone = work / "origin.git", work / "main"
        git(work, "init", "--quiet", "--bare", str(bare))
        git(work, "clone", "--quiet", str(bare), str(main_clone))
        today = dt.datetime.now(dt.UTC).date()
        env = {**os.environ, "TMDB_ACCESS_TOKEN": "benchmark-token", "GIT_CONFIG_GLOBAL": os.devnull}
        env.pop("GITHUB_STEP_SUMMARY", None)
        before, files_before = packed_bytes(bare), 0
        with standin_process({"total_pages": 500, "churn": 3}) as base_url:
            for day in (today - dt.timedelta(days=1), today):
                data = work / f"job-{day}"
                job = {**env, "DATA_DIR": str(data), "TMDB_BASE_URL": base_url}
                publish = ["bash", str(ROOT / "tools" / "publish_lake.sh")]
                subprocess.run([*publish, "pull", str(data)], cwd=main_clone, env=job, check=True, capture_output=True)
                run = [sys.executable, "-m", "pipeline", "run", "-q", "--config", "config/git.yml"]
                run += ["--date", day.isoformat(), "--set", f"extractor.options.pages={PAGES}"]
                subprocess.run(run, cwd=ROOT, env=job, check=True, capture_output=True)
                subprocess.run(
                    [*publish, "push", str(data), day.isoformat()],
                    cwd=main_clone,
                    env=job,
                    check=True,
                    capture_output=True,
                )
                after, files = packed_bytes(bare), tree_bytes(data)
                added, grown = (files - files_before) / 1024, (after - before) / 1024
                print(f"{day}: files +{added:.0f} KiB, packed repository +{grown:.0f} KiB")
                before, files_before = after, files
        per_day = after / 2
        print(f"per day (packed, mean of 2): {per_day / 1024:.0f} KiB; per year: {per_day * 365 / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
