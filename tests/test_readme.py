"""The README and docs/ stay true: the schema table, the library example, and every relative link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.datalake.schema import PEOPLE, markdown_table
from tests.support.cli import ROOT, run_python

README = (ROOT / "README.md").read_text(encoding="utf-8")
LAKE_DOC = (ROOT / "docs" / "lake.md").read_text(encoding="utf-8")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target): a target with no scheme and not only an anchor is a path relative to its page.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_schema_table_matches_the_code() -> None:
    assert markdown_table() in LAKE_DOC
    people = LAKE_DOC.split("### People schema", 1)[1]
    assert markdown_table(PEOPLE) in people


def test_library_example_runs() -> None:
    section = README.split("## Use it as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    done = run_python("-c", code.group(1), timeout=60)
    assert done.returncode == 0, done.stderr
    rows, _, location = done.stdout.splitlines()[0].partition(" rows; ")
    assert int(rows) == 20
    assert re.search(r"cleaned_data/\d{4}/\d{2}/\d{4}-\d{2}-\d{2}_movies\.csv$", location), location


def test_readme_is_a_landing_page() -> None:
    assert len(README.splitlines()) <= 260


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file(page: Path) -> None:
    targets = [m.group(1) for m in LINK.finditer(page.read_text(encoding="utf-8"))]
    relative = [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]
    missing = [t for t in relative if not (page.parent / t).exists()]
    assert missing == [], f"{page.relative_to(ROOT)}: broken links {missing}"
