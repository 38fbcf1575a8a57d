"""Movement since the previous available day, read back through the local and the S3 lake."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.datalake import schema
from pipeline.stage import Feed, RunResult
from stages.reporters import report_model as rm
from tests.support.fixtures_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from tests.support.report_support import DAY1, DAY2, movie, run_day, section, tables, write_day

# Day 1 ranks 1..10; day 2 reshuffles them so every kind of movement occurs:
#   20 2→1 ▲1 · 80 6→2 ▲4 · 90 new · 60 8→4 ▲4 (ties with 80; its id sorts first, its rank does not)
#   10 1→5 ▼4 · 30 3→6 ▼3 · 50 5→7 ▼2 · 120 10→8 ▲2 (outside the top 4) · 100 9→9 = · 110 new
#   40 and 70 left the list.
DAY1_IDS = [10, 20, 30, 40, 50, 80, 70, 60, 100, 120]
DAY2_IDS = [20, 80, 90, 60, 10, 30, 50, 120, 100, 110]

MOVEMENT = 6  # the top table's "Movement" column (the trend columns follow it)


@pytest.fixture(params=["local", "s3"])
def lake_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A loader section for an empty local lake or an empty bucket on the moto server."""
    if request.param == "local":
        return {"type": "local", "options": {"root": str(tmp_path / "lake")}}
    request.getfixturevalue("aws_env")
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    return {"type": "s3", "options": {"bucket": bucket, "prefix": "tmdb", "endpoint_url": endpoint}}


def reporters(tmp_path: Path, **options: Any) -> list[dict[str, Any]]:
    """The markdown (without its rank chart: ~0.15 s of matplotlib a report) and json reporters, under ``tmp_path``."""
    return [
        {"type": "markdown", "options": {"path": str(tmp_path / "report.md"), "chart": False, **options}},
        {"type": "json", "options": {"path": str(tmp_path / "report.json"), **options}},
    ]


async def two_days(tmp_path: Path, lake_section: dict[str, Any], **options: Any) -> tuple[dict[str, Any], str]:
    """Run day 1 then day 2 into ``lake``; return day 2's JSON document and Markdown report."""
    await run_day(
        DAY1, write_day(tmp_path / "d1", [movie(i) for i in DAY1_IDS]), lake_section, reporters(tmp_path, **options)
    )
    await run_day(
        DAY2, write_day(tmp_path / "d2", [movie(i) for i in DAY2_IDS]), lake_section, reporters(tmp_path, **options)
    )
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    return document, (tmp_path / "report.md").read_text(encoding="utf-8")


async def test_movement_across_two_days(tmp_path: Path, lake_section: dict[str, Any]) -> None:
    document, markdown = await two_days(tmp_path, lake_section, top=4, climbers=3)

    assert document["compared_with"] == DAY1.isoformat()
    assert [(e["id"], e["previous_rank"], e["movement"], e["change"]) for e in document["top"]] == [
        (20, 2, "up", 1),
        (80, 6, "up", 4),
        (90, None, "new", None),
        (60, 8, "up", 4),
    ]
    assert [e["id"] for e in document["new_in_top"]] == [80, 90, 60]
    # whole list, biggest first, equal climbs by today's rank, cut at ``climbers``
    assert [(e["id"], e["change"]) for e in document["climbers"]] == [(80, 4), (60, 4), (120, 2)]
    assert document["dropped"] == [
        {"media_type": "movie", "id": 10, "title": "Title 10", "previous_rank": 1, "rank": 5},
        {"media_type": "movie", "id": 30, "title": "Title 30", "previous_rank": 3, "rank": 6},
        {"media_type": "movie", "id": 40, "title": "Title 40", "previous_rank": 4, "rank": None},
    ]

    top, new, climbers, dropped = tables(markdown)
    assert [(row[0], row[1], row[MOVEMENT]) for row in top[1:]] == [
        ("1", "Title 20", "▲1"),
        ("2", "Title 80", "▲4"),
        ("3", "Title 90", "new"),
        ("4", "Title 60", "▲4"),
    ]
    assert new[1:] == [["2", "Title 80", "6"], ["3", "Title 90", "not in the list"], ["4", "Title 60", "8"]]
    assert climbers[1:] == [["2", "Title 80", "6", "▲4"], ["4", "Title 60", "8", "▲4"], ["8", "Title 120", "10", "▲2"]]
    assert dropped[1:] == [["1", "Title 10", "5"], ["3", "Title 30", "6"], ["4", "Title 40", "not in the list"]]
    assert "Compared with 2026-11-24, the day before." in markdown
    options = lake_section["options"]
    where = f"s3://{options['bucket']}/tmdb" if lake_section["type"] == "s3" else options["root"]
    assert document["run"]["lake"] == where
    assert f"- **Lake:** `{where}`" in markdown
    for secret in (ACCESS_KEY_ID, SECRET_ACCESS_KEY):
        assert secret not in markdown and secret not in json.dumps(document)


async def test_unchanged_and_falling_titles_in_a_longer_top(tmp_path: Path) -> None:
    lake_section = {"type": "local", "options": {"root": str(tmp_path / "lake")}}
    document, _ = await two_days(tmp_path, lake_section, top=10)
    labels = {e["id"]: (e["movement"], e["change"]) for e in document["top"]}
    assert labels[100] == ("same", 0)
    assert labels[10] == ("down", -4)
    assert labels[110] == ("new", None)
    assert document["dropped"] == [
        {"media_type": "movie", "id": 40, "title": "Title 40", "previous_rank": 4, "rank": None},
        {"media_type": "movie", "id": 70, "title": "Title 70", "previous_rank": 7, "rank": None},
    ]


async def test_first_day_says_so_and_shows_no_movement(tmp_path: Path, lake_section: dict[str, Any]) -> None:
    await run_day(
        DAY2, write_day(tmp_path / "d2", [movie(i) for i in DAY2_IDS]), lake_section, reporters(tmp_path, top=4)
    )

    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["compared_with"] is None
    assert [e["movement"] for e in document["top"]] == [None] * 4
    assert document["new_in_top"] == document["climbers"] == document["dropped"] == []

    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "This is the first day in the lake: there is no earlier day to compare with." in markdown
    assert "### New in the top" not in markdown
    top = tables(markdown)[0]
    assert [row[MOVEMENT] for row in top[1:]] == [rm.NO_VALUE] * 4


@pytest.mark.parametrize(
    ("gap_days", "lookback_days", "compared_with", "sentence"),
    [
        (
            3,
            7,
            DAY2 - dt.timedelta(days=3),
            "Compared with 2026-11-22, the latest earlier day in the lake, 3 days before.",
        ),
        (
            3,
            3,
            DAY2 - dt.timedelta(days=3),
            "Compared with 2026-11-22, the latest earlier day in the lake, 3 days before.",
        ),
        (3, 2, None, "This is the first day in the lake"),
    ],
)
async def test_previous_day_is_searched_back_within_lookback_days(
    tmp_path: Path, gap_days: int, lookback_days: int, compared_with: dt.date | None, sentence: str
) -> None:
    lake_section = {"type": "local", "options": {"root": str(tmp_path / "lake")}}
    earlier = DAY2 - dt.timedelta(days=gap_days)
    await run_day(earlier, write_day(tmp_path / "d1", [movie(i) for i in DAY1_IDS]), lake_section, [])
    await run_day(
        DAY2,
        write_day(tmp_path / "d2", [movie(i) for i in DAY2_IDS]),
        lake_section,
        reporters(tmp_path, lookback_days=lookback_days),
    )
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["compared_with"] == (compared_with.isoformat() if compared_with else None)
    assert sentence in (tmp_path / "report.md").read_text(encoding="utf-8")


async def test_an_empty_day_is_skipped_as_the_previous_day(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lake_section = {"type": "local", "options": {"root": str(tmp_path / "lake")}}
    await run_day(
        DAY2 - dt.timedelta(days=2), write_day(tmp_path / "d0", [movie(i) for i in DAY1_IDS]), lake_section, []
    )
    # An empty day needs the regression guard's override to be committed at all.
    empty_ok = {"type": "local", "options": {**lake_section["options"], "allow_regression": True}}
    await run_day(DAY1, write_day(tmp_path / "d1", []), empty_ok, [])
    caplog.set_level(logging.DEBUG, logger="pipeline.trends")
    await run_day(
        DAY2, write_day(tmp_path / "d2", [movie(i) for i in DAY2_IDS]), lake_section, reporters(tmp_path, top=4)
    )
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["compared_with"] == "2026-11-23"
    assert [e["id"] for e in document["new_in_top"]] == [80, 90, 60]
    assert "trend: trending movies, today 2026-11-24 is a gap: it has no rows" in caplog.text


def frame(ids: list[int]) -> pd.DataFrame:
    """A cleaned frame with one row per id, ranked in list order."""
    rows = [
        {
            "trend_date": "2026-11-25",
            "rank": rank,
            "id": movie_id,
            "title": f"Title {movie_id}",
            "original_title": f"Title {movie_id}",
            "original_language": "en",
            "release_date": "",
            "popularity": 10.0,
            "vote_average": 0.0,
            "vote_count": 0,
            "genre_ids": "",
            "media_type": "movie",
            "time_window": "day",
            "extracted_at": "2026-11-25T00:00:00+00:00",
            "genres": "",
            "poster_url": "",
        }
        for rank, movie_id in enumerate(ids, start=1)
    ]
    return schema.conform(pd.DataFrame(rows))


ids = st.lists(st.integers(1, 30), max_size=40)


def day(ids: list[int]) -> pd.DataFrame:
    """``frame(ids)``, also of no ids (an empty day with the schema's columns)."""
    return frame(ids) if ids else frame([1]).iloc[:0]


@settings(max_examples=30, deadline=None)
@given(today=ids, previous=ids, top=st.integers(1, 6), climbers=st.integers(0, 4))
def test_the_movement_of_the_entries_it_needs_is_the_movement_of_all(
    today: list[int], previous: list[int], top: int, climbers: int
) -> None:
    """``movement_entries`` builds only what ``movement`` reads: the answer is the one all the entries give."""
    now, before = day(today), rm.entries(day(previous))
    for previous_date in (DAY1, None):
        was = before if previous_date else []
        expected = rm.movement(rm.entries(now), previous_date, was, top=top, climbers=climbers)
        needed = rm.movement_entries(now, was, top=top)
        assert rm.movement(needed, previous_date, was, top=top, climbers=climbers) == expected
        assert len(needed) <= len(rm.entries(now))


def test_a_long_day_builds_only_the_entries_movement_reads() -> None:
    """30 titles, top 3: 25 climbs from 30th to 2nd and 2 falls from 2nd to 30th; the rest keep their rank."""
    previous = [1, 2, *range(3, 25), *range(26, 31), 25]
    today = [1, 25, *range(3, 25), *range(26, 31), 2]
    needed = rm.movement_entries(frame(today), rm.entries(frame(previous)), top=3)
    assert [(e.id, e.rank) for e in needed] == [(1, 1), (25, 2), (3, 3), (2, 30)]
    assert rm.movement_entries(frame(today), [], top=3) == rm.entries(frame(today))[:3]
    assert rm.movement_entries(day([]), [], top=3) == []


def test_a_duplicated_id_counts_once_at_its_best_rank() -> None:
    today = frame([1, 2, 3])
    previous = pd.concat([frame([3, 1, 2]), frame([9, 9, 9, 9, 9, 2])], ignore_index=True)
    movement = rm.compare(today, (DAY1, previous), top=3, climbers=5)
    assert [(e.id, e.previous_rank) for e in movement.top] == [(1, 2), (2, 3), (3, 1)]
    assert [e.id for e in movement.climbers] == [1, 2]


@pytest.mark.parametrize(
    ("previous_rank", "rank", "label"),
    [(5, 2, "▲3"), (2, 4, "▼2"), (3, 3, "="), (None, 1, "new")],
)
def test_movement_labels(previous_rank: int | None, rank: int, label: str) -> None:
    entry = rm.Entry(rank, 1, "t", "", "", 1.0, 0.0, 0, "", previous_rank=previous_rank)
    assert rm.movement_label(entry, compared=True) == label
    assert rm.movement_label(entry, compared=False) == rm.NO_VALUE


def test_sections_say_so_when_nothing_moved() -> None:
    movement = rm.compare(frame([1, 2, 3]), (DAY1, frame([1, 2, 3])), top=2, climbers=5)
    assert (movement.new_in_top, movement.climbers, movement.dropped) == ((), (), ())
    result = RunResult("r", DAY2, Feed(), dt.datetime(2026, 11, 25, tzinfo=dt.UTC))
    text = "\n".join(rm.movement_sections(rm.Report(result, "lake", 3, 2, movement)))
    assert section(text, "### New in the top 2").strip() == "No title is new in the top 2."
    assert section(text, "### Biggest climbers").strip() == "No title climbed."
    assert section(text, "### Dropped out of the top 2").strip() == "No title dropped out of the top 2."
