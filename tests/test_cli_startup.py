"""The CLI starts instantly: importing it, ``--help`` and ``stages`` load no pandas, pyarrow, aiohttp or aioboto3.

Each case runs in a fresh interpreter, since this test process has long since imported all of them.
``check`` is not here: it builds the configured stages, and building a stage imports its module.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "pyarrow", "aiohttp", "aioboto3")

# Runs main() in-process so that sys.modules can be read afterwards; --help exits through SystemExit.
PROBE = f"""
import sys
import pipeline.cli
code = 0
if sys.argv[1:] != ["(import only)"]:
    try:
        code = pipeline.cli.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
sys.exit(code)
"""

# pipeline.ddl (through pipeline.schema and pipeline.lake) and pipeline.history import pandas at module
# level, and the parser's defaults come from them. cli.py already imports their functions lazily; once those
# modules import pandas where they use it (schema's functions, lake in ddl's functions, pandas only for typing
# in history), these cases pass and strict=True turns them into failures until this marker is removed.
BLOCKED = pytest.mark.xfail(
    strict=True, reason="pipeline.ddl/schema/history import pandas at module level (owned elsewhere)"
)


def probe(*argv: str) -> tuple[int, list[str], str]:
    """Exit code, heavy modules loaded, and stdout of the CLI run in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert lines and lines[-1].startswith("HEAVY="), proc.stdout + proc.stderr
    loaded = [name for name in lines[-1].removeprefix("HEAVY=").split(",") if name]
    return proc.returncode, loaded, "\n".join(lines[:-1])


@pytest.mark.parametrize(
    ("argv", "shows"),
    [
        pytest.param(("(import only)",), "", id="import-pipeline.cli", marks=BLOCKED),
        pytest.param(("--help",), "usage: python -m pipeline", id="help", marks=BLOCKED),
        pytest.param(("run", "--help"), "--dry-run", id="run-help", marks=BLOCKED),
        pytest.param(("ddl", "--help"), "--engine", id="ddl-help", marks=BLOCKED),
        pytest.param(("history", "--help"), "--title", id="history-help", marks=BLOCKED),
        pytest.param(("stages",), "standardize", id="stages", marks=BLOCKED),
    ],
)
def test_light_commands_import_no_heavy_library(argv: tuple[str, ...], shows: str) -> None:
    code, loaded, out = probe(*argv)

    assert code == 0
    assert shows in out
    assert loaded == [], f"{' '.join(argv)} imported {loaded}"


def test_the_probe_sees_heavy_imports() -> None:
    """Proves the probe is live: building the demo's stages does import pandas."""
    code, loaded, out = probe("check", "--config", "config/demo.yml")

    assert code == 0, out
    assert "pandas" in loaded
