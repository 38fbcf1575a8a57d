"""The local TMDB stand-in (``tests/support/tmdb_standin.py``) as a child process, for the benchmarks.

Standard library only: ``daily_job.py`` runs outside the project's venv and starts the stand-in with the clone's.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def standin_process(
    config: Mapping[str, Any] | None = None, *, python: str | Path = sys.executable, cwd: Path = ROOT
) -> Iterator[str]:
    """Serve the stand-in (``config``: its ``StandinConfig`` fields) on a free port; yields its base URL."""
    argv = [str(python), "-m", "tests.support.tmdb_standin", "--port", "0", "--config", json.dumps(dict(config or {}))]
    server = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{server.stdout.readline().split()[1]}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def configure(base_url: str, config: Mapping[str, Any]) -> None:
    """Replace the running stand-in's ``StandinConfig`` (its ``/_standin/config`` endpoint)."""
    request = urllib.request.Request(
        f"{base_url}/_standin/config",
        data=json.dumps(dict(config)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def standin_stats(base_url: str) -> dict[str, Any]:
    """What the stand-in saw since it was last configured (its ``/_standin/stats`` endpoint)."""
    with urllib.request.urlopen(f"{base_url}/_standin/stats", timeout=10) as response:
        return dict(json.loads(response.read()))
