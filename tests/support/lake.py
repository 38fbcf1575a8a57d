"""Lake helpers for loader tests: run contexts, cleaned rows with awkward values, local loaders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.datalake import LockRecord, schema
from pipeline.options import build_options
from pipeline.stage import Feed, RunContext
from stages.loaders.local import LocalLoader, LocalOptions
from tests.support.fakes import NOW, TREND_DATE


def context_for(day: dt.date, run_id: str | None = None, *, force: bool = False) -> RunContext:
    """A run context for ``day``, started at ``NOW``; the run id defaults to ``run-<day of month>``."""
    return RunContext(trend_date=day, run_id=run_id or f"run-{day:%d}", started_at=NOW, force=force)


def rows(day: dt.date, ids: range, *, title: str = "Title {id}") -> pd.DataFrame:
    """Cleaned rows with the awkward values a real day has: quotes, commas, newlines, blanks, NaN."""
    records = []
    for n, i in enumerate(ids):
        records.append(
            {
                "trend_date": day.isoformat(),
                "rank": n + 1,
                "id": i,
                "title": title.format(id=i),
                "original_title": ['Le "Film", part 2', "line\nbreak", "NA", "東京物語"][n % 4],
                "original_language": ["en", "fr", "", "ja"][n % 4],
                "release_date": "" if n % 3 == 0 else "2026-01-02",
                "popularity": 1000.5 - i,
                "vote_average": float("nan") if n % 5 == 0 else 7.25,
                "vote_count": n * 10,
                "genre_ids": "28|12" if n % 2 else "",
                "media_type": "movie",
                "time_window": "day",
                "extracted_at": ["2026-11-25T12:00:03.120000+00:00", "2026-11-25T12:00:04+00:00"][n % 2],
                "genres": "Action|Adventure" if n % 2 else "",
                "poster_url": "" if n % 2 else f"https://image.example/w500/{i}.jpg",
            }
        )
    return schema.conform(pd.DataFrame(records))


def people(day: dt.date, named: Sequence[tuple[int, str, str]], *, time_window: str = "day") -> pd.DataFrame:
    """A person feed's cleaned rows (the people schema): ``named`` is ``(id, name, known_for_department)``, best
    first; popularity falls with rank."""
    records = [
        {
            "trend_date": day.isoformat(),
            "rank": rank,
            "id": person_id,
            "name": name,
            "original_name": name,
            "known_for_department": department,
            "gender": rank % 3,
            "popularity": 100.0 - rank,
            "adult": False,
            "known_for": f"movie:{person_id}",
            "known_for_titles": '["A Film"]',
            "profile_url": "",
            "media_type": "person",
            "time_window": time_window,
            "extracted_at": "2026-11-25T12:00:03+00:00",
        }
        for rank, (person_id, name, department) in enumerate(named, start=1)
    ]
    return schema.frame_from_rows(records, schema.PEOPLE)


def loader_for(
    root: Path, fmt: str, layout: str, day: dt.date = TREND_DATE, run_id: str | None = None, *, force: bool = False
) -> LocalLoader:
    """A ``local`` loader on ``root`` in ``fmt`` and ``layout``, built from a YAML-like mapping."""
    options = build_options(LocalOptions, {"root": str(root), "format": fmt, "layout": layout}, "loader.options")
    return LocalLoader(options, context_for(day, run_id, force=force), name="local")


def files(root: Path) -> list[str]:
    """The files under ``root``, as sorted relative POSIX paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def lock_record(
    run_id: str,
    *,
    host: str = "elsewhere",
    pid: int = 1,
    started_at: dt.datetime | None = None,
    objects: tuple[str, ...] = ("_versions/a.run-x.csv",),
) -> LockRecord:
    """The lock record of ``run_id`` on ``TREND_DATE``'s default feed; started now unless ``started_at``."""
    return LockRecord(run_id, TREND_DATE, Feed(), host, pid, started_at or dt.datetime.now(dt.UTC), objects)
