"""``history``: a title's rank over the last N days, or the top climbers, read back from the lake.

Days are read through the configured loader's ``read_day``, so the command works on any
lake a loader can read (local folder, S3) in any format and layout. A day the lake does
not have is a gap in the output, never an error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.config import PipelineConfig
    from pipeline.stage import Feed, LakeReader

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 7
DEFAULT_TOP = 10
MAX_DAYS = 366
_READ_CONCURRENCY = 8  # enough to hide S3 latency without opening a connection per day


@dataclasses.dataclass(frozen=True)
class DayPoint:
    """A title on one day: ``in_lake`` False means the day is missing; ``rank`` None means not in the list."""

    day: dt.date
    in_lake: bool
    rank: int | None = None
    popularity: float | None = None


@dataclasses.dataclass(frozen=True)
class TitleHistory:
    """One title's rank and popularity for every day of the window; ``(media_type, id)`` is its identity."""

    id: int
    title: str
    points: tuple[DayPoint, ...]
    media_type: str = "movie"


@dataclasses.dataclass(frozen=True)
class Climber:
    """A title's move between the first and the last day of the window that the lake has."""

    id: int
    title: str
    from_rank: int
    to_rank: int
    from_popularity: float | None
    to_popularity: float | None
    media_type: str = "movie"

    @property
    def change(self) -> int:
        """Places gained (positive) or lost (negative)."""
        return self.from_rank - self.to_rank


@dataclasses.dataclass(frozen=True)
class History:
    """What ``history`` found: the window, which days the lake has, and the titles or climbers."""

    feed: Feed
    days: tuple[dt.date, ...]
    present: tuple[dt.date, ...]
    title_query: str | None = None
    titles: tuple[TitleHistory, ...] = ()
    climbers: tuple[Climber, ...] = ()

    @property
    def missing(self) -> tuple[dt.date, ...]:
        """Days of the window the lake does not have."""
        return tuple(d for d in self.days if d not in self.present)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (dates as ISO strings; gaps as ``null``)."""
        result: dict[str, Any] = {
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "from": self.days[0].isoformat(),
            "to": self.days[-1].isoformat(),
            "days": [d.isoformat() for d in self.days],
            "missing_days": [d.isoformat() for d in self.missing],
        }
        if self.title_query is not None:
            result["title_query"] = self.title_query
            result["titles"] = [
                {
                    "media_type": t.media_type,
                    "id": t.id,
                    "title": t.title,
                    "history": [
                        {
                            "date": p.day.isoformat(),
                            "in_lake": p.in_lake,
                            "rank": p.rank,
                            "popularity": p.popularity,
                        }
                        for p in t.points
                    ],
                }
                for t in self.titles
            ]
        else:
            compared = (self.present[0], self.present[-1]) if len(self.present) >= 2 else None
            result["compared"] = [d.isoformat() for d in compared] if compared else None
            result["climbers"] = [
                {
                    "media_type": c.media_type,
                    "id": c.id,
                    "title": c.title,
                    "from_rank": c.from_rank,
                    "to_rank": c.to_rank,
                    "change": c.change,
                    "from_popularity": c.from_popularity,
                    "to_popularity": c.to_popularity,
                }
                for c in self.climbers
            ]
        return result


def window(end: dt.date, days: int) -> tuple[dt.date, ...]:
    """The ``days`` dates ending at ``end``, oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"--days must be between 1 and {MAX_DAYS}, got {days}")
    return tuple(end - dt.timedelta(days=n) for n in range(days - 1, -1, -1))


async def read_days(lake: LakeReader, feed: Feed, days: Sequence[dt.date]) -> dict[dt.date, pd.DataFrame | None]:
    """Every day's frame (``None`` where the lake has no such day), read a few at a time."""
    gate = asyncio.Semaphore(_READ_CONCURRENCY)

    async def one(day: dt.date) -> pd.DataFrame | None:
        async with gate:
            return await lake.read_day(day, feed)

    frames = await asyncio.gather(*(one(day) for day in days))
    return dict(zip(days, frames, strict=True))


Key = tuple[str, int]
"""A title's identity: ``(media_type, id)``, since TMDB's movie and TV ids are separate id spaces."""


def title_histories(frames: Mapping[dt.date, pd.DataFrame | None], query: str) -> list[TitleHistory]:
    """Titles matching ``query`` (exact, ignoring case; else containing it), each with one point per day."""
    wanted = query.casefold().strip()
    seen: dict[Key, str] = {}
    for frame in frames.values():
        if frame is None:
            continue
        for key, title in zip(_keys(frame), frame["title"].tolist(), strict=True):
            seen[key] = str(title)  # days are in order, so the latest title wins
    exact = [k for k, t in seen.items() if t.casefold() == wanted]
    keys = exact or [k for k, t in seen.items() if wanted in t.casefold()]
    histories = []
    for key in sorted(keys, key=lambda k: (seen[k].casefold(), k[1], k[0])):
        media_type, tmdb_id = key
        points = []
        for day, frame in frames.items():
            if frame is None:
                points.append(DayPoint(day, in_lake=False))
                continue
            hit = frame[(frame["id"] == tmdb_id) & (frame["media_type"] == media_type)]
            if hit.empty:
                points.append(DayPoint(day, in_lake=True))
            else:
                row = hit.sort_values("rank").iloc[0]
                points.append(DayPoint(day, True, int(row["rank"]), _float(row["popularity"])))
        histories.append(TitleHistory(tmdb_id, seen[key], tuple(points), media_type))
    return histories


def top_climbers(frames: Mapping[dt.date, pd.DataFrame | None], top: int) -> list[Climber]:
    """Titles on both the first and the last day the lake has, by places gained (best first)."""
    present = [frame for frame in frames.values() if frame is not None]
    if len(present) < 2:
        return []
    first = _ranks(present[0])
    last = _ranks(present[-1])
    climbers = [
        Climber(key[1], title, first[key][0], rank, first[key][1], popularity, key[0])
        for key, (rank, popularity, title) in last.items()
        if key in first
    ]
    climbers.sort(key=lambda c: (-c.change, c.to_rank))
    return [c for c in climbers if c.change > 0][:top]


def _keys(frame: pd.DataFrame) -> list[Key]:
    return [(str(m), int(i)) for m, i in zip(frame["media_type"].tolist(), frame["id"].tolist(), strict=True)]


def _ranks(frame: pd.DataFrame) -> dict[Key, tuple[int, float | None, str]]:
    best = frame.sort_values("rank").drop_duplicates(["media_type", "id"])
    return {
        key: (int(r), _float(p), str(t))
        for key, r, p, t in zip(_keys(best), best["rank"], best["popularity"], best["title"], strict=True)
    }


def _float(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _popularity(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _clip(text: str, width: int = 40) -> str:
    shown = _printable(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def _printable(text: str) -> str:
    # Titles come from TMDB: a newline would break the table, an escape sequence would drive the terminal.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


async def history(
    config: PipelineConfig,
    *,
    end: dt.date | None = None,
    days: int = DEFAULT_DAYS,
    title: str | None = None,
    top: int = DEFAULT_TOP,
) -> History:
    """Read the window ending at ``end`` (today, UTC) from the configured lake and summarise it."""
    end = end or dt.datetime.now(dt.UTC).date()
    dates = window(end, days)
    from pipeline.datalake import configured_feed, lake_reader  # pandas: imported by the command that uses it

    feed = configured_feed(config)
    if feed.is_people:
        raise ConfigError(
            f"history follows titles, and this config's first feed is {feed.spec}; "
            "list a movie, tv or all feed first in extractor.options.feeds"
        )
    loader = lake_reader(config)
    async with loader:
        frames = await read_days(loader, feed, dates)
    present = tuple(d for d in dates if frames[d] is not None)
    logger.info("history: %d of %d days in %s", len(present), len(dates), loader.describe())
    if title is not None:
        return History(feed, dates, present, title_query=title, titles=tuple(title_histories(frames, title)))
    return History(feed, dates, present, climbers=tuple(top_climbers(frames, top)))


def render_json(result: History) -> str:
    """``result`` as indented JSON."""
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_table(result: History) -> str:
    """``result`` as a compact plain-text table."""
    span = f"{result.days[0]} to {result.days[-1]}"
    lines = [f"{result.feed.label}, {span}: {len(result.present)} of {len(result.days)} days in the lake"]
    if result.missing:
        lines.append(f"missing: {', '.join(d.isoformat() for d in result.missing)}")
    lines.append("")
    if result.title_query is not None:
        if not result.titles:
            lines.append(f"no title matching {result.title_query!r} in those days")
        for item in result.titles:
            which = f"{item.media_type} id" if result.feed.media_type == "all" else "id"
            lines += [
                f"{_printable(item.title)} ({which} {item.id})",
                f"  {'date':<10}  {'rank':>4}  {'popularity':>10}",
            ]
            for p in item.points:
                if not p.in_lake:
                    lines.append(f"  {p.day.isoformat():<10}  {'':>4}  {'':>10}  (day missing)")
                elif p.rank is None:
                    lines.append(f"  {p.day.isoformat():<10}  {'-':>4}  {'-':>10}  (not in the list)")
                else:
                    lines.append(f"  {p.day.isoformat():<10}  {p.rank:>4}  {_popularity(p.popularity):>10}")
            lines.append("")
        return "\n".join(lines).rstrip("\n") + "\n"
    if len(result.present) < 2:
        lines.append("top climbers need at least two days in the lake")
        return "\n".join(lines) + "\n"
    lines.append(f"top climbers, {result.present[0]} to {result.present[-1]}:")
    if not result.climbers:
        lines.append("  none: no title gained places")
    width = max([len(_clip(c.title)) for c in result.climbers] + [5])
    if result.climbers:
        lines.append(f"  {'title':<{width}}  {'from':>4}  {'to':>4}  {'change':>6}  popularity")
    for c in result.climbers:
        lines.append(
            f"  {_clip(c.title):<{width}}  {c.from_rank:>4}  {c.to_rank:>4}  {c.change:>+6}  "
            f"{_popularity(c.from_popularity)} -> {_popularity(c.to_popularity)}"
        )
    return "\n".join(lines) + "\n"
