"""Helpers for the report tests: write TMDB-shaped days, run the real pipeline, read Markdown back."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.runner import run_pipeline
from pipeline.stage import RunResult
from tests.support.sample import record_line, replay_config

TESTS = Path(__file__).resolve().parents[1]
GOLDEN = TESTS / "golden"
DAY1 = dt.date(2026, 11, 24)
DAY2 = dt.date(2026, 11, 25)

_RUN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")
_WALL = re.compile(r"\| \d+\.\d{2} s \|")


def movie(movie_id: int, title: str | None = None, **fields: Any) -> dict[str, Any]:
    """One TMDB trending result; ``fields`` override the defaults."""
    name = title if title is not None else f"Title {movie_id}"
    return {
        "id": movie_id,
        "title": name,
        "original_title": name,
        "original_language": "en",
        "media_type": "movie",
        "popularity": 1000.0 - movie_id,
        "release_date": "2024-05-06",
        "vote_average": 7.0,
        "vote_count": 10,
        "genre_ids": [28],
        "poster_path": None,
        **fields,
    }


def write_day(folder: Path, results: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``results`` (in rank order) as TMDB pages of 20 into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [list(results[i : i + 20]) for i in range(0, len(results), 20)] or [[]]
    for number, chunk in enumerate(chunks, start=1):
        page = {"page": number, "results": chunk, "total_pages": len(chunks), "total_results": len(results)}
        (folder / f"page-{number:03d}.json").write_bytes(record_line(page))
    return folder


async def run_day(
    day: dt.date, pages: Path, loader: Mapping[str, Any], reporters: Sequence[Mapping[str, Any]]
) -> RunResult:
    """Run the real pipeline for ``day`` through the registered stages."""
    return await run_pipeline(replay_config(loader, pages, reporters), trend_date=day)


def normalise(text: str) -> str:
    """Blank out what may differ between runs of the same day: the run time and the wall time."""
    return _WALL.sub("| <wall> s |", _RUN_TIME.sub("<run time>", text))


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` (normalised) with ``tests/golden/<name>``; ``UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    actual = normalise(text)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="\n")
    assert path.exists(), f"{path} is missing; run with UPDATE_GOLDEN=1 to create it, then review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from its golden file; if intended, UPDATE_GOLDEN=1 and review the diff"


def split_row(line: str) -> list[str]:
    """Split a GFM table row on its unescaped pipes (a pipe after an odd run of backslashes is text)."""
    cells: list[str] = []
    current: list[str] = []
    backslashes = 0
    for char in line.strip():
        if char == "|" and backslashes % 2 == 0:
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
        backslashes = backslashes + 1 if char == "\\" else 0
    cells.append("".join(current))
    # A row starts and ends with a pipe, so the first and last pieces are empty.
    if cells and not cells[0].strip():
        cells = cells[1:]
    if cells and not cells[-1].strip():
        cells = cells[:-1]
    return [c.strip() for c in cells]


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table in ``markdown`` (outside code fences) as rows of cells; header first, rule dropped."""
    found: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced and line.startswith("|"):
            cells = split_row(line)
            if current is None:
                current = [cells]
                found.append(current)
            elif not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                current.append(cells)
        else:
            current = None
    return found


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end])


def mermaid_block(markdown: str) -> list[str]:
    """The lines inside the (only) fenced ``mermaid`` block."""
    lines = markdown.splitlines()
    start = lines.index("```mermaid") + 1
    end = lines.index("```", start)
    return lines[start:end]
