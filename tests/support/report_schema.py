"""The JSON documents' schemas as docs/stages.md documents them, and a validator against them.

The JSON report, its sections and ``history --format json`` are checked against the tables
under ``#### JSON: ...`` headings, so the documentation and the code cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.report_support import section, split_row

STAGES_DOC = (Path(__file__).resolve().parents[2] / "docs" / "stages.md").read_text(encoding="utf-8")
REPORT_SECTION = STAGES_DOC.split("<!-- section: report -->", 1)[1].split("<!-- /section: report -->", 1)[0]


def documented(heading: str) -> dict[str, str]:
    """``{field: type}`` from the table under ``heading`` in docs/stages.md's report section."""
    rows = [split_row(line) for line in section(REPORT_SECTION, heading).splitlines() if line.startswith("| `")]
    return {name.strip("`"): kind for name, kind, _ in rows}


SCHEMAS = {
    "top level": documented("#### JSON: top level"),
    "run": documented("#### JSON: run"),
    "entries": documented("#### JSON: entry"),
    "dropped": documented("#### JSON: dropped"),
    "dropped people": documented("#### JSON: dropped person"),
    "sections": documented("#### JSON: section"),
    "people": documented("#### JSON: person"),
    "trends": documented("#### JSON: trend"),
    "trend": documented("#### JSON: trend"),
    "trend days": documented("#### JSON: trend day"),
    "trend titles": documented("#### JSON: trend title"),
    "trend people": documented("#### JSON: trend person"),
    "history": documented("#### JSON: history"),
    "history feeds": documented("#### JSON: history feed"),
}


def check(value: Any, kind: str, where: str) -> None:
    """Assert ``value`` has the documented ``kind`` (e.g. ``integer or null``, ``array of entries``)."""
    if kind.endswith(" or null"):
        if value is None:
            return
        kind = kind.removesuffix(" or null")
    if kind.startswith("array of "):
        assert isinstance(value, list), where
        item = kind.removeprefix("array of ")
        choices = item.split(" or ")
        for index, element in enumerate(value):
            if item in SCHEMAS:
                validate(element, item, f"{where}[{index}]")
            elif all(choice in SCHEMAS for choice in choices):  # "trend titles or trend people": the one it has
                fits = [c for c in choices if isinstance(element, dict) and sorted(element) == sorted(SCHEMAS[c])]
                assert len(fits) == 1, f"{where}[{index}]: its fields are those of none of {choices}"
                validate(element, fits[0], f"{where}[{index}]")
            else:  # "array of integers or nulls": each element an integer or null
                check(element, " or ".join(w.removesuffix("s") for w in item.split(" or ")), f"{where}[{index}]")
        return
    if kind in SCHEMAS:
        validate(value, kind, where)
        return
    expected: dict[str, tuple[type, ...]] = {
        "integer": (int,),
        "number": (int, float),
        "string": (str,),
        "boolean": (bool,),
        "object": (dict,),
    }
    assert isinstance(value, expected[kind]), f"{where}: {value!r} is not {kind}"
    if kind in ("integer", "number"):
        assert not isinstance(value, bool), f"{where}: {value!r} is not {kind}"
    if kind == "object" and where.endswith(".run"):
        validate(value, "run", where)


def validate(document: Any, schema: str, where: str = "$") -> None:
    """Assert ``document`` has exactly the documented fields of ``schema``, each of its type."""
    fields = SCHEMAS[schema]
    assert isinstance(document, dict), where
    assert sorted(document) == sorted(fields), f"{where}: fields differ from the README"
    for name, kind in fields.items():
        check(document[name], kind, f"{where}.{name}")
