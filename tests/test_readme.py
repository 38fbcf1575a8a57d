"""The README stays true: its schema table and its library example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pipeline.schema import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_schema_table_matches_the_code() -> None:
    assert markdown_table() in README


def test_library_example_runs() -> None:
    section = README.split("## Use it as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    done = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    rows, _, location = done.stdout.splitlines()[0].partition(" rows; ")
    assert int(rows) == 57
    assert re.search(r"cleaned_data/\d{4}/\d{2}/\d{4}-\d{2}-\d{2}_movies\.csv$", location), location
