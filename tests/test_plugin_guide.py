"""docs/writing-a-stage.md works as written: its ``file:`` blocks are a distribution that installs and runs.

The page's worked reporter is extracted from the markdown (each fenced block after a ``<!-- file: NAME -->``
line), installed into a scratch venv with uv, and run through the CLI. The scratch venv sees the
project's own ``.venv`` through a ``.pth`` file, so only the plugin itself is built and installed
(about a second with uv's cache warm).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-stage.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<name>[\w.-]+) -->\n```\w*\n(?P<body>.*?)```\n", re.DOTALL)


def guide_files() -> dict[str, str]:
    """Every ``file:`` block of the guide, by file name."""
    return {m["name"]: m["body"] for m in FILE_BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))}


def uv() -> str:
    """uv as the Makefile finds it: on PATH or bootstrapped into .tools/."""
    found = shutil.which("uv") or next((str(p) for p in [ROOT / ".tools" / "bin" / "uv"] if p.is_file()), None)
    if found is None:
        pytest.skip("uv is neither on PATH nor in .tools/ (make bootstraps it)")
    return found


def test_the_guide_holds_a_whole_distribution() -> None:
    files = guide_files()
    assert set(files) == {"pipeline_plugin_demo.py", "setup.cfg", "pyproject.toml"}
    assert "build-backend" in files["pyproject.toml"], "without a build system neither pip nor uv installs it"
    assert "row-count = pipeline_plugin_demo:RowCountReporter" in files["setup.cfg"]
    assert files["pipeline_plugin_demo.py"] == (ROOT / "tests/plugin_pkg/pipeline_plugin_demo.py").read_text(
        encoding="utf-8"
    )


def test_the_guide_installs_into_a_scratch_venv_and_runs_through_the_cli(tmp_path: Path) -> None:
    package = tmp_path / "my-plugin"
    package.mkdir()
    for name, body in guide_files().items():
        (package / name).write_text(body, encoding="utf-8")
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    # addsitedir, not a plain path line: .venv's own .pth files (the editable project) must be read too
    project_site = sysconfig.get_path("purelib")
    (site / "project_venv.pth").write_text(f"import site; site.addsitedir({project_site!r})\n", encoding="utf-8")
    subprocess.run(
        [uv(), "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(package)],
        check=True,
        timeout=120,
    )
    config = tmp_path / "c.yml"
    config.write_text(
        json.dumps(
            {
                "extractor": {"type": "replay", "options": {"path": str(ROOT / "tests/data/sample/2026-11-25")}},
                "transformer": {"type": "standardize"},
                "loader": {"type": "local", "options": {"root": str(tmp_path / "lake")}},
                "reporter": [{"type": "row-count", "options": {"path": str(tmp_path / "row-count.txt")}}],
            }
        ),
        encoding="utf-8",
    )

    # .venv holds tests/plugin_pkg too: the scratch venv's own copy, built from the guide, must be the one found
    where = "import pipeline_plugin_demo; print(pipeline_plugin_demo.__file__)"
    module = subprocess.run([python, "-c", where], capture_output=True, text=True, timeout=60, check=True)
    listed = subprocess.run([python, "-m", "pipeline", "stages"], capture_output=True, text=True, timeout=60)
    ran = subprocess.run(
        [python, "-m", "pipeline", "run", "-q", "--config", str(config), "--date", "2026-11-25"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert Path(module.stdout.strip()).is_relative_to(site), module.stdout
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        r"row-count\s+pipeline_plugin_demo:RowCountReporter\s+\[pipeline-plugin-demo 0\.1\.0\]", listed.stdout
    )
    assert ran.returncode == 0, ran.stderr
    rows = re.search(r"wrote (\d+) rows", ran.stdout)
    assert rows, ran.stdout
    assert (tmp_path / "row-count.txt").read_text(encoding="utf-8") == f"2026-11-25 {rows[1]}\n"
