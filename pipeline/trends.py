"""The trend model: every title's rank over N days of one feed, read back from the lake, and the week's lists.

One model serves every reader: the ``markdown``, ``json`` and ``html`` reporters and
``history``. Days are read through the lake's own verified read (``read_day``: the
manifest, then the SHA-256 of the cleaned file), a few at a time, never by listing files.

Rules (``docs/trends.md`` explains them for readers of the report):

- A title's identity is ``(media_type, id)``. A day's list may hold a title twice; its best
  rank counts (``best_ranks``). Titles that share a name are told apart by year, or by id
  when the year is the same too (``TitleTrend.label``).
- A day the lake does not have, cannot vouch for (SHA-256 mismatch, unreadable), holds
  another feed, or holds no rows is a *gap*: it is shown as missing and never makes a title
  "new" or "dropped". Gaps neither count toward a streak nor break it.
- The *latest* day is the last day of the window the lake has; the week's *baseline* is
  the last day the lake has at least ``WEEK`` days before it. The week's lists compare the
  latest day with the baseline; without a baseline they are empty.
- **Rising fastest** ignores noise deep in the list: only titles in the latest top N count,
  and their gain is measured from their rank on the baseline day (a title not in the list
  then is *new this week*, not a riser).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import LoadError
from pipeline.stage import RunLake

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from pipeline.stage import Feed, LakeReader

logger = logging.getLogger(__name__)

WEEK = 7
"""Days in a week: the span of the trajectory, the week's lists and rising fastest."""
DEFAULT_DAYS = 30
MAX_DAYS = 366
READ_CONCURRENCY = 8
"""Days read at once: enough to hide S3 latency, few enough that memory stays bounded."""

DayState = Literal["ok", "missing", "corrupt", "foreign", "empty"]
Key = tuple[str, int]
"""A title's identity: ``(media_type, id)``, since TMDB's movie and TV ids are separate id spaces."""

_KEEP = ("media_type", "id", "rank", "title", "release_date", "popularity", "known_for_department")
_GAP_WHY = {
    "missing": "not in the lake",
    "corrupt": "cannot be verified",
    "foreign": "holds another feed",
    "empty": "has no rows",
}


@dataclasses.dataclass(frozen=True)
class WindowDay:
    """One day of the window and whether the lake has it (``ok``) or it is a gap, and why."""

    date: dt.date
    state: DayState = "ok"

    @property
    def present(self) -> bool:
        """The lake has the day and vouches for it."""
        return self.state == "ok"


@dataclasses.dataclass(frozen=True)
class DayRead:
    """What reading one day gave: its slimmed rows (``None`` for a gap) and its state."""

    date: dt.date
    state: DayState
    frame: pd.DataFrame | None = None


@dataclasses.dataclass(frozen=True)
class TitleTrend:
    """One title over the window: its rank each day (``None``: not in the list, or the day is a gap)."""

    media_type: str
    id: int
    title: str
    year: str
    label: str
    dates: tuple[dt.date, ...]
    ranks: tuple[int | None, ...]
    popularity: tuple[float | None, ...]
    rank: int | None
    days_in_top: int
    streak: int
    best_rank: int | None
    best_date: dt.date | None
    first_seen: dt.date | None
    change: int | None
    week_change: int | None
    department: str = ""
    """A person's ``known_for_department`` on the latest day listed (people feeds; empty for titles)."""

    @property
    def is_person(self) -> bool:
        """Whether this is a person (a ``person`` feed's row), who has a name and a department, not a year."""
        return self.media_type == "person"

    @property
    def key(self) -> Key:
        """The title's identity."""
        return (self.media_type, self.id)

    def last(self, days: int) -> list[tuple[dt.date, int | None]]:
        """``(date, rank)`` for the last ``days`` days of the window."""
        return list(zip(self.dates[-days:], self.ranks[-days:], strict=True))


class FeedTrend:
    """One feed over a window of days: the ranks of every title seen, and the lists drawn from them."""

    def __init__(
        self,
        feed: Feed,
        days: Sequence[WindowDay],
        *,
        top_n: int,
        keys: Sequence[Key],
        titles: Sequence[str],
        years: Sequence[str],
        ranks: npt.NDArray[np.int32],
        popularity: npt.NDArray[np.float32],
        departments: Sequence[str] = (),
    ) -> None:
        self.feed = feed
        self.days = tuple(days)
        self.top_n = top_n
        self._keys = list(keys)
        self._titles = list(titles)
        self._years = list(years)
        self._departments = list(departments) or [""] * len(self._keys)
        self._ranks = ranks
        self._popularity = popularity
        self._index = {key: n for n, key in enumerate(self._keys)}

    # -- the window ------------------------------------------------------------------------
    @property
    def dates(self) -> tuple[dt.date, ...]:
        """Every day of the window, oldest first."""
        return tuple(d.date for d in self.days)

    @property
    def present(self) -> tuple[dt.date, ...]:
        """Days the lake has."""
        return tuple(d.date for d in self.days if d.present)

    @property
    def gaps(self) -> tuple[WindowDay, ...]:
        """Days the lake does not have (or cannot vouch for), with why."""
        return tuple(d for d in self.days if not d.present)

    @property
    def holes(self) -> tuple[WindowDay, ...]:
        """The gaps after the first day the lake has in the window: days it should have and does not.

        Days before that first day are not holes: the lake's history had not begun (a new lake's first
        month), so the reports neither shade nor list them.
        """
        first = self._present_idx[0] if self._present_idx else len(self.days)
        return tuple(d for d in self.days[first:] if not d.present)

    @cached_property
    def _present_idx(self) -> list[int]:
        return [n for n, d in enumerate(self.days) if d.present]

    @property
    def latest(self) -> dt.date | None:
        """The last day of the window the lake has: what "today" means for the lists."""
        return self.days[self._present_idx[-1]].date if self._present_idx else None

    def _before(self, day: dt.date) -> int | None:
        found = [n for n in self._present_idx if self.days[n].date <= day]
        return found[-1] if found else None

    @cached_property
    def _baseline_idx(self) -> int | None:
        latest = self.latest
        return None if latest is None else self._before(latest - dt.timedelta(days=WEEK))

    @property
    def baseline(self) -> dt.date | None:
        """The day the week's lists compare with: the last day in the lake at least a week before the latest."""
        return None if self._baseline_idx is None else self.days[self._baseline_idx].date

    def previous(self, lookback_days: int) -> dt.date | None:
        """The last day in the lake before the latest, at most ``lookback_days`` earlier."""
        latest = self.latest
        if latest is None:
            return None
        found = self._before(latest - dt.timedelta(days=1))
        if found is None or (latest - self.days[found].date).days > lookback_days:
            return None
        return self.days[found].date

    # -- per title, vectorised over every title ---------------------------------------------
    @cached_property
    def _in_top(self) -> npt.NDArray[np.bool_]:
        return (self._ranks > 0) & (self._ranks <= self.top_n)

    @cached_property
    def _streaks(self) -> npt.NDArray[np.int32]:
        import numpy as np

        streak = np.zeros(len(self._keys), dtype=np.int32)
        alive = np.ones(len(self._keys), dtype=bool)
        for n in reversed(self._present_idx):  # gaps are skipped: they neither count nor break a streak
            alive &= self._in_top[:, n]
            if not alive.any():
                break
            streak += alive
        return streak

    @cached_property
    def _days_in_top(self) -> npt.NDArray[np.int64]:
        counts: npt.NDArray[np.int64] = self._in_top.sum(axis=1)
        return counts

    def _rank_on(self, index: int | None, row: int) -> int | None:
        if index is None:
            return None
        rank = int(self._ranks[row, index])
        return rank or None

    def title(self, key: Key) -> TitleTrend:
        """The full trend of one title (``KeyError`` if the window never saw it)."""
        return self._trend(self._index[key])

    def _trend(self, row: int) -> TitleTrend:
        ranks = [int(r) or None for r in self._ranks[row]]
        popularity = [None if math.isnan(p) else round(float(p), 3) for p in self._popularity[row]]
        ranked = [(r, n) for n, r in enumerate(ranks) if r is not None]
        best = min(ranked) if ranked else None
        latest = self._present_idx[-1] if self._present_idx else None
        first = self._present_idx[0] if self._present_idx else None
        now = self._rank_on(latest, row)
        at_start = self._rank_on(first, row)
        at_baseline = self._rank_on(self._baseline_idx, row)
        media_type, tmdb_id = self._keys[row]
        return TitleTrend(
            media_type=media_type,
            id=tmdb_id,
            title=self._titles[row],
            year=self._years[row],
            label=self._labels.get(row, self._titles[row]),
            dates=self.dates,
            ranks=tuple(ranks),
            popularity=tuple(popularity),
            rank=now,
            days_in_top=int(self._days_in_top[row]),
            streak=int(self._streaks[row]),
            best_rank=best[0] if best else None,
            best_date=self.days[best[1]].date if best else None,
            first_seen=self.days[ranked[0][1]].date if ranked else None,
            change=None if now is None or at_start is None else at_start - now,
            week_change=None if now is None or at_baseline is None else at_baseline - now,
            department=self._departments[row],
        )

    @cached_property
    def _labels(self) -> dict[int, str]:
        """Labels of the titles that share a name with another: ``Name (year)``, or ``Name (year, id N)``."""
        folded: dict[str, list[int]] = {}
        for row, name in enumerate(self._titles):
            folded.setdefault(name.casefold().strip(), []).append(row)
        labels: dict[int, str] = {}
        for rows in folded.values():
            if len(rows) < 2:
                continue
            mixed = len({self._keys[r][0] for r in rows}) > 1
            for row in rows:
                year = self._years[row]
                twins = [r for r in rows if self._years[r] == year]
                media_type, tmdb_id = self._keys[row]
                which = f"{media_type} id {tmdb_id}" if mixed else f"id {tmdb_id}"
                if len(twins) > 1 or not year:
                    labels[row] = f"{self._titles[row]} ({year}, {which})" if year else f"{self._titles[row]} ({which})"
                else:
                    labels[row] = f"{self._titles[row]} ({year})"
        return labels

    # -- the lists -------------------------------------------------------------------------
    def _rows_in_top(self, index: int | None) -> list[int]:
        if index is None:
            return []
        column = self._ranks[:, index]
        rows = [int(r) for r in (self._in_top[:, index]).nonzero()[0]]
        return sorted(rows, key=lambda r: (int(column[r]), self._keys[r]))

    @cached_property
    def _top_rows(self) -> list[int]:
        return self._rows_in_top(self._present_idx[-1] if self._present_idx else None)

    @cached_property
    def top(self) -> tuple[TitleTrend, ...]:
        """The latest day's top N, best first."""
        return tuple(self._trend(r) for r in self._top_rows)

    @cached_property
    def holding(self) -> tuple[TitleTrend, ...]:
        """Titles of the latest top N in it for at least two days running, longest streak first."""
        held = [t for t in self.top if t.streak >= 2]
        return tuple(sorted(held, key=lambda t: (-t.streak, t.rank or 0)))

    @cached_property
    def rising(self) -> tuple[TitleTrend, ...]:
        """Titles of the latest top N by places gained since the baseline, most first (gainers only)."""
        up = [t for t in self.top if t.week_change is not None and t.week_change > 0]
        return tuple(sorted(up, key=lambda t: (-(t.week_change or 0), t.rank or 0)))

    @cached_property
    def new_this_week(self) -> tuple[TitleTrend, ...]:
        """Titles of the latest top N that were not in the top N on the baseline day (none without one)."""
        if self._baseline_idx is None:
            return ()
        before = set(self._rows_in_top(self._baseline_idx))
        return tuple(self._trend(r) for r in self._top_rows if r not in before)

    @cached_property
    def fell_out_this_week(self) -> tuple[TitleTrend, ...]:
        """Titles of the baseline day's top N that are not in the latest top N, by their rank then."""
        if self._baseline_idx is None:
            return ()
        now = set(self._top_rows)
        return tuple(self._trend(r) for r in self._rows_in_top(self._baseline_idx) if r not in now)

    def listed_on(self, day: dt.date) -> list[tuple[Key, int, str]]:
        """``(key, rank, name)`` of every title in ``day``'s list, best rank first."""
        column = self._ranks[:, self.dates.index(day)]
        rows = sorted((int(column[r]), self._keys[int(r)], int(r)) for r in column.nonzero()[0])
        return [(key, rank, self._titles[row]) for rank, key, row in rows]

    def find(self, query: str) -> list[TitleTrend]:
        """Titles whose name is ``query`` (ignoring case), else contains it; by name, then id."""
        wanted = query.casefold().strip()
        names = [t.casefold() for t in self._titles]
        rows = [r for r, name in enumerate(names) if name == wanted] or [
            r for r, name in enumerate(names) if wanted in name
        ]
        rows.sort(key=lambda r: (names[r], self._keys[r][1], self._keys[r][0]))
        return [self._trend(r) for r in rows]


# -- building --------------------------------------------------------------------------------
def best_ranks(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The frame's rows, best rank first, one per ``(media_type, id)``: a title listed twice counts at its best."""
    chosen = frame if columns is None else frame.loc[:, list(columns)]
    ordered = chosen.sort_values(["rank", "id"], kind="stable")
    return ordered.drop_duplicates(["media_type", "id"], keep="first")


def day_state(frame: pd.DataFrame | None, feed: Feed) -> DayState:
    """``ok``, or why the day is a gap: ``missing``, ``empty``, or ``foreign`` (rows of another feed)."""
    if frame is None:
        return "missing"
    if frame.empty:
        return "empty"
    if "time_window" in frame.columns and bool((frame["time_window"] != feed.time_window).any()):
        return "foreign"
    if feed.media_type != "all" and bool((frame["media_type"] != feed.media_type).any()):
        return "foreign"
    return "ok"


def slim(frame: pd.DataFrame) -> pd.DataFrame:
    """What the model keeps of a day: one row per title with rank, name, release date and popularity."""
    name = "title" if "title" in frame.columns else "name"  # people have a name, not a title
    kept = frame.rename(columns={name: "title"}) if name != "title" else frame
    present = [c for c in _KEEP if c in kept.columns]
    return best_ranks(kept, present).reset_index(drop=True)


async def read_window(lake: LakeReader, feed: Feed, dates: Sequence[dt.date]) -> list[DayRead]:
    """Every day of ``dates`` through the lake's verified read, ``READ_CONCURRENCY`` at a time, slimmed as read.

    A day the lake cannot vouch for (``LoadError``: SHA-256 mismatch, unreadable file) or that
    holds another feed is a gap with one warning line; days missing after the first day the
    lake has are named in one warning line.
    """
    gate = asyncio.Semaphore(READ_CONCURRENCY)
    reader = lake.read_day_unkept if isinstance(lake, RunLake) else lake.read_day  # keeps 30 days out of memory

    async def one(day: dt.date) -> DayRead:
        async with gate:
            try:
                frame = await reader(day, feed)
            except LoadError as exc:
                logger.warning("trend: %s %s is a gap: it cannot be verified (%s)", feed.label, day, exc)
                return DayRead(day, "corrupt")
        state = day_state(frame, feed)
        if state in ("foreign", "empty"):
            logger.warning("trend: %s %s is a gap: it %s", feed.label, day, gap_reason(state))
        if state != "ok" or frame is None:
            return DayRead(day, state)
        return DayRead(day, state, slim(frame))

    reads = list(await asyncio.gather(*(one(day) for day in dates)))
    first = next((n for n, r in enumerate(reads) if r.state != "missing"), len(reads))
    missing = [r.date for r in reads[first:] if r.state == "missing"]
    if missing:
        logger.warning(
            "trend: %s: %d day(s) missing from the lake, shown as gaps: %s",
            feed.label,
            len(missing),
            describe_dates(missing),
        )
    return reads


def build(feed: Feed, reads: Sequence[DayRead], *, top_n: int = 10) -> FeedTrend:
    """The model of ``feed`` from one ``DayRead`` per day of the window, oldest first."""
    import numpy as np
    import pandas as pd

    days = [WindowDay(r.date, r.state) for r in reads]
    parts = []
    for n, read in enumerate(reads):
        if read.frame is not None and read.state == "ok":
            parts.append(read.frame.assign(_day=n))
    if not parts:
        empty_i = np.zeros((0, len(days)), dtype=np.int32)
        empty_f = np.zeros((0, len(days)), dtype=np.float32)
        return FeedTrend(feed, days, top_n=top_n, keys=[], titles=[], years=[], ranks=empty_i, popularity=empty_f)
    rows = pd.concat(parts, ignore_index=True)
    codes = rows.groupby(["media_type", "id"], sort=False).ngroup().to_numpy()
    count = int(codes.max()) + 1
    ranks = np.zeros((count, len(days)), dtype=np.int32)
    day_index = rows["_day"].to_numpy()
    ranks[codes, day_index] = rows["rank"].to_numpy(dtype=np.int64)
    popularity = np.full((count, len(days)), np.nan, dtype=np.float32)
    if "popularity" in rows.columns:
        popularity[codes, day_index] = pd.to_numeric(rows["popularity"], errors="coerce").to_numpy(dtype=np.float32)
    # the latest row of each title names it: days are in order, so the last one wins
    latest = rows.assign(_code=codes).drop_duplicates("_code", keep="last").sort_values("_code")
    keys = list(zip(latest["media_type"].astype(str).tolist(), latest["id"].astype(int).tolist(), strict=True))
    titles = [_text(t) for t in latest["title"].tolist()] if "title" in latest.columns else [""] * count
    dates = latest["release_date"].tolist() if "release_date" in latest.columns else [""] * count
    years = [_year(d) for d in dates]
    departments = (
        [_text(d) for d in latest["known_for_department"].tolist()] if "known_for_department" in latest.columns else []
    )
    return FeedTrend(
        feed,
        days,
        top_n=top_n,
        keys=keys,
        titles=titles,
        years=years,
        ranks=ranks,
        popularity=popularity,
        departments=departments,
    )


async def trend(
    lake: LakeReader,
    feed: Feed,
    end: dt.date,
    *,
    days: int = DEFAULT_DAYS,
    top_n: int = 10,
    known: Mapping[dt.date, pd.DataFrame] | None = None,
) -> FeedTrend:
    """Read the ``days`` days ending at ``end`` from ``lake`` and build the model; ``known`` days are not read again."""
    dates = window(end, days)
    known = known or {}
    unread = [d for d in dates if d not in known]
    reads = {r.date: r for r in await read_window(lake, feed, unread)}
    for day, frame in known.items():
        if day in dates:
            state = day_state(frame, feed)
            reads[day] = DayRead(day, state, slim(frame) if state == "ok" else None)
    return build(feed, [reads[d] for d in dates], top_n=top_n)


def window(end: dt.date, days: int) -> tuple[dt.date, ...]:
    """The ``days`` dates ending at ``end``, oldest first; ``ValueError`` outside 1..``MAX_DAYS`` or the calendar."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days must be between 1 and {MAX_DAYS}, got {days}")
    if end - dt.date.min < dt.timedelta(days=days - 1):
        raise ValueError(f"a window of {days} days cannot end at {end.isoformat()}")
    return tuple(end - dt.timedelta(days=n) for n in range(days - 1, -1, -1))


def describe_dates(dates: Sequence[dt.date]) -> str:
    """Dates as compact ranges: ``2026-11-01..2026-11-03, 2026-11-07``."""
    spans: list[list[dt.date]] = []
    for day in sorted(dates):
        if spans and (day - spans[-1][-1]).days == 1:
            spans[-1].append(day)
        else:
            spans.append([day])
    return ", ".join(s[0].isoformat() if len(s) == 1 else f"{s[0].isoformat()}..{s[-1].isoformat()}" for s in spans)


def gap_reason(state: DayState) -> str:
    """Why a day is a gap, in a few words."""
    return _GAP_WHY.get(state, "")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    return "" if text == "<NA>" else text


def _year(value: Any) -> str:
    text = _text(value)
    return text[:4] if len(text) >= 4 and text[:4].isdigit() else ""


# -- shared views: the JSON document and the at-a-glance trajectory ----------------------------
SCHEMA_VERSION = 1
"""Version of the trend document (``trend_document``); changes whenever a field changes meaning or goes away."""
TREND_FIELDS = (
    "feed",
    "from",
    "to",
    "latest",
    "baseline",
    "top_n",
    "days",
    "top",
    "holding",
    "rising",
    "new_this_week",
    "fell_out_this_week",
)
TITLE_FIELDS = (
    "media_type",
    "id",
    "title",
    "label",
    "year",
    "rank",
    "ranks",
    "streak",
    "days_in_top",
    "best_rank",
    "best_date",
    "first_seen",
    "change",
    "week_change",
)
PERSON_FIELDS = (
    "media_type",
    "id",
    "name",
    "label",
    "known_for_department",
    *TITLE_FIELDS[TITLE_FIELDS.index("rank") :],
)
"""A person's trend object: a name and a department where a title has a title and a year."""
_BARS = "▁▂▃▄▅▆▇█"
OUT_OF_TOP = "·"
GAP_MARK = "?"


def title_document(item: TitleTrend) -> dict[str, Any]:
    """One title's trend as a JSON object (see ``TITLE_FIELDS``, a person's ``PERSON_FIELDS``).

    ``ranks`` has one entry per day of the window.
    """
    if item.is_person:
        named: dict[str, Any] = {
            "name": item.title,
            "label": item.label,
            "known_for_department": item.department or None,
        }
    else:
        named = {"title": item.title, "label": item.label, "year": int(item.year) if item.year else None}
    return {
        "media_type": item.media_type,
        "id": item.id,
        **named,
        "rank": item.rank,
        "ranks": list(item.ranks),
        "streak": item.streak,
        "days_in_top": item.days_in_top,
        "best_rank": item.best_rank,
        "best_date": item.best_date.isoformat() if item.best_date else None,
        "first_seen": item.first_seen.isoformat() if item.first_seen else None,
        "change": item.change,
        "week_change": item.week_change,
    }


def trend_document(model: FeedTrend) -> dict[str, Any]:
    """The model as a JSON object (see ``TREND_FIELDS``): the same in the JSON report, ``history`` and the page."""
    return {
        "feed": {"media_type": model.feed.media_type, "time_window": model.feed.time_window},
        "from": model.dates[0].isoformat(),
        "to": model.dates[-1].isoformat(),
        "latest": model.latest.isoformat() if model.latest else None,
        "baseline": model.baseline.isoformat() if model.baseline else None,
        "top_n": model.top_n,
        "days": [{"date": d.date.isoformat(), "state": d.state} for d in model.days],
        "top": [title_document(t) for t in model.top],
        "holding": [title_document(t) for t in model.holding],
        "rising": [title_document(t) for t in model.rising],
        "new_this_week": [title_document(t) for t in model.new_this_week],
        "fell_out_this_week": [title_document(t) for t in model.fell_out_this_week],
    }


def sparkline(model: FeedTrend, item: TitleTrend, days: int = WEEK) -> str:
    """The title's last ``days`` days at a glance: a taller bar is a better rank in the top N.

    ``·`` marks a day below the top N (or out of the list), ``?`` a gap; days before the first
    day the lake has are left out (the lake did not exist yet: there is nothing to miss).
    """
    marks = []
    first = model.present[0] if model.present else None
    for day, rank in zip(model.days[-days:], item.ranks[-days:], strict=True):
        if first is None or day.date < first:
            continue
        if not day.present:
            marks.append(GAP_MARK)
        elif rank is None or rank > model.top_n:
            marks.append(OUT_OF_TOP)
        else:
            level = (model.top_n - rank) * len(_BARS) // model.top_n
            marks.append(_BARS[min(level, len(_BARS) - 1)])
    return "".join(marks)


def change_label(change: int | None, *, new: str = "new") -> str:
    """``▲3``, ``▼2``, ``=``, or ``new`` when there is nothing to compare with."""
    if change is None:
        return new
    return f"▲{change}" if change > 0 else f"▼{-change}" if change < 0 else "="
